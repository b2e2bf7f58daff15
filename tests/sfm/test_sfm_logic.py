"""Pure logic of the sfm tool: pose derivation (exact), rig config, view pairing, strategy choice, errors."""

from __future__ import annotations

import json

import numpy as np
import pycolmap
import pytest

from onyx_sfm.image_index import ViewInfo, read_image_index
from onyx_sfm.poses import camera_centre, derive_view_pose, umeyama_similarity, view_from_pano
from onyx_sfm.rig import build_rig_config, rig_image_name
from onyx_sfm.strategy import (Attempt, SfmConfig, best_attempt, is_good_enough, matching_plan,
                               spherical_plan)
from onyx_sfm.view_pairs import cross_frame_view_pairs, similar_view_pairs
from onyx_tools.errors import ToolError
from onyx_tools.spherical import directions_to_equirect, view_set

CUBE12 = [ViewInfo(s.name, s.yaw_deg, s.pitch_deg) for s in view_set("cube12")]


def random_pose(rng):
    R = pycolmap.Rotation3d(rng.normal(size=3)).matrix()
    return R, rng.normal(size=3) * 3


def test_view_pose_derivation_is_exact():
    rng = np.random.default_rng(1)
    pano_R, pano_t = random_pose(rng)
    points = rng.normal(size=(50, 3)) * 5
    in_pano = points @ pano_R.T + pano_t
    for view in CUBE12:
        R, t = derive_view_pose(pano_R, pano_t, view.yaw_deg, view.pitch_deg)
        # same centre, and every world point seen along the direction the split maps it to
        np.testing.assert_allclose(camera_centre(R, t), camera_centre(pano_R, pano_t), atol=1e-12)
        in_view = points @ R.T + t
        np.testing.assert_allclose(in_view, in_pano @ view_from_pano(view.yaw_deg, view.pitch_deg).T, atol=1e-12)
        np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-12)
    # the view straight ahead (yaw 0, pitch 0) looks where panorama longitude 0 / latitude 0 is
    R, t = derive_view_pose(pano_R, pano_t, 0.0, 0.0)
    np.testing.assert_allclose(R, pano_R, atol=1e-15)
    # a point on the optical axis of a view lands on the view's (yaw, pitch) in the panorama
    view = CUBE12[8]  # yaw 45, pitch +35
    R, t = derive_view_pose(pano_R, pano_t, view.yaw_deg, view.pitch_deg)
    on_axis = R.T @ (np.array([0.0, 0.0, 4.0]) - t)
    u, v = directions_to_equirect(on_axis @ pano_R.T + pano_t, 3600, 1800)
    assert abs((u + 0.5) / 10 - 180 - view.yaw_deg) < 1e-9 and abs(90 - (v + 0.5) / 10 - view.pitch_deg) < 1e-9


def test_rig_config_composes_to_the_derived_view_poses():
    rng = np.random.default_rng(2)
    config = build_rig_config(CUBE12)
    cameras = config.cameras
    assert [c.image_prefix for c in cameras] == [f"{v.name}/" for v in CUBE12]
    assert cameras[0].ref_sensor and not any(c.ref_sensor for c in cameras[1:])
    pano_R, pano_t = random_pose(rng)
    ref_R, ref_t = derive_view_pose(pano_R, pano_t, CUBE12[0].yaw_deg, CUBE12[0].pitch_deg)
    for camera, view in zip(cameras[1:], CUBE12[1:]):
        rig = camera.cam_from_rig
        np.testing.assert_allclose(rig.translation, 0.0, atol=1e-15)
        R = rig.rotation.matrix() @ ref_R  # cam_from_world = cam_from_rig * rig_from_world (rig = ref view)
        t = rig.rotation.matrix() @ ref_t
        R_expected, t_expected = derive_view_pose(pano_R, pano_t, view.yaw_deg, view.pitch_deg)
        np.testing.assert_allclose(R, R_expected, atol=1e-12)
        np.testing.assert_allclose(t, t_expected, atol=1e-12)
    assert rig_image_name("v03", 7) == "v03/frame_00007.jpg"


def test_similarity_alignment_recovers_a_known_transform():
    rng = np.random.default_rng(3)
    source = rng.normal(size=(20, 3))
    R = pycolmap.Rotation3d(np.array([0.3, -0.2, 0.9])).matrix()
    target = 2.5 * source @ R.T + np.array([1.0, -2.0, 0.5])
    s, R_est, t_est = umeyama_similarity(source, target)
    assert s == pytest.approx(2.5)
    np.testing.assert_allclose(R_est, R, atol=1e-12)
    np.testing.assert_allclose(s * source @ R_est.T + t_est, target, atol=1e-12)


def test_views_are_matched_only_with_similar_views_of_neighbouring_frames():
    similar = similar_view_pairs(CUBE12, 60.0)
    assert len(similar) == 36 and ("v00", "v00") in similar and ("v00", "v02") not in similar
    frames = {k: {v.name: f"frame_{k:05d}_{v.name}.jpg" for v in CUBE12} for k in range(1, 6)}
    pairs = cross_frame_view_pairs(frames, CUBE12, frame_overlap=2, max_angle_deg=60.0)
    frame_of = lambda name: int(name.split("_")[1])  # noqa: E731
    assert all(0 < frame_of(b) - frame_of(a) <= 2 for a, b in pairs)  # never within one frame
    assert len(pairs) == 36 * (4 + 3)


def test_strategy_plans():
    assert matching_plan("auto", vocab_tree_available=False)[0] == ["sequential", "exhaustive"]
    assert matching_plan("auto", vocab_tree_available=True)[0] == ["sequential", "loop", "exhaustive"]
    plan, notes = matching_plan("loop", vocab_tree_available=False)
    assert plan == ["exhaustive"] and "vocabulary tree" in notes[0]
    assert matching_plan("sequential", False)[0] == ["sequential"]
    assert spherical_plan("auto", has_panoramas=True) == ["spherical", "rig"]
    assert spherical_plan("auto", has_panoramas=False) == ["rig"]
    with pytest.raises(ToolError, match="panoramas/"):
        spherical_plan("spherical", has_panoramas=False)
    split = Attempt("sequential+incremental", registered=20, total=21, models=2, stranded=1)
    assert not is_good_enough(split, 0.9)
    # an extra model of images the largest already holds is no split
    assert is_good_enough(Attempt("x", registered=21, total=21, models=2, stranded=0), 0.9)
    assert is_good_enough(Attempt("x", registered=19, total=21, models=1), 0.9)
    rescued = Attempt("exhaustive+incremental", registered=21, total=21, models=1)
    assert best_attempt([split, rescued]) is rescued
    assert best_attempt([Attempt("x", total=5)]) is None


def test_config_rejects_bad_parameters_with_one_message():
    assert SfmConfig.from_params({"matching": "auto", "unknown": 1, "inputs": {}}).matching == "auto"
    with pytest.raises(ToolError) as error:
        SfmConfig.from_params({"matching": "fast", "mapper": "magic", "min_registered_ratio": 2})
    message = str(error.value)
    assert "matching='fast'" in message and "mapper='magic'" in message and "min_registered_ratio" in message


def test_image_index_errors_name_the_fix(tmp_path):
    with pytest.raises(ToolError, match="run the frames step first"):
        read_image_index(tmp_path / "images")
    (tmp_path / "images").mkdir()
    with pytest.raises(ToolError, match="run the frames step first"):
        read_image_index(tmp_path / "images")
    for i in range(2):
        (tmp_path / "images" / f"frame_{i:05d}.jpg").write_bytes(b"x")
    with pytest.raises(ToolError, match="at least 3"):
        read_image_index(tmp_path / "images")
    (tmp_path / "images" / "index.json").write_text(json.dumps(
        {"kind": "normal", "images": [{"name": "frame_00009.jpg", "frame": 1}] * 3}))
    with pytest.raises(ToolError, match="missing"):
        read_image_index(tmp_path / "images")
