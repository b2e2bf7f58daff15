"""Umeyama alignment and the camera-path error."""

import numpy as np
import pytest

from onyx_sample import camera_path_error, rotation_error_deg, umeyama, walk_path
from onyx_tools.spherical import rot_x, rot_y


def _similarity():
    r = rot_y(0.7) @ rot_x(-0.3)
    return 0.37, r, np.array([1.5, -2.0, 0.25])


def test_umeyama_recovers_a_known_similarity_exactly():
    rng = np.random.default_rng(3)
    src = rng.normal(size=(20, 3))
    s, r, t = _similarity()
    dst = s * src @ r.T + t
    s2, r2, t2 = umeyama(src, dst)
    assert s2 == pytest.approx(s, abs=1e-12)
    assert np.allclose(r2, r, atol=1e-12) and np.allclose(t2, t, atol=1e-12)


def test_path_error_is_zero_for_a_similar_copy_and_measures_noise():
    path = walk_path(40, 10)
    truth = {i: c for i, c in enumerate(path.centres)}
    s, r, t = _similarity()
    # the estimate lives in its own frame: est = inverse similarity of truth
    est = {i: (r.T @ (c - t)) / s for i, c in truth.items()}
    err = camera_path_error(truth, est)
    assert err["rmse"] < 1e-12 and err["matched"] == 40 and err["missing"] == 0
    assert err["path_length"] == pytest.approx(path.path_length)
    assert err["scale"] == pytest.approx(s)
    rot = rotation_error_deg({i: q for i, q in enumerate(path.rotations)},
                             {i: q @ r for i, q in enumerate(path.rotations)}, err["rotation"])
    assert rot["max"] < 1e-6
    assert np.allclose(rotation_error_deg({i: q for i, q in enumerate(path.rotations)},
                                          {i: q @ r for i, q in enumerate(path.rotations)})["alignment"], r)

    rng = np.random.default_rng(0)
    noisy = {i: c + rng.normal(scale=0.01, size=3) / s for i, c in est.items() if i != 7}
    err = camera_path_error(truth, noisy)
    assert 0.005 < err["rmse"] < 0.03 and err["missing"] == 1
    assert err["ratio"] == pytest.approx(err["rmse"] / err["path_length"])


def test_timestamps_match_to_the_millisecond():
    path = walk_path(10, 3)  # 1/3 s steps: float keys that are not exact
    truth = {float(ts): c for ts, c in zip(path.timestamps, path.centres)}
    est = {round(float(ts), 4): c * 2.0 for ts, c in zip(path.timestamps, path.centres)}
    assert camera_path_error(truth, est)["matched"] == 10


def test_too_few_frames_is_refused():
    with pytest.raises(ValueError, match="at least 3"):
        camera_path_error({0: [0, 0, 0], 1: [1, 0, 0]}, {0: [0, 0, 0], 1: [1, 0, 0]})
