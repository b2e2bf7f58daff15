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


def view_set(name: str) -> list[ViewSpec]:
    """Named layouts of perspective views cut from each panorama (all 90 degree FOV)."""
    if name == "cube12":  # the first version: yaw 0/90/180/270 x pitch -35/0/+35, top row turned 45
        specs = [(yaw, -35.0) for yaw in (0, 90, 180, 270)]
        specs += [(yaw, 0.0) for yaw in (0, 90, 180, 270)]
        specs += [(yaw + 45.0, 35.0) for yaw in (0, 90, 180, 270)]
    elif name == "ring8":
        specs = [(yaw, 0.0) for yaw in range(0, 360, 45)]
    elif name == "cube6":
        specs = [(yaw, 0.0) for yaw in (0, 90, 180, 270)] + [(0.0, 90.0), (0.0, -90.0)]
    else:
        raise ValueError(f"unknown view set {name!r}: use cube12, ring8 or cube6")
    return [ViewSpec(f"v{i:02d}", float(yaw % 360), float(pitch)) for i, (yaw, pitch) in enumerate(specs)]


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
