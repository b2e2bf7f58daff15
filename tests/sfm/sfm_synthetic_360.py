"""A tiny synthetic 360 walk for the sfm tests: a textured box room seen from a known camera path.

Rendered here with numpy + OpenCV (no dependency on the project's sample renderer): every
panorama pixel's ray is intersected with the room's walls, which carry sharp random shapes
(SIFT needs corners at any magnification). The frames step's layout is reproduced exactly:
panoramas/pano_00001.jpg, images/frame_00001_v00.jpg (cube12 views cut with
onyx_tools.spherical.view_remap) and images/index.json.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from onyx_tools.spherical import equirect_to_directions, pinhole_focal, rot_y, view_remap, view_set

ROOM_HALF = np.array([3.0, 1.5, 4.0])  # x right, y down, z forward (metres)
TEXTURE_PX = 2048


@dataclass(frozen=True)
class Walk:
    centres: np.ndarray         # (N, 3) camera centres in world coordinates
    world_from_pano: np.ndarray  # (N, 3, 3)

    def pano_cam_from_world(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        R = self.world_from_pano[i].T
        return R, -R @ self.centres[i]


def make_walk(frames: int, step_m: float = 0.25, yaw_step_deg: float = 4.0) -> Walk:
    k = np.arange(frames)
    centres = np.stack([0.4 * np.sin(k * 0.35), 0.1 * np.cos(k * 0.5), -1.5 + step_m * k], axis=1)
    rotations = np.stack([rot_y(np.radians(yaw_step_deg * i)) for i in k])
    return Walk(centres, rotations)


def _face_texture(rng: np.random.Generator) -> np.ndarray:
    base = rng.integers(60, 200, size=3)
    image = np.empty((TEXTURE_PX, TEXTURE_PX, 3), np.uint8)
    image[:] = base
    noise = cv2.resize(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8), (TEXTURE_PX, TEXTURE_PX),
                       interpolation=cv2.INTER_CUBIC)
    image = cv2.addWeighted(image, 0.6, noise, 0.4, 0)
    for _ in range(900):
        colour = tuple(int(c) for c in rng.integers(0, 256, size=3))
        x, y = (int(v) for v in rng.integers(0, TEXTURE_PX, size=2))
        size = int(rng.integers(8, 90))
        kind = rng.integers(0, 3)
        if kind == 0:
            cv2.circle(image, (x, y), size // 2, colour, -1, cv2.LINE_AA)
        elif kind == 1:
            cv2.rectangle(image, (x, y), (x + size, y + int(rng.integers(8, 90))), colour, -1)
        else:
            pts = rng.integers(-size, size, size=(3, 2)) + np.array([x, y])
            cv2.fillPoly(image, [pts.astype(np.int32)], colour, cv2.LINE_AA)
    return image


def make_atlas(seed: int = 7) -> np.ndarray:
    """Six wall textures stacked vertically: faces -x, +x, -y, +y, -z, +z."""
    rng = np.random.default_rng(seed)
    return np.concatenate([_face_texture(rng) for _ in range(6)], axis=0)


def render_panorama(atlas: np.ndarray, centre: np.ndarray, world_from_pano: np.ndarray,
                    width: int = 1024, supersample: int = 2) -> np.ndarray:
    w, h = width * supersample, width * supersample // 2
    us, vs = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
    directions = equirect_to_directions(us, vs, w, h) @ world_from_pano.T
    with np.errstate(divide="ignore", invalid="ignore"):
        bounds = np.where(directions > 0, ROOM_HALF, -ROOM_HALF)
        t_axis = np.where(np.abs(directions) > 1e-12, (bounds - centre) / directions, np.inf)
    axis = np.argmin(t_axis, axis=-1)
    t = np.take_along_axis(t_axis, axis[..., None], -1)[..., 0]
    hit = centre + directions * t[..., None]
    positive = np.take_along_axis(directions, axis[..., None], -1)[..., 0] > 0
    face = axis * 2 + positive
    # the two in-plane coordinates of each face, scaled to [0, 1]
    others = np.array([[1, 2], [0, 2], [0, 1]])[axis]
    a = np.take_along_axis(hit, others[..., :1], -1)[..., 0]
    b = np.take_along_axis(hit, others[..., 1:], -1)[..., 0]
    half_a, half_b = ROOM_HALF[others[..., 0]], ROOM_HALF[others[..., 1]]
    s = (a / half_a + 1) / 2 * (TEXTURE_PX - 1)
    r = (b / half_b + 1) / 2 * (TEXTURE_PX - 1) + face * TEXTURE_PX
    image = cv2.remap(atlas, s.astype(np.float32), r.astype(np.float32), cv2.INTER_LINEAR)
    return cv2.resize(image, (width, width // 2), interpolation=cv2.INTER_AREA)


def write_360_batch(root: Path, frames: int = 10, pano_width: int = 1024, view_px: int = 256,
                    views: str = "cube12") -> Walk:
    """A batch folder as the frames step leaves it for a 360 video; returns the true camera path."""
    walk = make_walk(frames)
    atlas = make_atlas()
    images, panoramas = root / "images", root / "panoramas"
    images.mkdir(parents=True, exist_ok=True)
    panoramas.mkdir(parents=True, exist_ok=True)
    specs = view_set(views)
    maps = {spec.name: view_remap(spec, view_px, pano_width, pano_width // 2) for spec in specs}
    entries = []
    for i in range(frames):
        pano = render_panorama(atlas, walk.centres[i], walk.world_from_pano[i], pano_width)
        cv2.imwrite(str(panoramas / f"pano_{i + 1:05d}.jpg"), pano, [cv2.IMWRITE_JPEG_QUALITY, 95])
        for spec in specs:
            map_u, map_v = maps[spec.name]
            view = cv2.remap(pano, map_u, map_v, cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP)
            name = f"frame_{i + 1:05d}_{spec.name}.jpg"
            cv2.imwrite(str(images / name), view, [cv2.IMWRITE_JPEG_QUALITY, 95])
            entries.append({"name": name, "frame": i + 1, "source_frame": i, "timestamp_s": i * 0.5,
                            "view": spec.name, "sharpness": 100.0})
    index = {"kind": "360", "video": {"width": pano_width, "height": pano_width // 2}, "interval_s": 0.5,
             "view_set": views,
             "views": [{"name": s.name, "yaw_deg": s.yaw_deg, "pitch_deg": s.pitch_deg} for s in specs],
             "view_size": view_px, "focal_px": pinhole_focal(view_px), "images": entries}
    (images / "index.json").write_text(json.dumps(index, indent=1), encoding="utf-8")
    return walk
