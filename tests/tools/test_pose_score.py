"""The pose scorer: similarity alignment, centre RMS as a share of the path, rotation error, and the
Strecha ground-truth reader (its convention checked on the real file)."""

import json

import numpy as np
import pytest

from onyx_sample import walk_path
from onyx_tools.pose_score import read_strecha_cameras, score_poses
from onyx_tools.spherical import rot_x, rot_y

DATASETS = __import__("pathlib").Path(__file__).resolve().parents[2] / ".." / "shared" / "datasets"


def _truth(frames=30):
    path = walk_path(frames, 10)
    return {f"{i:04d}.jpg": (path.rotations[i], path.centres[i]) for i in range(frames)}


def _in_other_frame(truth, scale=0.37, rotation=None, shift=(1.5, -2.0, 0.25)):
    """The same cameras in a model's own frame: x_model = (A^T (x_true - t)) / s."""
    rotation = rot_y(0.7) @ rot_x(-0.3) if rotation is None else rotation
    shift = np.asarray(shift)
    return {name: (r @ rotation, rotation.T @ (c - shift) / scale) for name, (r, c) in truth.items()}


def test_a_similar_copy_scores_zero():
    truth = _truth()
    score = score_poses(truth, _in_other_frame(truth))
    assert score.matched == 30 and score.missing == 0
    assert score.centre_rms < 1e-9 and score.median_rotation_deg < 1e-5 and score.max_rotation_deg < 1e-5
    assert score.path_length == pytest.approx(6.0, rel=0.1)


def test_errors_are_measured_and_missing_frames_counted():
    truth = _truth()
    estimate = _in_other_frame(truth, scale=1.0, rotation=np.eye(3), shift=np.zeros(3))
    rng = np.random.default_rng(0)
    noisy = {}
    for name, (r, c) in list(estimate.items())[:-5]:  # the last 5 frames not registered
        tilt = rot_y(np.radians(2.0))
        noisy[name] = (tilt @ r, c + rng.normal(scale=0.01, size=3))
    score = score_poses(truth, noisy)
    assert score.matched == 25 and score.missing == 5
    assert 0.005 < score.centre_rms < 0.03
    assert score.centre_rms_pct == pytest.approx(100 * score.centre_rms / score.path_length)
    assert score.median_rotation_deg == pytest.approx(2.0, abs=0.2)
    with pytest.raises(ValueError, match="at least 3"):
        score_poses(truth, dict(list(noisy.items())[:2]))


def test_strecha_ground_truth_reads_as_cam_from_world(tmp_path):
    cameras = DATASETS / "strecha_fountain_p11" / "gt" / "cameras.json"
    if not cameras.is_file():
        pytest.skip(f"{cameras} is absent (../shared/datasets beside the repo)")
    truth = read_strecha_cameras(cameras)
    document = json.loads(cameras.read_text())
    assert len(truth) == 11
    for name, (r, c) in truth.items():
        record = document["cameras"][name]
        assert np.allclose(r @ r.T, np.eye(3), atol=1e-6)
        # cam_from_world (R, t = -R C) is the file's derived world-to-camera pose
        assert np.allclose(r, record["R_world_to_cam"], atol=1e-9)
        assert np.allclose(-r @ c, record["t_world_to_cam"], atol=1e-6)
    # the optical axes (row 3 of cam_from_world) meet in front of every camera: the facade they look at
    axes = [(r[2], c) for r, c in truth.values()]
    lhs = sum(np.eye(3) - np.outer(d, d) for d, _ in axes)
    rhs = sum((np.eye(3) - np.outer(d, d)) @ c for d, c in axes)
    meeting = np.linalg.solve(lhs, rhs)
    assert all((r @ (meeting - c))[2] > 1.0 for r, c in truth.values())
    bad = tmp_path / "cameras.json"
    bad.write_text('{"cameras": {"a.jpg": {"R": [1, 0]}}}')
    with pytest.raises(ValueError, match="not a ground-truth cameras.json"):
        read_strecha_cameras(bad)
