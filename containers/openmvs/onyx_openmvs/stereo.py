"""Depth per view from a multi-view plane sweep with ZNCC, on the CPU.

``pycolmap.patch_match_stereo`` needs CUDA, so the CPU path sweeps fronto-parallel planes
through the reference view instead: each neighbour is warped onto the reference by the
plane's homography and compared window by window (zero-mean normalised cross-correlation).
Unlike rectified two-view stereo this works for any relative pose, forward motion included
(rectification is degenerate when the epipole lies inside the image, as it does for a
camera walking or flying forwards). The sparse points the view observes bound the depth
range, so no plane is wasted on depths the scene does not have. Each pixel keeps the
depth whose cost, the mean of its best neighbours' (an occluded neighbour does not veto),
is lowest, refined between planes by a parabola; COLMAP's fusion then keeps only depths
that other views confirm.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from .views import SparseScene, View


@dataclass(frozen=True)
class SweepConfig:
    neighbours: int = 3              # views compared with each reference view
    min_angle_deg: float = 1.0       # median triangulation angle below which a neighbour adds no depth
    max_angle_deg: float = 40.0      # above it the views look too different to match
    min_shared_points: int = 20      # sparse points a neighbour must share with the reference
    planes: int = 64                 # depth hypotheses, evenly spaced in inverse depth (refined between them)
    window: int = 7                  # ZNCC window side (pixels)
    best_of: int = 2                 # a pixel's cost is the mean of its best this-many neighbours
    min_ncc: float = 0.5             # below this correlation a pixel gets no depth
    min_texture: float = 2.0         # grey-level standard deviation in the window below which no depth


OUTSIDE = -1.0  # the warped grey level where a neighbour does not see the reference pixel


def _angle_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    cos = np.sum(a * b, axis=-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1) + 1e-12)
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def choose_neighbours(scene: SparseScene, ref: View, config: SweepConfig) -> list[int]:
    """Indices of the views best compared with ``ref``: many shared points and a useful triangulation
    angle (about 10 degrees: enough parallax for depth, similar enough for matching)."""
    scored = []
    for index, other in enumerate(scene.views):
        if other is ref:
            continue
        shared = np.intersect1d(ref.point_ids, other.point_ids, assume_unique=True)
        if len(shared) < config.min_shared_points:
            continue
        points = scene.points[np.searchsorted(scene.point_ids, shared)]
        angle = float(np.median(_angle_deg(points - ref.center, points - other.center)))
        if not config.min_angle_deg <= angle <= config.max_angle_deg:
            continue
        score = len(shared) * math.exp(-((angle - 10.0) / 10.0) ** 2)
        scored.append((score, index))
    return [index for _, index in sorted(scored, reverse=True)[: config.neighbours]]


def _gray(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image


def depth_range(ref: View, ref_points: np.ndarray) -> tuple[float, float] | None:
    """Depths the sparse points ``ref`` observes span, widened a little; None without enough points."""
    z = (ref_points @ ref.R.T + ref.t)[:, 2]
    z = z[z > 0]
    if len(z) < 10:
        return None
    lo, hi = np.percentile(z, [1, 99])
    return 0.8 * float(lo), 1.25 * float(hi)


def sweep_depth(ref: View, others: list[View], ref_image: np.ndarray, other_images: list[np.ndarray],
                ref_points: np.ndarray, config: SweepConfig) -> tuple[np.ndarray, np.ndarray]:
    """Depth (0 = unknown) and its ZNCC on ``ref``'s pixel grid; ``ref_points`` are the world coordinates
    of the sparse points ``ref`` observes (they bound the sweep)."""
    size = (ref.width, ref.height)
    shape = (ref.height, ref.width)
    bounds = depth_range(ref, ref_points)
    if bounds is None or not others:
        return np.zeros(shape, np.float32), np.zeros(shape, np.float32)
    window = (config.window, config.window)

    def box(image: np.ndarray) -> np.ndarray:
        return cv2.boxFilter(image, cv2.CV_32F, window, borderType=cv2.BORDER_REFLECT)

    ref_gray = _gray(ref_image).astype(np.float32)
    mean_ref = box(ref_gray)
    std_ref = np.sqrt(np.maximum(box(ref_gray * ref_gray) - mean_ref * mean_ref, 0))

    K_inv = np.linalg.inv(ref.K)
    sources = []
    for other, image in zip(others, other_images):
        R = other.R @ ref.R.T                      # other_from_ref
        T = other.t - R @ ref.t
        sources.append((_gray(image).astype(np.float32), other.K @ R @ K_inv,
                        other.K @ T.reshape(3, 1) @ np.array([[0.0, 0.0, 1.0]]) @ K_inv))

    inverse_depths = np.linspace(1.0 / bounds[0], 1.0 / bounds[1], config.planes)
    best_of = min(config.best_of, len(sources))
    min_variance = config.min_texture ** 2
    costs = np.empty((config.planes, *shape), np.float32)
    per_source = np.empty((len(sources), *shape), np.float32)
    for p, inverse_depth in enumerate(inverse_depths):
        for s, (gray, rotation, translation) in enumerate(sources):
            # the plane z = d in the reference frame maps reference pixels to the neighbour by
            # K_o (R + T n^T / d) K_r^-1, n = (0, 0, 1); outside the neighbour is -1, a grey level
            # no image has (not NaN: the window sums are running sums, NaN would spread down the row)
            H = rotation + translation * inverse_depth
            warped = cv2.warpPerspective(gray, H, size, flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                         borderMode=cv2.BORDER_CONSTANT, borderValue=OUTSIDE)
            mean_w, square_w, cross = box(warped), box(warped * warped), box(ref_gray * warped)
            # in place from here: this loop runs planes x neighbours times per view
            variance_w = square_w
            variance_w -= mean_w * mean_w
            unusable = variance_w < min_variance            # flat there ...
            unusable |= warped < 0                          # ... or outside the neighbour
            denominator = np.sqrt(np.maximum(variance_w, 0, out=variance_w), out=variance_w)
            denominator *= std_ref
            mean_w *= mean_ref
            cross -= mean_w
            cross /= np.maximum(denominator, 1e-3, out=denominator)   # the ZNCC
            cost = np.subtract(1.0, cross, out=per_source[s])
            cost[unusable] = 2.0                            # 1 - (-1): no match
        # the mean of the best `best_of` costs; with one neighbour to spare (the usual case) that is
        # the sum less the worst, several times cheaper than a partition
        if best_of == len(sources):
            costs[p] = per_source.mean(axis=0)
        elif best_of == len(sources) - 1:
            costs[p] = (per_source.sum(axis=0) - per_source.max(axis=0)) / best_of
        else:
            costs[p] = np.partition(per_source, best_of - 1, axis=0)[:best_of].mean(axis=0)

    best = np.argmin(costs, axis=0)
    rows, cols = np.indices(shape)
    cost = costs[best, rows, cols]
    # sub-plane refinement: the vertex of the parabola through the best plane and its two neighbours
    inner = (best > 0) & (best < config.planes - 1)
    before = costs[np.clip(best - 1, 0, config.planes - 1), rows, cols]
    after = costs[np.clip(best + 1, 0, config.planes - 1), rows, cols]
    curvature = before + after - 2.0 * cost
    offset = np.where(inner & (curvature > 1e-6), 0.5 * (before - after) / np.maximum(curvature, 1e-6), 0.0)
    step = inverse_depths[1] - inverse_depths[0] if config.planes > 1 else 0.0
    inverse = inverse_depths[best] + np.clip(offset, -0.5, 0.5) * step
    depth = np.where(inverse > 0, 1.0 / np.maximum(inverse, 1e-12), 0.0).astype(np.float32)
    ncc = (1.0 - cost).astype(np.float32)
    # a depth at either end of the sweep is a clipped guess, not a minimum
    depth[~inner | (ncc < config.min_ncc) | (std_ref < config.min_texture)] = 0
    return depth, ncc


def normals_from_depth(depth: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Camera-frame unit normals facing the camera (COLMAP's normal-map convention); 0 where unknown."""
    h, w = depth.shape
    u, v = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    # smooth before differencing: swept depth is quantised and differentiates into noise
    valid = (depth > 0).astype(np.float32)
    blur = cv2.boxFilter(depth, -1, (7, 7), normalize=False)
    weight = cv2.boxFilter(valid, -1, (7, 7), normalize=False)
    smooth = np.divide(blur, weight, out=np.zeros_like(blur), where=weight > 0)
    points = np.stack([(u - cx) / fx * smooth, (v - cy) / fy * smooth, smooth], axis=-1)
    du = np.zeros_like(points)
    dv = np.zeros_like(points)
    du[:, 1:-1] = points[:, 2:] - points[:, :-2]
    dv[1:-1] = points[2:] - points[:-2]
    normal = np.cross(du, dv)
    norm = np.linalg.norm(normal, axis=-1, keepdims=True)
    normal = np.divide(normal, norm, out=np.zeros_like(normal), where=norm > 1e-12)
    facing = np.sum(normal * points, axis=-1) > 0
    normal[facing] *= -1
    ok = (depth > 0) & (weight >= 25) & (norm[..., 0] > 1e-12)
    normal[~ok] = 0
    return normal.astype(np.float32)
