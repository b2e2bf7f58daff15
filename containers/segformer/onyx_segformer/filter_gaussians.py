"""Dropping Gaussians that the masks exclude, then statistical outliers: a pure function over arrays.

Onyx 1.0's rule, vectorised over Gaussians (one pass per view, never per Gaussian):

1. Views whose mask keeps under 5% of its pixels are not used (a frame of sky tells little).
2. Up to 50 evenly spaced remaining views are used. Each Gaussian centre is projected into each;
   it *lands on a kept pixel* in a view when it is in front of the camera, inside the image and
   the mask is 255 there.
3. A Gaussian is kept when it lands on a kept pixel in >= 2 of those views.
4. Outlier removal on the survivors: mean distance to the 10 nearest neighbours <= its 95th
   percentile and distance to the centroid <= its 99th percentile.

Gaussians that fewer than 2 used views see at all. Step 3 drops them, as Onyx 1.0 did,
and we keep that on purpose:
- Outside every view (behind the cameras, off to the sides): no image ever showed them, so no
  training view supervised them and no mask can vouch for them. They are the floaters and stray
  initial points filtering exists to remove; keeping them would bring clutter back.
- Seen by exactly one used view: the capture's fringe. One view cannot confirm them, so they are dropped
  like the others. ``min_kept_views=1`` keeps those that land on a kept pixel.
``FilterResult`` counts both groups (``unseen``, ``single_view``), so the step's metadata shows how
much was dropped for lack of views rather than by the masks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .cameras import Camera
from .config import FilterConfig

CHUNK = 1 << 18  # Gaussians per pass: the working arrays of one view stay in cache-sized pieces
_NEAR = 1e-6


@dataclass
class FilterResult:
    keep: np.ndarray           # (N,) bool, the final answer
    visible: np.ndarray        # (N,) uint16, used views whose image the centre falls in
    kept_hits: np.ndarray      # (N,) uint16, used views where it lands on a kept pixel
    views_used: np.ndarray     # indices into ``cameras`` of the views projected into
    cameras_dropped: int       # views under ``min_camera_kept_fraction`` kept pixels
    removed_by_masks: int      # failed step 3
    removed_as_outliers: int   # failed step 4

    @property
    def unseen(self) -> int:
        return int((self.visible == 0).sum())

    @property
    def single_view(self) -> int:
        return int((self.visible == 1).sum())


def select_views(masks: Sequence[np.ndarray], min_kept_fraction: float, max_views: int) -> tuple[np.ndarray, int]:
    """Indices of up to ``max_views`` evenly spaced masks keeping >= ``min_kept_fraction`` of pixels."""
    fractions = np.array([np.count_nonzero(np.asarray(m) > 127) / max(np.asarray(m).size, 1) for m in masks])
    usable = np.flatnonzero(fractions >= min_kept_fraction)
    if len(usable) <= max_views:
        return usable, len(masks) - len(usable)
    picks = np.unique(np.round(np.linspace(0, len(usable) - 1, max_views)).astype(np.int64))
    return usable[picks], len(masks) - len(usable)


def project_hits(means: np.ndarray, camera: Camera, keep_pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(inside, on_kept) for every centre in one view; ``keep_pixels`` is a bool (H, W) mask of any size.

    A mask smaller or larger than the camera (a downscaled copy) is indexed at the scaled position.
    """
    mh, mw = keep_pixels.shape
    to_mask = np.diag([mw / camera.width, mh / camera.height, 1.0]) @ np.asarray(camera.K, np.float64)
    k1, k2, p1, p2 = (float(v) for v in camera.dist)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if not (k1 or k2 or p1 or p2):
            # One 3x4 matrix straight to mask pixels: the common, fast case (PINHOLE after undistortion).
            P = (to_mask @ np.c_[camera.R, camera.t]).astype(np.float32)
            uvw = means @ P[:, :3].T
            uvw += P[:, 3]
            z = uvw[:, 2]
            front = z > _NEAR
            u = uvw[:, 0] / z
            v = uvw[:, 1] / z
        else:
            cam = means @ np.asarray(camera.R, np.float32).T
            cam += np.asarray(camera.t, np.float32)
            z = cam[:, 2]
            front = z > _NEAR
            x = cam[:, 0] / z
            y = cam[:, 1] / z
            # Far outside the image the distortion polynomial folds points back in: only trust it
            # for points whose undistorted projection is near the image.
            fx, fy, cx, cy = camera.K[0, 0], camera.K[1, 1], camera.K[0, 2], camera.K[1, 2]
            front &= (np.abs(fx * x + cx - camera.width / 2) < camera.width)
            front &= (np.abs(fy * y + cy - camera.height / 2) < camera.height)
            x = np.where(front, x, np.float32(0))  # no inf/NaN from the polynomial where it is not used
            y = np.where(front, y, np.float32(0))
            r2 = x * x + y * y
            radial = 1.0 + r2 * (k1 + k2 * r2)
            xy = x * y
            x, y = (x * radial + 2.0 * p1 * xy + p2 * (r2 + 2.0 * x * x),
                    y * radial + p1 * (r2 + 2.0 * y * y) + 2.0 * p2 * xy)
            A = to_mask.astype(np.float32)
            u = A[0, 0] * x + A[0, 1] * y + A[0, 2]
            v = A[1, 1] * y + A[1, 2]
    inside = front & (u >= 0) & (u < mw) & (v >= 0) & (v < mh)  # NaN compares False
    idx = np.flatnonzero(inside)
    on_kept = np.zeros(len(means), dtype=bool)
    # u, v >= 0 here, so truncation is floor: pixel (col, row) covers [col, col + 1) x [row, row + 1)
    on_kept[idx] = keep_pixels.ravel()[v[idx].astype(np.int32) * mw + u[idx].astype(np.int32)]
    return inside, on_kept


def remove_outliers(points: np.ndarray, knn: int = 10, knn_percentile: float = 95.0,
                    centroid_percentile: float = 99.0) -> np.ndarray:
    """Bool mask over ``points``: mean kNN distance and distance to the centroid under their percentiles."""
    n = len(points)
    if knn <= 0 or n <= knn:
        return np.ones(n, dtype=bool)
    from scipy.spatial import cKDTree

    pts = np.asarray(points, np.float64)
    distances, _ = cKDTree(pts).query(pts, k=knn + 1, workers=-1)  # column 0 is the point itself
    mean_knn = distances[:, 1:].mean(axis=1)
    to_centroid = np.linalg.norm(pts - pts.mean(axis=0), axis=1)
    return (mean_knn <= np.percentile(mean_knn, knn_percentile)) & (
        to_centroid <= np.percentile(to_centroid, centroid_percentile))


def filter_gaussians_detailed(means: np.ndarray, cameras: Sequence[Camera], masks: Sequence[np.ndarray],
                              config: FilterConfig = FilterConfig()) -> FilterResult:
    """The full filter with its counts. ``masks[i]`` belongs to ``cameras[i]``: uint8 255 keep / 0 exclude."""
    if len(cameras) != len(masks):
        raise ValueError(f"{len(cameras)} cameras but {len(masks)} masks: pass one mask per camera")
    means = np.ascontiguousarray(means, dtype=np.float32).reshape(-1, 3)
    n = len(means)
    views, dropped = select_views(masks, config.min_camera_kept_fraction, config.max_views)
    keep_pixels = [np.ascontiguousarray(np.asarray(masks[i]) > 127) for i in views]
    visible = np.zeros(n, dtype=np.uint16)
    kept_hits = np.zeros(n, dtype=np.uint16)
    for start in range(0, n, CHUNK):
        block = means[start:start + CHUNK]
        vis = visible[start:start + CHUNK]
        hit = kept_hits[start:start + CHUNK]
        for view, pixels in zip(views, keep_pixels):
            inside, on_kept = project_hits(block, cameras[view], pixels)
            vis += inside
            hit += on_kept
    by_masks = kept_hits >= config.min_kept_views
    keep = by_masks.copy()
    survivors = np.flatnonzero(by_masks)
    inliers = remove_outliers(means[survivors], config.outlier_knn, config.knn_percentile,
                              config.centroid_percentile)
    keep[survivors[~inliers]] = False
    return FilterResult(keep=keep, visible=visible, kept_hits=kept_hits, views_used=views,
                        cameras_dropped=int(dropped), removed_by_masks=int(n - by_masks.sum()),
                        removed_as_outliers=int((~inliers).sum()))


def filter_gaussians(means: np.ndarray, cameras: Sequence[Camera], masks: Sequence[np.ndarray],
                     config: FilterConfig = FilterConfig()) -> np.ndarray:
    """(N,) bool keep mask for Gaussian centres ``means`` (N, 3) given per-camera keep masks."""
    return filter_gaussians_detailed(means, cameras, masks, config).keep
