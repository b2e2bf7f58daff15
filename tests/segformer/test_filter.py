"""The Gaussian filter on synthetic scenes whose right answer is known."""

from __future__ import annotations

import numpy as np
import pycolmap
import pytest

from onyx_segformer.cameras import Camera, read_cameras
from onyx_segformer.config import FilterConfig
from onyx_segformer.filter_gaussians import (filter_gaussians, filter_gaussians_detailed, project_hits,
                                             remove_outliers, select_views)

W, H, F = 160, 120, 100.0
K = np.array([[F, 0, W / 2], [0, F, H / 2], [0, 0, 1.0]])
NO_OUTLIERS = FilterConfig(outlier_knn=0)


def forward_cameras(count: int = 8) -> list[Camera]:
    """A walk along x at z=0, every camera looking down +z (y points down in the image)."""
    return [Camera(K=K, R=np.eye(3), t=-np.array([x, 0.0, 0.0]), width=W, height=H, name=f"c{i:02d}.jpg")
            for i, x in enumerate(np.linspace(-1.0, 1.0, count))]


def grid(x, y, z, n=10):
    g = np.stack(np.meshgrid(np.linspace(*x, n), np.linspace(*y, n), np.linspace(*z, n)), -1)
    return g.reshape(-1, 3)


def top_half_excluded() -> np.ndarray:
    mask = np.full((H, W), 255, np.uint8)
    mask[: H // 2] = 0  # "sky": every row above the principal point
    return mask


def pixel(camera: Camera, point: np.ndarray) -> tuple[int, int]:
    p = camera.K @ (camera.R @ point + camera.t)
    return int(p[1] // p[2]), int(p[0] // p[2])


def test_masked_region_removed_rest_kept():
    cameras = forward_cameras()
    ground = grid((-1, 1), (0.3, 1.0), (4, 6))    # below the horizon in every view: kept
    sky = grid((-1, 1), (-1.0, -0.3), (4, 6))     # above it in every view: removed
    once = np.array([[0.0, 0.6, 5.0]])            # ground, but kept in only one view
    mostly = np.array([[0.2, 0.8, 5.0]])          # ground, excluded in one view only
    behind = np.array([[0.0, 0.5, -5.0]])         # behind every camera: seen by none
    means = np.concatenate([ground, sky, once, mostly, behind]).astype(np.float32)
    masks = [top_half_excluded() for _ in cameras]
    for i, (camera, mask) in enumerate(zip(cameras, masks)):
        if i != 3:
            mask[pixel(camera, once[0])] = 0
    masks[0][pixel(cameras[0], mostly[0])] = 0
    # a ninth view that keeps almost nothing (a frame of pure sky) is not used at all
    cameras.append(Camera(K=K, R=np.eye(3), t=np.zeros(3), width=W, height=H, name="sky.jpg"))
    masks.append(np.zeros((H, W), np.uint8))

    result = filter_gaussians_detailed(means, cameras, masks, NO_OUTLIERS)
    n_ground, n_sky = len(ground), len(sky)
    assert result.cameras_dropped == 1 and list(result.views_used) == list(range(8))
    assert result.visible[: n_ground + n_sky].min() == 8
    assert result.keep[:n_ground].all()
    assert not result.keep[n_ground:n_ground + n_sky].any()
    assert result.kept_hits[n_ground + n_sky] == 1 and not result.keep[n_ground + n_sky]
    assert result.kept_hits[n_ground + n_sky + 1] == 7 and result.keep[n_ground + n_sky + 1]
    assert result.visible[-1] == 0 and not result.keep[-1] and result.unseen == 1
    assert result.removed_by_masks == n_sky + 2 and result.removed_as_outliers == 0
    # the plain entry point gives the same answer
    assert np.array_equal(filter_gaussians(means, cameras, masks, NO_OUTLIERS), result.keep)


def test_single_view_gaussians_are_dropped_unless_configured():
    cameras = forward_cameras(2)  # x = -1 and x = +1
    edge = np.array([[1.0 + 0.75 * 5.0, 0.5, 5.0]], np.float32)  # right border of camera 1 only
    masks = [np.full((H, W), 255, np.uint8)] * 2
    strict = filter_gaussians_detailed(edge, cameras, masks, NO_OUTLIERS)
    assert strict.visible[0] == 1 and strict.single_view == 1 and not strict.keep[0]
    assert filter_gaussians(edge, cameras, masks, FilterConfig(outlier_knn=0, min_kept_views=1))[0]


def test_far_outlier_removed_by_knn_step():
    cameras = forward_cameras()
    rng = np.random.default_rng(0)
    cloud = rng.uniform([-1, 0.3, 4], [1, 1.0, 6], size=(3000, 3))
    far = np.array([[0.0, 6.0, 60.0]])  # below the horizon in every view, on kept pixels, far away
    means = np.concatenate([cloud, far]).astype(np.float32)
    masks = [top_half_excluded() for _ in cameras]
    without = filter_gaussians_detailed(means, cameras, masks, NO_OUTLIERS)
    assert without.keep.all()
    result = filter_gaussians_detailed(means, cameras, masks, FilterConfig())
    assert not result.keep[-1]
    # percentile rule: about 5% (kNN) and 1% (centroid) of the rest go too, as in Onyx 1.0
    assert 0.90 <= result.keep[:-1].mean() <= 0.96
    assert result.removed_as_outliers == int((~result.keep).sum())


def test_remove_outliers_percentiles():
    rng = np.random.default_rng(1)
    points = np.concatenate([rng.normal(size=(1000, 3)), [[50.0, 0, 0]]])
    keep = remove_outliers(points, knn=10)
    assert not keep[-1] and keep.sum() >= 0.93 * len(points)
    assert remove_outliers(points[:5], knn=10).all()  # too few points to judge: all kept


def test_select_views_even_spacing_and_low_keep():
    masks = [np.full((4, 4), 255, np.uint8) for _ in range(120)]
    masks[7] = np.zeros((4, 4), np.uint8)
    views, dropped = select_views(masks, 0.05, 50)
    assert dropped == 1 and len(views) == 50 and 7 not in views
    assert views[0] == 0 and views[-1] == 119
    gaps = np.diff(views)
    assert gaps.min() >= 2 and gaps.max() <= 3


def test_projection_matches_colmap_with_distortion():
    """project_hits lands in the pixel COLMAP projects to, SIMPLE_RADIAL included, and downscaled masks."""
    camera = pycolmap.Camera.create_from_model_name(1, "SIMPLE_RADIAL", 300.0, 640, 480)
    camera.params = [300.0, 321.5, 238.25, -0.08]
    rng = np.random.default_rng(2)
    angle = 0.3
    R = np.array([[np.cos(angle), 0, np.sin(angle)], [0, 1, 0], [-np.sin(angle), 0, np.cos(angle)]])
    t = np.array([0.1, -0.2, 0.5])
    ours = Camera(K=np.array([[300.0, 0, 321.5], [0, 300.0, 238.25], [0, 0, 1]]), R=R, t=t, width=640,
                  height=480, dist=np.array([-0.08, 0, 0, 0]))
    world = rng.uniform([-2, -1.5, 2], [2, 1.5, 4], size=(40, 3))
    cam = world @ R.T + t
    uv = np.asarray(camera.img_from_cam(cam))
    checked = 0
    for scale in (1, 2):
        for point, (u, v) in zip(world, uv):
            us, vs = u / scale, v / scale
            if not (0 <= us < 640 // scale and 0 <= vs < 480 // scale):
                continue
            if min(us % 1, 1 - us % 1, vs % 1, 1 - vs % 1) < 1e-3:
                continue
            only_that_pixel = np.zeros((480 // scale, 640 // scale), bool)
            only_that_pixel[int(vs), int(us)] = True
            inside, on_kept = project_hits(point[None].astype(np.float32), ours, only_that_pixel)
            assert inside[0] and on_kept[0]
            checked += 1
    assert checked >= 30


def test_cameras_from_a_colmap_model(tmp_path):
    reconstruction = pycolmap.Reconstruction()
    reconstruction.add_camera_with_trivial_rig(pycolmap.Camera.create_from_model_name(1, "PINHOLE", F, W, H))
    for image_id, name in ((1, "b.jpg"), (2, "a.jpg")):
        image = pycolmap.Image(name=name, camera_id=1, image_id=image_id)
        pose = pycolmap.Rigid3d(pycolmap.Rotation3d(np.eye(3)), np.array([float(image_id), 0.0, 0.0]))
        reconstruction.add_image_with_trivial_frame(image, pose)
    reconstruction.write(str(tmp_path))
    cameras = read_cameras(tmp_path)
    assert [c.name for c in cameras] == ["a.jpg", "b.jpg"]
    assert np.allclose(cameras[0].t, [2, 0, 0]) and np.allclose(cameras[0].K, K)
    assert (cameras[0].width, cameras[0].height) == (W, H)


def test_mismatched_inputs_rejected():
    with pytest.raises(ValueError, match="one mask per camera"):
        filter_gaussians(np.zeros((3, 3)), forward_cameras(2), [np.zeros((H, W), np.uint8)])
