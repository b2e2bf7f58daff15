"""Vectorised numpy ray casting of the sample scene: pinhole frames and equirectangular panoramas.

For every pixel: nearest hit among the scene's axis-aligned rectangles (back faces culled from the
camera centre), texture lookup with trilinear mip-mapping (bilinear within a level), and simple
view-independent Lambertian shading from a few point lights (so a surface point has the same colour
in every frame, as SIFT matching assumes).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from onyx_tools.spherical import equirect_to_directions

from .path import CameraPath, Intrinsics
from .scene import SampleScene


def cast(scene: SampleScene, centre: np.ndarray, directions: np.ndarray,
         pixel_angle: np.ndarray | float) -> np.ndarray:
    """Colours (P, 3) uint8 of rays from ``centre`` along ``directions`` (P, 3), not necessarily unit.

    ``pixel_angle`` is the angle one pixel subtends along each ray (radians), used for mip selection.
    """
    centre = np.asarray(centre, np.float64)
    d = np.asarray(directions, np.float64)
    d = d / np.linalg.norm(d, axis=1, keepdims=True)
    p = d.shape[0]
    best_t = np.full(p, np.inf)
    best_k = np.full(p, -1, np.int64)
    with np.errstate(divide="ignore", invalid="ignore"):
        for k, rect in enumerate(scene.rects):
            if not rect.faces(centre):
                continue
            a, (b, c) = rect.axis, rect.other_axes
            t = (rect.value - centre[a]) / d[:, a]
            pb = centre[b] + t * d[:, b]
            pc = centre[c] + t * d[:, c]
            hit = (t > 1e-9) & (t < best_t) & (pb >= rect.lo[0]) & (pb <= rect.hi[0]) \
                & (pc >= rect.lo[1]) & (pc <= rect.hi[1])
            best_t[hit] = t[hit]
            best_k[hit] = k
    if (best_k < 0).any():
        raise RuntimeError("a ray left the room: the camera must stay inside the scene")

    rect_axis = np.array([r.axis for r in scene.rects])
    rect_b = np.array([r.other_axes[0] for r in scene.rects])
    rect_c = np.array([r.other_axes[1] for r in scene.rects])
    rect_lo = np.array([r.lo for r in scene.rects])
    normals = np.array([r.normal for r in scene.rects])
    k = best_k
    points = centre + best_t[:, None] * d
    rows = np.arange(p)
    tb = points[rows, rect_b[k]] - rect_lo[k, 0]
    tc = points[rows, rect_c[k]] - rect_lo[k, 1]

    # Mip level from the pixel's footprint on the surface, in level-0 texels (geometric mean of the
    # two footprint axes: the grazing direction stretches by 1/cos).
    cos_inc = np.abs(d[rows, rect_axis[k]])
    footprint = best_t * pixel_angle / np.sqrt(np.maximum(cos_inc, 0.05))
    density = scene.texels_per_m[k].mean(axis=1)
    level = np.clip(np.log2(np.maximum(footprint * density, 1e-6)), 0.0, scene.levels - 1)
    l0 = np.floor(level).astype(np.int64)
    l1 = np.minimum(l0 + 1, scene.levels - 1)
    frac = (level - l0)[:, None].astype(np.float32)
    colour = (1.0 - frac) * _bilinear(scene, k, l0, tb, tc) + frac * _bilinear(scene, k, l1, tb, tc)

    # Lambertian shading from point lights; depends on the surface point only.
    n = normals[k]
    light = np.zeros(p)
    for pos in scene.lights:
        v = pos - points
        dist2 = np.einsum("ij,ij->i", v, v)
        light += np.maximum(np.einsum("ij,ij->i", n, v), 0.0) / np.sqrt(dist2) / (1.0 + 0.04 * dist2)
    shade = (0.45 + 0.75 * scene.light_power * light).astype(np.float32)[:, None]
    return np.clip(colour * shade + 0.5, 0, 255).astype(np.uint8)


def _bilinear(scene: SampleScene, k: np.ndarray, level: np.ndarray, tb: np.ndarray, tc: np.ndarray) -> np.ndarray:
    scale = 1.0 / (2.0 ** level)
    w = scene.level_width[k, level]
    h = scene.level_height[k, level]
    x = np.clip(tb * scene.texels_per_m[k, 0] * scale - 0.5, 0.0, w - 1.0)
    y = np.clip(tc * scene.texels_per_m[k, 1] * scale - 0.5, 0.0, h - 1.0)
    x0 = np.floor(x).astype(np.int64)
    y0 = np.floor(y).astype(np.int64)
    x1 = np.minimum(x0 + 1, w - 1)
    y1 = np.minimum(y0 + 1, h - 1)
    fx = (x - x0).astype(np.float32)[:, None]
    fy = (y - y0).astype(np.float32)[:, None]
    off = scene.level_offset[k, level]
    atlas = scene.atlas
    top = (1 - fx) * atlas[off + y0 * w + x0] + fx * atlas[off + y0 * w + x1]
    bottom = (1 - fx) * atlas[off + y1 * w + x0] + fx * atlas[off + y1 * w + x1]
    return (1 - fy) * top + fy * bottom


def render_pinhole(scene: SampleScene, path: CameraPath, index: int, intr: Intrinsics,
                   supersample: int = 1) -> np.ndarray:
    """Frame ``index`` of ``path`` as an (H, W, 3) uint8 RGB image; pixel centres at (u + 0.5, v + 0.5)."""
    s = int(supersample)
    rays, pixel_angle = _pinhole_rays(intr, s)
    r_wc, centre = path.world_from_cam(index)
    img = cast(scene, centre, _rotate(rays, r_wc), pixel_angle)
    img = img.reshape(intr.height * s, intr.width * s, 3)
    if s > 1:
        img = img.reshape(intr.height, s, intr.width, s, 3).mean(axis=(1, 3)).round().astype(np.uint8)
    return img


@lru_cache(maxsize=4)
def _pinhole_rays(intr: Intrinsics, s: int) -> tuple[np.ndarray, np.ndarray]:
    """Unit camera-frame rays (P, 3) of every (sub)pixel and the angle each pixel subtends."""
    us = (np.arange(intr.width * s) + 0.5) / s
    vs = (np.arange(intr.height * s) + 0.5) / s
    uu, vv = np.meshgrid(us, vs)
    rays = np.stack([(uu - intr.cx) / intr.fx, (vv - intr.cy) / intr.fy, np.ones_like(uu)], axis=-1)
    norm2 = np.einsum("...i,...i->...", rays, rays).reshape(-1)
    rays = rays.reshape(-1, 3) / np.sqrt(norm2)[:, None]
    pixel_angle = (1.0 / (intr.fx * s)) / norm2  # the angle per pixel shrinks off-axis (~cos^2)
    rays.setflags(write=False)
    pixel_angle.setflags(write=False)
    return rays, pixel_angle


@lru_cache(maxsize=4)
def _equirect_rays(width: int, height: int) -> np.ndarray:
    uu, vv = np.meshgrid(np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64))
    rays = equirect_to_directions(uu, vv, width, height).reshape(-1, 3)
    rays.setflags(write=False)
    return rays


def _rotate(rays: np.ndarray, r: np.ndarray) -> np.ndarray:
    """rays @ r.T without numpy's slow small-matrix matmul path."""
    return rays[:, 0:1] * r[:, 0] + rays[:, 1:2] * r[:, 1] + rays[:, 2:3] * r[:, 2]


def render_equirect(scene: SampleScene, path: CameraPath, index: int, width: int, height: int) -> np.ndarray:
    """Frame ``index`` of ``path`` as an (H, W, 3) uint8 equirectangular panorama in camera axes
    (longitude 0 along the camera's +z, as ``onyx_tools.spherical`` defines it)."""
    r_wc, centre = path.world_from_cam(index)
    pixel_angle = np.pi / height  # vertical angular size of a pixel (horizontal shrinks by cos(lat))
    return cast(scene, centre, _rotate(_equirect_rays(width, height), r_wc), pixel_angle).reshape(height, width, 3)
