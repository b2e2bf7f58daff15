"""A hand-held 360 walk end to end with the defaults: the synthetic walk (onyx_sample) with an operator
fixed in the lower hemisphere and a person crossing the room, through the frames step and SfM.

Onyx 1.0's defaults (a fixed 12th of the target count of frames, 2048 px views) registered nothing on
such a walk; the defaults now keep frames by parallax, size the views from the source and mask what
moves with the camera.
"""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from onyx_ingest.config import IngestConfig
from onyx_ingest.ingest import ingest_video
from onyx_sample import camera_path_error, make_sample_video
from onyx_sample.actors import PERSON_SIZE, PERSON_X, PERSON_Z
from onyx_sfm.image_index import read_image_index
from onyx_sfm.reconstruct import reconstruct
from onyx_sfm.config import SfmConfig
from onyx_tools.layout import OPERATOR_MASKS, BatchLayout

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def walk(tmp_path_factory):
    """4 s, 6 m at 10 fps, 480x240: small enough for the suite, a real walk's shape otherwise."""
    root = tmp_path_factory.mktemp("walk360")
    video = make_sample_video(root, kind="360", frames=40, width=480, height=240, fps=10, operator=True,
                              passer_by=True)
    layout = BatchLayout(root / "batch")
    ingest_video(IngestConfig(), video.path, layout)
    index = read_image_index(layout.images)
    result = reconstruct(layout.images, index, root / "work", SfmConfig(), panoramas_dir=layout.panoramas)
    return video, layout, result


def test_the_defaults_register_the_walk_on_its_true_path(walk):
    video, layout, result = walk
    model = result.reconstruction
    assert result.strategy == "spherical"
    assert result.registered / result.total >= 0.95
    timestamps = {e["name"]: e["timestamp_s"] for e in json.loads(layout.image_index.read_text())["images"]}
    centres = {}
    for image in model.images.values():
        if image.has_pose:  # every view of a frame shares its panorama's centre
            centres.setdefault(timestamps[image.name], image.projection_center())
    error = camera_path_error(video.truth().centres_by_timestamp(), centres)
    print(f"360 walk: {result.registered}/{result.total} views, {model.num_points3D()} points, "
          f"{model.compute_mean_reprojection_error():.3f} px, path error {error['ratio']:.4%} of "
          f"{error['path_length']:.2f} m")
    assert error["ratio"] <= 0.001
    assert model.compute_mean_reprojection_error() < 1.0 and model.num_points3D() > 1000

    # the passer-by's features are rejected by geometry: (almost) no point where it walked
    s, r, t = error["scale"], np.array(error["rotation"]), error["translation"]
    world = s * np.array([p.xyz for p in model.points3D.values()]) @ r.T + np.array(t)
    on_person = ((np.abs(world[:, 2] - PERSON_Z) < 0.15) & (world[:, 0] > PERSON_X[0] - 0.4)
                 & (world[:, 0] < PERSON_X[1] + 0.4) & (world[:, 1] < -0.1) & (world[:, 1] > -PERSON_SIZE[1]))
    assert on_person.sum() <= 10


def test_no_feature_is_taken_where_the_operator_is(walk):
    _video, layout, result = walk
    masks = {}
    observed = 0
    for image in result.reconstruction.images.values():
        name = image.name
        if name not in masks:
            masks[name] = cv2.imread(str(layout.images / OPERATOR_MASKS / f"{name}.png"), cv2.IMREAD_UNCHANGED)
        xy = np.array([p.xy for p in image.points2D]).reshape(-1, 2)
        if len(xy):
            cols = np.clip(xy[:, 0].astype(int), 0, masks[name].shape[1] - 1)
            rows = np.clip(xy[:, 1].astype(int), 0, masks[name].shape[0] - 1)
            assert (masks[name][rows, cols] == 255).all(), f"a feature of {name} lies in its operator mask"
            observed += len(xy)
    assert observed > 0
    assert any((mask == 0).mean() > 0.2 for mask in masks.values())  # the lower views are partly masked
