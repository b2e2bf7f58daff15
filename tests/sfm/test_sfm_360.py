"""360 SfM on a synthetic equirectangular walk (rendered here, known camera path): the views as a rig,
and SfM on the panoramas with the views' poses derived. Both must hand over a perspective model of images/."""

from __future__ import annotations

import time

import numpy as np
import pycolmap
import pytest
from sfm_synthetic_360 import write_360_batch

from onyx_sfm.image_index import read_image_index
from onyx_tools.pose_score import umeyama
from onyx_sfm.reconstruct import reconstruct
from onyx_sfm.config import SfmConfig

pytestmark = pytest.mark.slow

FRAMES = 8
# small views: fewer features and neighbours keep the two runs within the test budget
FAST = dict(max_features=1024, view_frame_overlap=2)


@pytest.fixture(scope="module")
def walk_batch(tmp_path_factory):
    root = tmp_path_factory.mktemp("walk360")
    walk = write_360_batch(root, frames=FRAMES, pano_width=1024, view_px=256)
    return root, walk


def path_error(model: pycolmap.Reconstruction, walk) -> tuple[float, float]:
    """Largest camera-centre error after similarity alignment, and the true path length."""
    estimated, truth = [], []
    for image in model.images.values():
        if image.has_pose:
            frame = int(image.name.split("_")[1]) - 1
            estimated.append(image.projection_center())
            truth.append(walk.centres[frame])
    estimated, truth = np.array(estimated), np.array(truth)
    s, R, t = umeyama(estimated, truth)
    error = np.linalg.norm(s * estimated @ R.T + t - truth, axis=1).max()
    return float(error), float(np.linalg.norm(np.diff(walk.centres, axis=0), axis=1).sum())


def check_perspective_model(model: pycolmap.Reconstruction, root, index) -> None:
    names = {p.name for p in (root / "images").iterdir()}
    assert {img.name for img in model.images.values()} <= names
    for camera in model.cameras.values():
        assert camera.model == pycolmap.CameraModelId.PINHOLE
        np.testing.assert_allclose(camera.params, [index.focal_px, index.focal_px, 128.0, 128.0], atol=1e-9)
    assert model.num_points3D() > 1000
    assert model.compute_mean_reprojection_error() < 1.0


@pytest.mark.parametrize("strategy", ["rig", "spherical"])
def test_360_strategy(walk_batch, tmp_path, strategy):
    root, walk = walk_batch
    index = read_image_index(root / "images")
    assert index.is_360 and len(index.images) == FRAMES * 12
    started = time.monotonic()
    result = reconstruct(root / "images", index, tmp_path / "work", SfmConfig(spherical=strategy, **FAST),
                         panoramas_dir=root / "panoramas")
    seconds = time.monotonic() - started
    error, length = path_error(result.reconstruction, walk)
    print(f"360 {strategy}: {result.registered}/{result.total} views, "
          f"{result.reconstruction.num_points3D()} points, "
          f"{result.reconstruction.compute_mean_reprojection_error():.3f} px, path error {error / length:.5%} "
          f"of {length:.2f} m, {seconds:.1f} s; {[a.as_metadata() for a in result.attempts]}")
    assert result.strategy == strategy
    check_perspective_model(result.reconstruction, root, index)
    if strategy == "rig":
        assert result.registered / result.total >= 0.95
    else:  # every frame registered, so every view posed
        assert result.registered == result.total
    assert error <= 0.01 * length
