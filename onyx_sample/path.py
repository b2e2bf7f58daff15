"""The known camera path and intrinsics of the sample walk-through (OpenCV/COLMAP convention).

A pose is ``cam_from_world``: x_cam = R @ x_world + t; the camera centre is ``-R.T @ t``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from onyx_tools.spherical import rot_x, rot_y


def rot_z(angle_rad: float) -> np.ndarray:
    c, s = np.cos(angle_rad), np.sin(angle_rad)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


@dataclass(frozen=True)
class Intrinsics:
    """COLMAP camera: ``PINHOLE`` (fx, fy, cx, cy) or ``EQUIRECTANGULAR`` (no parameters used here)."""

    model: str
    width: int
    height: int
    fx: float = 0.0
    fy: float = 0.0
    cx: float = 0.0
    cy: float = 0.0

    @classmethod
    def pinhole(cls, width: int, height: int, hfov_deg: float = 70.0) -> "Intrinsics":
        f = (width / 2.0) / np.tan(np.radians(hfov_deg) / 2.0)
        return cls("PINHOLE", width, height, float(f), float(f), width / 2.0, height / 2.0)

    @classmethod
    def equirectangular(cls, width: int, height: int) -> "Intrinsics":
        return cls("EQUIRECTANGULAR", width, height)

    @property
    def params(self) -> list[float]:
        """The parameter list COLMAP takes for this model."""
        if self.model == "PINHOLE":
            return [self.fx, self.fy, self.cx, self.cy]
        return []

    def as_dict(self) -> dict:
        return {"model": self.model, "width": self.width, "height": self.height, "fx": self.fx,
                "fy": self.fy, "cx": self.cx, "cy": self.cy, "params": self.params}


@dataclass(frozen=True)
class CameraPath:
    """Per-frame poses of the walk; frame ``i`` is shown at ``timestamps[i] = i / fps``."""

    fps: float
    rotations: np.ndarray     # (N, 3, 3) cam_from_world R
    translations: np.ndarray  # (N, 3) cam_from_world t

    def __len__(self) -> int:
        return len(self.rotations)

    @property
    def timestamps(self) -> np.ndarray:
        return np.arange(len(self)) / self.fps

    @property
    def centres(self) -> np.ndarray:
        return -np.einsum("nji,nj->ni", self.rotations, self.translations)

    @property
    def path_length(self) -> float:
        return float(np.linalg.norm(np.diff(self.centres, axis=0), axis=1).sum())

    def world_from_cam(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """(R_world_from_cam, centre) of frame ``i``."""
        return self.rotations[i].T, self.centres[i]


def walk_path(frames: int, fps: float, length_m: float = 6.0, eye_height_m: float = 1.5) -> CameraPath:
    """A smooth walk forward along +z over ``length_m``: a gentle S-curve sideways, a slow yaw sweep
    (+-14 degrees around the walking direction), a slight head bob and a little pitch and roll.

    The geometry does not depend on ``frames``: more frames sample the same walk more densely.
    """
    if frames < 2:
        raise ValueError("a walk needs at least 2 frames")
    s = np.linspace(0.0, 1.0, frames)
    x = 0.35 * np.sin(np.pi * s) + 0.15 * np.sin(2 * np.pi * s)
    y = -eye_height_m + 0.04 * np.sin(4 * np.pi * s)  # y points down
    z = length_m * s
    dxds = 0.35 * np.pi * np.cos(np.pi * s) + 0.3 * np.pi * np.cos(2 * np.pi * s)
    heading = np.arctan2(dxds, length_m)
    yaw = heading + np.radians(14.0) * np.sin(2 * np.pi * s + 0.4)
    pitch = np.radians(-4.0 + 3.0 * np.sin(np.pi * s * 3))
    roll = np.radians(1.0 * np.sin(2 * np.pi * s * 1.5))
    rotations, translations = [], []
    for i in range(frames):
        r_world_from_cam = rot_y(yaw[i]) @ rot_x(pitch[i]) @ rot_z(roll[i])
        r = r_world_from_cam.T
        centre = np.array([x[i], y[i], z[i]])
        rotations.append(r)
        translations.append(-r @ centre)
    return CameraPath(float(fps), np.array(rotations), np.array(translations))
