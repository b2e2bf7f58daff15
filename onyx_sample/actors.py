"""What a real hand-held 360 walk holds besides the scene: the operator, who moves with the camera,
and a passer-by, who moves through the world. Both are painted over a rendered panorama.

- The operator is a textured head-and-arm shape fixed in the camera's lower hemisphere (the
  same panorama pixels in every frame, as a selfie-stick operator is), plus a stick at the nadir.
- The passer-by is a textured upright rectangle (a person, ``PERSON_SIZE`` metres) that walks
  across the room in front of the walk's end while the camera moves, so its features move
  inconsistently with the scene.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from onyx_tools.spherical import equirect_to_directions

from .path import CameraPath
from .textures import make_texture

PERSON_SIZE = (0.55, 1.7)  # width, height (m)
PERSON_Z = 6.8  # the plane it walks in (m): past the walk's end, clear of the obstacles
PERSON_X = (-1.8, 1.8)  # from, to (m)
_TEXTURE_PX = 256


@dataclass(frozen=True)
class Operator:
    """Ellipses in panorama angles: (longitude, latitude, half-width, half-height) in degrees."""

    shapes: tuple[tuple[float, float, float, float], ...] = (
        (150.0, -45.0, 22.0, 20.0),  # head and shoulders, behind-right and below
        (115.0, -62.0, 30.0, 9.0),   # the arm holding the stick
        (0.0, -90.0, 360.0, 14.0),   # the stick and hand at the nadir
    )
    seed: int = 9001

    def layer(self, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
        """(RGB image, boolean coverage) of the operator in a ``width`` x ``height`` panorama."""
        cover = np.zeros((height, width), np.uint8)
        for lon, lat, half_w, half_h in self.shapes:
            centre = ((lon / 360.0 + 0.5) * width, (0.5 - lat / 180.0) * height)
            axes = (max(1, int(half_w / 360.0 * width)), max(1, int(half_h / 180.0 * height)))
            for shift in (-width, 0, width):  # drawn three times so shapes cross the seam
                cv2.ellipse(cover, (int(centre[0] + shift), int(centre[1])), axes, 0, 0, 360, 255, -1)
        texture = cv2.resize(make_texture(self.seed, _TEXTURE_PX * 2, _TEXTURE_PX), (width, height),
                             interpolation=cv2.INTER_LINEAR)
        return texture, cover > 0


@dataclass(frozen=True)
class PasserBy:
    """A person crossing the room at ``PERSON_Z`` from ``PERSON_X[0]`` to ``PERSON_X[1]`` along the video."""

    seed: int = 9002

    def centre_x(self, index: int, frames: int) -> float:
        s = index / max(1, frames - 1)
        return PERSON_X[0] + s * (PERSON_X[1] - PERSON_X[0])

    def paint(self, panorama: np.ndarray, path: CameraPath, index: int) -> np.ndarray:
        height, width = panorama.shape[:2]
        r_world_from_cam, centre = path.world_from_cam(index)
        us, vs = np.meshgrid(np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64))
        rays = equirect_to_directions(us, vs, width, height) @ r_world_from_cam.T
        with np.errstate(divide="ignore", invalid="ignore"):
            t = (PERSON_Z - centre[2]) / rays[..., 2]
        x = centre[0] + t * rays[..., 0]
        y = centre[1] + t * rays[..., 1]
        left = self.centre_x(index, len(path)) - PERSON_SIZE[0] / 2
        hit = (t > 0) & (x >= left) & (x <= left + PERSON_SIZE[0]) & (y <= 0.0) & (y >= -PERSON_SIZE[1])
        texture = make_texture(self.seed, _TEXTURE_PX // 2, int(_TEXTURE_PX * PERSON_SIZE[1] / PERSON_SIZE[0]) // 2)
        tx = np.clip((x[hit] - left) / PERSON_SIZE[0] * (texture.shape[1] - 1), 0, texture.shape[1] - 1)
        ty = np.clip((y[hit] + PERSON_SIZE[1]) / PERSON_SIZE[1] * (texture.shape[0] - 1), 0, texture.shape[0] - 1)
        out = panorama.copy()
        out[hit] = texture[ty.round().astype(int), tx.round().astype(int)]
        return out


def with_actors(panorama: np.ndarray, path: CameraPath, index: int, operator: Operator | None,
                passer_by: PasserBy | None) -> np.ndarray:
    """``panorama`` (RGB) with the passer-by and then the operator (nearest the camera) painted over it."""
    out = panorama
    if passer_by is not None:
        out = passer_by.paint(out, path, index)
    if operator is not None:
        image, cover = operator.layer(out.shape[1], out.shape[0])
        out = out.copy()
        out[cover] = image[cover]
    return out
