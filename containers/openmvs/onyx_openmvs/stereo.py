"""Depth per view from OpenCV semi-global matching on rectified neighbour pairs.

``pycolmap.patch_match_stereo`` needs CUDA, so the CPU path estimates depth with
StereoSGBM instead: rectify the reference view with a neighbour (their relative pose
comes from the sparse model), match, turn disparity into depth and carry it back to
the reference view's own (undistorted, unrectified) pixel grid, which is what COLMAP's
fusion expects. The sparse points the view observes bound the disparity search, so
SGBM neither wastes time on impossible disparities nor locks onto repeated texture.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from .views import SparseScene, View


@dataclass(frozen=True)
class SGBMConfig:
    neighbours: int = 2              # pairs per reference view; their depths cross-check each other
    min_angle_deg: float = 3.0       # below this the baseline is too short for useful depth
    max_angle_deg: float = 30.0      # above this the views look too different to match
    block_size: int = 5
    uniqueness_ratio: int = 10
    speckle_window: int = 100
    speckle_range: int = 2
    max_disparities: int = 256       # cap on the search range (a multiple of 16)
    agree_tolerance: float = 0.02    # two neighbours' depths must agree within 2 %
    alpha: float = 1.0               # rectification keeps every reference pixel


def _angle_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    cos = np.sum(a * b, axis=-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1) + 1e-12)
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def choose_neighbours(scene: SparseScene, ref: View, config: SGBMConfig) -> list[int]:
    """Indices of the views best paired with ``ref``: many shared points, a useful triangulation angle,
    and a baseline mostly sideways in the reference image (SGBM searches along rows)."""
    scored = []
    for index, other in enumerate(scene.views):
        if other is ref:
            continue
        shared = np.intersect1d(ref.point_ids, other.point_ids, assume_unique=True)
        if len(shared) < 20:
            continue
        points = scene.points[np.searchsorted(scene.point_ids, shared)]
        angle = float(np.median(_angle_deg(points - ref.center, points - other.center)))
        if not config.min_angle_deg <= angle <= config.max_angle_deg:
            continue
        baseline = ref.R @ (other.center - ref.center)
        if abs(baseline[0]) < abs(baseline[1]):  # stereoRectify would make it a vertical pair
            continue
        # favour about 10 degrees: enough parallax for depth, similar enough for matching
        score = len(shared) * math.exp(-((angle - 10.0) / 10.0) ** 2)
        scored.append((score, index))
    return [index for _, index in sorted(scored, reverse=True)[: config.neighbours]]


def _gray(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image


def pair_depth(ref: View, other: View, ref_image: np.ndarray, other_image: np.ndarray,
               ref_points: np.ndarray, config: SGBMConfig) -> np.ndarray:
    """Depth (0 = unknown) on ``ref``'s pixel grid from one rectified pair; ``ref_points`` are the
    world coordinates of the sparse points ``ref`` observes (they bound the disparity search)."""
    size = (ref.width, ref.height)
    R = other.R @ ref.R.T                     # other_from_ref
    T = other.t - R @ ref.t
    R1, R2, P1, P2, _Q, _roi1, _roi2 = cv2.stereoRectify(
        ref.K, np.zeros(5), other.K, np.zeros(5), size, R, T.reshape(3, 1), flags=cv2.CALIB_ZERO_DISPARITY, alpha=config.alpha)
    if abs(P2[1, 3]) > abs(P2[0, 3]):         # vertical rectification: not what SGBM searches
        return np.zeros((ref.height, ref.width), np.float32)
    f = float(P1[0, 0])
    baseline = abs(float(P2[0, 3])) / f
    ref_on_right = P2[0, 3] > 0              # the neighbour is to the left of the reference

    # disparity range from the sparse points, seen in the rectified reference frame
    cam = ref_points @ ref.R.T + ref.t
    z_rect = (cam @ R1.T)[:, 2]
    z_rect = z_rect[z_rect > 1e-6]
    if len(z_rect) < 10:
        return np.zeros((ref.height, ref.width), np.float32)
    d_lo, d_hi = np.percentile(f * baseline / z_rect, [1, 99])
    min_disp = max(0, int(math.floor(0.75 * d_lo)))
    num_disp = int(math.ceil((1.25 * d_hi - min_disp) / 16.0)) * 16
    num_disp = int(min(max(num_disp, 16), config.max_disparities))

    map1 = cv2.initUndistortRectifyMap(ref.K, np.zeros(5), R1, P1, size, cv2.CV_32FC1)
    map2 = cv2.initUndistortRectifyMap(other.K, np.zeros(5), R2, P2, size, cv2.CV_32FC1)
    rect_ref = cv2.remap(_gray(ref_image), *map1, cv2.INTER_LINEAR)
    rect_other = cv2.remap(_gray(other_image), *map2, cv2.INTER_LINEAR)
    if ref_on_right:   # mirror both so the reference is the left image; disparities stay positive
        rect_ref, rect_other = rect_ref[:, ::-1].copy(), rect_other[:, ::-1].copy()

    block = config.block_size
    sgbm = cv2.StereoSGBM_create(
        minDisparity=min_disp, numDisparities=num_disp, blockSize=block,
        P1=8 * block * block, P2=32 * block * block, disp12MaxDiff=1,
        uniquenessRatio=config.uniqueness_ratio, speckleWindowSize=config.speckle_window,
        speckleRange=config.speckle_range, mode=cv2.STEREO_SGBM_MODE_SGBM_3WAY)
    disparity = sgbm.compute(rect_ref, rect_other).astype(np.float32) / 16.0
    if ref_on_right:
        disparity = disparity[:, ::-1]
    # pixels the rectified reference got from outside the image have no real match
    inside = cv2.remap(np.ones((ref.height, ref.width), np.uint8), *map1, cv2.INTER_NEAREST)
    disparity[inside == 0] = 0

    # back to the reference's own grid: original pixel -> rectified pixel is the homography P1 R1 K^-1
    u, v = np.meshgrid(np.arange(ref.width, dtype=np.float64), np.arange(ref.height, dtype=np.float64))
    rays = np.stack([u, v, np.ones_like(u)], axis=-1) @ np.linalg.inv(ref.K).T   # z = 1
    rect_rays = rays @ R1.T
    q = rect_rays @ P1[:, :3].T
    qx = (q[..., 0] / q[..., 2]).astype(np.float32)
    qy = (q[..., 1] / q[..., 2]).astype(np.float32)
    d = cv2.remap(disparity, qx, qy, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    valid = d >= max(min_disp, 0.5)
    depth = np.zeros(d.shape, np.float32)
    # depth along the rectified axis, then along the reference's own optical axis (ray z = 1)
    depth[valid] = (f * baseline / d[valid]) / rect_rays[..., 2][valid]
    z_cam = cam[:, 2][cam[:, 2] > 0]
    lo, hi = np.percentile(z_cam, [1, 99])
    depth[(depth < 0.5 * lo) | (depth > 2.0 * hi)] = 0
    return depth


def combine_depths(depths: list[np.ndarray], tolerance: float) -> np.ndarray:
    """Merge neighbour depths: where several are known they must agree (then averaged), else drop;
    where one is known it stays (fusion checks it against the other views anyway)."""
    stack = np.stack(depths)
    known = stack > 0
    count = known.sum(axis=0)
    total = np.where(known, stack, 0).sum(axis=0)
    mean = np.divide(total, count, out=np.zeros_like(total), where=count > 0)
    spread = np.where(known, np.abs(stack - mean) / np.maximum(mean, 1e-9), 0).max(axis=0)
    mean[(count > 1) & (spread > tolerance)] = 0
    return mean.astype(np.float32)


def normals_from_depth(depth: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Camera-frame unit normals facing the camera (COLMAP's normal-map convention); 0 where unknown."""
    h, w = depth.shape
    u, v = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    # smooth before differencing: SGBM depth is quantised and differentiates into noise
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
