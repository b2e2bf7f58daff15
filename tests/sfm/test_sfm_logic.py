"""Pure logic of the sfm tool: pose derivation (exact), rig config, view pairing, strategy choice, errors."""

from __future__ import annotations

import json

import numpy as np
import pycolmap
import pytest

from onyx_sfm.image_index import ViewInfo, read_image_index
from onyx_sfm.keyframes import keyframe_step, select_keyframes
from onyx_sfm.poses import camera_centre, derive_view_pose, view_from_pano
from onyx_tools.pose_score import umeyama
from onyx_sfm.rig import build_rig_config, rig_image_name
from onyx_sfm.config import SfmConfig
from onyx_sfm.strategy import (Attempt, best_attempt, is_good_enough, matching_plan,
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
    s, R_est, t_est = umeyama(source, target)
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
    # never exhaustive unless chosen: its cost grows with the square of the frames
    assert matching_plan("auto", vocab_tree_available=False)[0] == ["sequential", "retrieval"]
    assert matching_plan("auto", vocab_tree_available=True)[0] == ["sequential", "retrieval"]
    plan, notes = matching_plan("loop", vocab_tree_available=False)
    assert plan == ["retrieval"] and "vocabulary tree" in notes[0]
    assert matching_plan("loop", vocab_tree_available=True)[0] == ["loop"]
    assert matching_plan("sequential", False)[0] == ["sequential"]
    assert matching_plan("exhaustive", False)[0] == ["exhaustive"]
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
    assert SfmConfig.from_params({"matching": "auto", "inputs": {}}).matching == "auto"
    with pytest.raises(ToolError) as error:
        SfmConfig.from_params({"matching": "fast", "mapper": "magic", "min_registered_ratio": 2, "unknown": 1})
    message = str(error.value)
    assert "matching: got 'fast'" in message and "mapper: got 'magic'" in message
    assert "min_registered_ratio" in message and "unknown: not a setting" in message


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


def test_nothing_registered_advises_only_settings_not_tried_and_settable_from_the_cli():
    """The textureless-video message: a matcher or mapper the run used is not advised again, and every
    setting it names is one `onyx resume --set STEP.SETTING=VALUE` takes."""
    import re

    from onyx_dagster.operations import overrides
    from onyx_sfm.strategy import registered_nothing_message

    auto = registered_nothing_message(40, [Attempt("sequential+incremental", total=40),
                                           Attempt("exhaustive+incremental", total=40)])
    assert "tried sequential+incremental, exhaustive+incremental" in auto
    assert "matching=exhaustive" not in auto and "sparse_model.mapper=global" in auto and "frames.interval" in auto
    both = registered_nothing_message(40, [Attempt("exhaustive+global", total=40)])
    assert "matching=" not in both and "mapper=" not in both and "frames.interval" in both
    sequential = registered_nothing_message(40, [Attempt("sequential+global", total=40)])
    assert "sparse_model.matching=exhaustive" in sequential and "mapper=" not in sequential
    rig = registered_nothing_message(60, [Attempt("rig", total=60)])
    assert "matching=" not in rig and "mapper=" not in rig
    for message in (auto, both, sequential, rig):
        named = re.findall(r"\b(frames|sparse_model)\.([a-z_]+)(?:=([a-z0-9.]+))?", message)
        assert named
        for step, setting, value in named:
            overrides.parse([f"{step}.{setting}={value or '0.1'}"])  # raises if the CLI could not set it


def test_sequential_pairs_follow_colmap_quadratic_overlap():
    from onyx_sfm.view_pairs import frame_pairs

    assert frame_pairs([0, 1, 2, 3], 2) == [(0, 1), (0, 2), (1, 2), (1, 3), (2, 3)]
    pairs = frame_pairs(list(range(40)), 3, quadratic=True)
    assert (0, 4) in pairs and (0, 5) not in pairs and (10, 14) in pairs  # 2^0, 2^1, 2^2 ahead, and 1..3
    assert len(pairs) == len(set(pairs)) and all(a < b for a, b in pairs)


def test_retrieval_finds_a_revisited_place_beyond_the_sequential_pairs():
    from onyx_sfm.retrieval import retrieval_pairs, train_vocabulary, vlad

    rng = np.random.default_rng(0)
    places = [rng.gamma(0.3, size=(400, 128)) for _ in range(6)]
    places = [np.clip(p / p.max(axis=1, keepdims=True) * 255, 0, 255) for p in places]
    # a walk through places 0..5, six frames each, that ends where it started (place 0 again)
    route = [k for k in range(6) for _ in range(6)] + [0] * 6
    descriptors = []
    for place in route:
        seen = places[place][rng.choice(400, size=250, replace=False)]
        descriptors.append(np.clip(seen + rng.normal(scale=12, size=seen.shape), 0, 255).astype(np.uint8))
    names = [f"frame_{i + 1:05d}.jpg" for i in range(len(route))]
    pairs, retrieved = retrieval_pairs(names, descriptors, overlap=3, quadratic_overlap=False, top_k=3)
    index = {name: i for i, name in enumerate(names)}
    loop = [(index[a], index[b]) for a, b in pairs if index[b] >= 36 and index[a] < 6]
    assert len(loop) >= 6, "the return to place 0 is matched with its first visit"
    assert retrieved >= 6
    # each frame's single best retrieval beyond its neighbours is the same place wherever there is one
    centres = train_vocabulary(descriptors)
    vectors = np.stack([vlad(d, centres) for d in descriptors])
    similarity = vectors @ vectors.T
    for i in range(len(route)):
        others = [j for j in range(len(route)) if abs(i - j) > 3]
        if any(route[j] == route[i] for j in others):
            assert route[max(others, key=lambda j: similarity[i, j])] == route[i], i
    # linear in frames: at most overlap + top_k new pairs per frame
    assert len(pairs) <= len(names) * (3 + 3)


def test_a_global_model_with_a_camera_off_the_path_is_poor():
    from onyx_sfm.strategy import poor_global_model

    path = np.stack([np.linspace(0, 10, 30), np.zeros(30), np.zeros(30)], axis=1)
    assert poor_global_model(path, 30, 30, 0.9) == ""
    outlier = path.copy()
    outlier[17] = [4.0, 6.0, -3.0]  # one rotation averaged wrong: the camera lands metres away
    assert "off the path" in poor_global_model(outlier, 30, 30, 0.9)
    assert poor_global_model(path[:20], 20, 30, 0.9) == "registered 20/30"


def test_partial_model_message_names_settings_the_cli_takes():
    import re

    from onyx_dagster.operations import overrides
    from onyx_sfm.strategy import partial_model_message

    message = partial_model_message(21, 29, 0.9, [Attempt("sequential+incremental", registered=21, total=29,
                                                          models=2)])
    assert "registered only 21 of 29 images (72%, under min_registered_ratio=0.9" in message
    assert "sequential+incremental: 21/29 in 2 model(s)" in message
    named = re.findall(r"\b(frames|sparse_model)\.([a-z_]+)(?:=([a-z0-9.]+))?", message)
    assert ("sparse_model", "accept_partial_model", "true") in named
    for step, setting, value in named:
        overrides.parse([f"{step}.{setting}={value or '0.1'}"])  # raises if the CLI could not set it


def test_retrieval_of_blank_frames_keeps_the_sequential_pairs():
    from onyx_sfm.retrieval import retrieval_pairs

    names = [f"frame_{i + 1:05d}.jpg" for i in range(20)]
    empty = [np.zeros((0, 128), np.uint8) for _ in names]
    pairs, retrieved = retrieval_pairs(names, empty, overlap=3, quadratic_overlap=False, top_k=5)
    assert retrieved == 0 and len(pairs) == 17 * 3 + 3


def _quadratic_motion(count: int, pixels_per_frame: float, inliers_at) -> dict[tuple[int, int], tuple[float, int]]:
    """Pairs as sequential matching makes them (offsets 1, 2, 4, ...), content moving steadily."""
    return {(i, i + offset): (offset * pixels_per_frame, inliers_at(offset))
            for i in range(count) for offset in (1, 2, 4, 8, 16, 32, 64) if i + offset < count}


def test_keyframes_are_spaced_by_image_motion_in_powers_of_two():
    strong = lambda offset: 2000  # noqa: E731
    # 3 px per frame, at most 32 px between keyframes: 8 frames (24 px), not 16 (48 px)
    assert keyframe_step(_quadratic_motion(300, 3.0, strong), 32.0) == 8
    # the same walk sampled 4x more densely: 4x the step, the keyframes stay as many
    assert keyframe_step(_quadratic_motion(1200, 0.75, strong), 32.0) == 32
    # frames that already move more than the bound between neighbours: every frame is a keyframe
    assert keyframe_step(_quadratic_motion(60, 40.0, strong), 32.0) == 1
    # a step is refused when keyframes would share too few matches to carry tracks over
    # ... and when the keyframe after next would: 100 inliers 4 frames apart, 50 at 8, so every 2nd frame
    assert keyframe_step(_quadratic_motion(300, 1.0, lambda offset: 400 // offset), 32.0) == 2
    assert keyframe_step({}, 32.0) == 1
    assert select_keyframes(10, 4) == [0, 4, 8, 9]
    assert select_keyframes(9, 4) == [0, 4, 8]
    assert select_keyframes(5, 1) == [0, 1, 2, 3, 4]
    # where two keyframes are a weak pair (a fast pan), frames halfway are added until the chain holds
    motion = _quadratic_motion(17, 3.0, strong)
    motion[(8, 16)] = (90.0, 2000)   # moved 3x the bound: 12 joins
    motion[(8, 12)] = (45.0, 2000)   # still over twice the bound: 10 joins
    assert select_keyframes(17, 8, motion, 20.0) == [0, 8, 10, 12, 16]
