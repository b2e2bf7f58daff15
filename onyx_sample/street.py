"""A synthetic street walk: the hard case for SfM of video (forward motion, repeated facades).

Two rows of house fronts face each other across a cobbled street; the camera walks down the
middle looking ahead, swaying a little. Most of each frame moves along the walking direction
(low parallax near the centre of the image), the sky is blank, and the facades repeat one
house front every few metres, so many SIFT matches are ambiguous. Axes as in ``scene.py``:
x right, y down (ground y = 0), z forward.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from onyx_tools.spherical import rot_x, rot_y

from .path import CameraPath, Intrinsics, rot_z
from .render import render_pinhole
from .scene import Rect, SampleScene, _texture_shape, scene_from_textures
from .textures import make_texture

HALF_WIDTH = 5.0      # the street is 10 m between facades
FACADE_HEIGHT = 12.0  # the sky is a blank ceiling above the roofs
BEHIND = 6.0          # metres of street behind the start
AHEAD = 30.0          # metres of street beyond the end of the walk
HOUSE_M = 4.0         # one house front, repeated along each row


def street_rects(length_m: float) -> list[Rect]:
    z0, z1 = -BEHIND, length_m + AHEAD
    w, h = HALF_WIDTH, FACADE_HEIGHT
    return [
        Rect(0, -w, (-h, z0), (0.0, z1), 1.0, "facade.left"),     # faces +x
        Rect(0, w, (-h, z0), (0.0, z1), -1.0, "facade.right"),    # faces -x
        Rect(1, 0.0, (-w, z0), (w, z1), -1.0, "ground"),         # faces -y (up)
        Rect(1, -h, (-w, z0), (w, z1), 1.0, "sky"),              # faces +y (down)
        Rect(2, z1, (-w, -h), (w, 0.0), -1.0, "end"),            # the street's far end
        Rect(2, z0, (-w, -h), (w, 0.0), 1.0, "start"),
    ]


def _facade(seed: int, rect: Rect, texels_per_m: float) -> np.ndarray:
    """A row of house fronts: each its own plaster and marks, every one with the same windows."""
    width, height = _texture_shape(rect, texels_per_m)   # along y (height), along z (length)
    house = int(round(HOUSE_M * texels_per_m))
    m = texels_per_m
    fronts = []
    for number in range(int(np.ceil(height / house))):
        # drawn upright: rows along y (row 0 at the roof), columns along z
        front = make_texture(seed * 100 + number, house, width, marks_per_kilotexel=0.3)
        for floor in range(int(FACADE_HEIGHT // 3)):
            top = int((FACADE_HEIGHT - 3.0 * floor - 2.2) * m)
            for left in (0.6, 2.4):
                x0, x1, y1 = int(left * m), int((left + 1.0) * m), top + int(1.4 * m)
                cv2.rectangle(front, (x0, top), (x1, y1), (40, 45, 60), -1)
                cv2.rectangle(front, (x0, top), (x1, y1), (230, 230, 225), max(1, int(0.08 * m)))
                cv2.line(front, ((x0 + x1) // 2, top), ((x0 + x1) // 2, y1), (230, 230, 225), max(1, int(0.05 * m)))
        fronts.append(front)
    row = np.concatenate(fronts, axis=1)[:, :height]
    # the texture's x runs along the rect's first other axis (y), its rows along the second (z)
    return np.ascontiguousarray(row.transpose(1, 0, 2))


def build_street_scene(length_m: float, seed: int = 0, texels_per_m: float = 64.0) -> SampleScene:
    rects = street_rects(length_m)
    textures = []
    for i, rect in enumerate(rects):
        width, height = _texture_shape(rect, texels_per_m)
        if rect.name.startswith("facade"):
            textures.append(_facade(seed * 1000 + i, rect, texels_per_m))
        elif rect.name == "sky":
            textures.append(np.full((height, width, 3), (205, 215, 230), np.uint8))
        else:  # cobbles and the buildings at either end: fine, low-contrast detail
            texture = make_texture(seed * 1000 + 10 + i, width, height, marks_per_kilotexel=0.1)
            textures.append(cv2.addWeighted(texture, 0.6, np.full_like(texture, 120), 0.4, 0.0))
    lights = [[0.0, -FACADE_HEIGHT + 0.5, z] for z in np.arange(-BEHIND, length_m + AHEAD, 8.0)]
    scene = scene_from_textures(seed, rects, textures, lights=np.array(lights))
    scene.light_power = 3.0
    return scene


def street_path(frames: int, fps: float, length_m: float, eye_height_m: float = 1.6) -> CameraPath:
    """Walking down the street looking ahead: a slight sideways drift, +-6 degrees of yaw sway,
    head bob, a little pitch and roll."""
    if frames < 2:
        raise ValueError("a walk needs at least 2 frames")
    s = np.linspace(0.0, 1.0, frames)
    x = 0.6 * np.sin(np.pi * s) - 0.3
    y = -eye_height_m + 0.03 * np.sin(2 * np.pi * s * frames / 8)
    z = length_m * s
    yaw = np.radians(6.0) * np.sin(2 * np.pi * s * 1.5)
    pitch = np.radians(-2.0 + 1.5 * np.sin(np.pi * s * 2))
    roll = np.radians(0.8 * np.sin(2 * np.pi * s * 2.5))
    rotations, translations = [], []
    for i in range(frames):
        r = (rot_y(yaw[i]) @ rot_x(pitch[i]) @ rot_z(roll[i])).T
        centre = np.array([x[i], y[i], z[i]])
        rotations.append(r)
        translations.append(-r @ centre)
    return CameraPath(float(fps), np.array(rotations), np.array(translations))


def write_street_frames(out_dir: Path, frames: int, *, length_m: float | None = None, width: int = 640,
                        height: int = 360, hfov_deg: float = 65.0, seed: int = 0,
                        jpeg_quality: int = 92) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Render the walk into ``out_dir/frame_NNNNN.jpg``; returns name -> (cam_from_world R, centre).

    ``length_m`` defaults to 0.75 m per frame (a brisk walk filmed at 4 frames a second).
    """
    length_m = float(length_m if length_m is not None else 0.75 * (frames - 1))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    scene = build_street_scene(length_m, seed)
    path = street_path(frames, 4.0, length_m)
    intr = Intrinsics.pinhole(width, height, hfov_deg)
    truth = {}
    for i in range(frames):
        name = f"frame_{i + 1:05d}.jpg"
        image = render_pinhole(scene, path, i, intr)
        cv2.imwrite(str(out_dir / name), cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
                    [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
        truth[name] = (path.rotations[i], path.centres[i])
    return truth
