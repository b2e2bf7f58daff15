"""Equirectangular geometry shared by the 360 split, spherical SfM and the synthetic 360 renderer.

Conventions (OpenCV / COLMAP camera axes: x right, y down, z forward):
- An equirectangular image of size W x H covers longitude [-pi, pi) left to right and
  latitude [+pi/2, -pi/2] top to bottom; pixel centres sit at (u + 0.5, v + 0.5).
  Longitude 0 looks along +z, longitude +pi/2 along +x; latitude +pi/2 is up (-y).
- A perspective view is defined by (yaw, pitch) in degrees: yaw turns right, pitch up.
  ``view_rotation`` returns R_pano_from_view: d_pano = R @ d_view.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def rot_y(angle_rad: float) -> np.ndarray:
    c, s = np.cos(angle_rad), np.sin(angle_rad)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def rot_x(angle_rad: float) -> np.ndarray:
    c, s = np.cos(angle_rad), np.sin(angle_rad)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def view_rotation(yaw_deg: float, pitch_deg: float) -> np.ndarray:
    """R_pano_from_view for a view turned ``yaw`` right and ``pitch`` up."""
    # With y pointing down, rot_x(+pitch) tilts +z towards -y (up); rot_y(+yaw) turns +z to +x.
    return rot_y(np.radians(yaw_deg)) @ rot_x(np.radians(pitch_deg))


def directions_to_equirect(directions: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Unit directions (..., 3) in panorama axes -> continuous pixel coordinates (u, v)."""
    x, y, z = directions[..., 0], directions[..., 1], directions[..., 2]
    lon = np.arctan2(x, z)
    lat = np.arcsin(np.clip(-y / np.linalg.norm(directions, axis=-1), -1.0, 1.0))
    u = (lon / (2 * np.pi) + 0.5) * width - 0.5
    v = (0.5 - lat / np.pi) * height - 0.5
    return u, v


def equirect_to_directions(u: np.ndarray, v: np.ndarray, width: int, height: int) -> np.ndarray:
    """Pixel coordinates -> unit directions (..., 3) in panorama axes."""
    lon = ((np.asarray(u) + 0.5) / width - 0.5) * 2 * np.pi
    lat = (0.5 - (np.asarray(v) + 0.5) / height) * np.pi
    return np.stack([np.cos(lat) * np.sin(lon), -np.sin(lat), np.cos(lat) * np.cos(lon)], axis=-1)


@dataclass(frozen=True)
class ViewSpec:
    name: str
    yaw_deg: float
    pitch_deg: float


VIEW_SETS = ("cube12", "ring8", "cube6")
# Neighbouring views share at least this much field of view, so what one view cuts at its
# border the next one sees whole (features at a seam are matched in one of them).
VIEW_OVERLAP_DEG = 15.0
MIN_FOV_DEG = 90.0


def view_set(name: str) -> list[ViewSpec]:
    """Named layouts of perspective views cut from each panorama (their field of view: ``view_fov``)."""
    if name == "cube12":  # Onyx 1.0: yaw 0/90/180/270 x pitch -35/0/+35, top row turned 45
        specs = [(yaw, -35.0) for yaw in (0, 90, 180, 270)]
        specs += [(yaw, 0.0) for yaw in (0, 90, 180, 270)]
        specs += [(yaw + 45.0, 35.0) for yaw in (0, 90, 180, 270)]
    elif name == "ring8":
        specs = [(yaw, 0.0) for yaw in range(0, 360, 45)]
    elif name == "cube6":
        specs = [(yaw, 0.0) for yaw in (0, 90, 180, 270)] + [(0.0, 90.0), (0.0, -90.0)]
    else:
        raise ValueError(f"unknown view set {name!r}: use {', '.join(VIEW_SETS)}")
    return [ViewSpec(f"v{i:02d}", float(yaw % 360), float(pitch)) for i, (yaw, pitch) in enumerate(specs)]


def view_fov(name: str, overlap_deg: float = VIEW_OVERLAP_DEG) -> float:
    """Field of view (degrees) of the views of ``name``: the widest gap between the optical axes of
    neighbouring views of one ring plus ``overlap_deg``, and never under 90 degrees.

    cube12 and cube6 (axes 90 degrees apart) get 105 degrees, ring8 (45 apart) keeps 90.
    """
    specs = view_set(name)
    gaps = []
    for pitch in sorted({s.pitch_deg for s in specs}):
        yaws = sorted(s.yaw_deg for s in specs if s.pitch_deg == pitch)
        if len(yaws) > 1:
            gaps.append(max((b - a) % 360 or 360 for a, b in zip(yaws, yaws[1:] + yaws[:1])))
    return max(MIN_FOV_DEG, max(gaps, default=0.0) + overlap_deg)


def source_view_size(pano_width: int, fov_deg: float) -> int:
    """The side (even, px) of a square view whose centre has the panorama's own angular resolution.

    The panorama holds ``W / 2 pi`` px per radian everywhere; a view of side S and field of view F
    holds ``(S / 2) / tan(F / 2)`` at its centre (more towards its edges). Any larger view only
    interpolates: a 90 degree view of a 640 px wide panorama is 202 px, not 2048.
    """
    side = 2.0 * np.tan(np.radians(fov_deg) / 2.0) * pano_width / (2.0 * np.pi)
    return max(16, int(side) // 2 * 2)


def pinhole_focal(size: int, fov_deg: float = 90.0) -> float:
    """Focal length in pixels of a square view of ``size`` px and the given field of view."""
    return (size / 2.0) / np.tan(np.radians(fov_deg) / 2.0)


def view_remap(spec: ViewSpec, size: int, pano_width: int, pano_height: int,
               fov_deg: float = 90.0) -> tuple[np.ndarray, np.ndarray]:
    """cv2.remap maps (float32) that cut the view ``spec`` out of a panorama."""
    f = pinhole_focal(size, fov_deg)
    c = size / 2.0
    xs, ys = np.meshgrid(np.arange(size) + 0.5, np.arange(size) + 0.5)
    rays = np.stack([(xs - c) / f, (ys - c) / f, np.ones_like(xs)], axis=-1)
    rays /= np.linalg.norm(rays, axis=-1, keepdims=True)
    directions = rays @ view_rotation(spec.yaw_deg, spec.pitch_deg).T
    u, v = directions_to_equirect(directions, pano_width, pano_height)
    return u.astype(np.float32), v.astype(np.float32)
