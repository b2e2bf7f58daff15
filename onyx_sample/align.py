"""Similarity (Umeyama) alignment and the camera-path error of an estimated path against the truth."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from onyx_tools.pose_score import rotation_angles_deg, umeyama  # noqa: F401  (one alignment for the whole project)


def _match_key(key, float_decimals: int = 3):
    """Integer keys match exactly; float keys (timestamps in seconds) match to the millisecond."""
    if isinstance(key, (int, np.integer)):
        return int(key)
    return round(float(key), float_decimals)


def camera_path_error(truth_centres: Mapping, estimated_centres: Mapping) -> dict:
    """Align the estimated camera centres to the true ones by a similarity and measure what is left.

    Both mappings share a key per frame: the source frame index (int) or the timestamp in seconds
    (float, matched to the millisecond). Keys present in only one mapping are counted, not used.
    The path length is that of the matched true centres in key order.

    Returns rmse, max, mean (metres of the true scene), path_length, ratio = rmse / path_length,
    matched, missing (truth keys without an estimate), extra (estimates without truth), and the
    similarity (scale, rotation, translation) that maps estimated to true coordinates.
    """
    truth = {_match_key(k): np.asarray(v, np.float64) for k, v in truth_centres.items()}
    est = {_match_key(k): np.asarray(v, np.float64) for k, v in estimated_centres.items()}
    keys = sorted(set(truth) & set(est))
    if len(keys) < 3:
        raise ValueError(f"need at least 3 frames with both a true and an estimated centre, got {len(keys)}")
    dst = np.stack([truth[k] for k in keys])
    src = np.stack([est[k] for k in keys])
    s, r, t = umeyama(src, dst)
    aligned = s * src @ r.T + t
    err = np.linalg.norm(aligned - dst, axis=1)
    path_length = float(np.linalg.norm(np.diff(dst, axis=0), axis=1).sum())
    rmse = float(np.sqrt((err ** 2).mean()))
    return {
        "rmse": rmse,
        "max": float(err.max()),
        "mean": float(err.mean()),
        "path_length": path_length,
        "ratio": rmse / path_length if path_length > 0 else float("inf"),
        "matched": len(keys),
        "missing": len(set(truth) - set(est)),
        "extra": len(set(est) - set(truth)),
        "scale": s,
        "rotation": r.tolist(),
        "translation": t.tolist(),
    }


def rotation_error_deg(truth_rotations: Mapping, estimated_rotations: Mapping,
                       alignment_rotation: np.ndarray | None = None) -> dict:
    """Angular error of estimated camera orientations in the true world frame.

    Rotations are cam_from_world R (3x3) keyed like ``camera_path_error``'s centres. An estimated
    R_est becomes R_est @ A.T in the true world, where A (estimated world -> true world) is
    ``alignment_rotation`` (e.g. ``camera_path_error(...)["rotation"]``) or, when None, the rotation
    that best aligns the orientations themselves (chordal L2 mean), which measures only how
    consistent the orientations are with each other: a nearly straight path pins the roll about its
    own axis poorly, so the centre-based A can add a small common offset.
    Returns mean, max, matched and the alignment used.
    """
    truth = {_match_key(k): np.asarray(v, np.float64) for k, v in truth_rotations.items()}
    est = {_match_key(k): np.asarray(v, np.float64) for k, v in estimated_rotations.items()}
    keys = sorted(set(truth) & set(est))
    if not keys:
        raise ValueError("no frame has both a true and an estimated rotation")
    if alignment_rotation is None:
        # R_true ~ R_est A^T  =>  A ~ R_true^T R_est, averaged and projected onto SO(3)
        m = sum(truth[k].T @ est[k] for k in keys)
        u, _, vt = np.linalg.svd(m)
        fix = np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))])
        r_align = u @ fix @ vt
    else:
        r_align = np.asarray(alignment_rotation, np.float64)
    errs = rotation_angles_deg(np.stack([truth[k] for k in keys]), np.stack([est[k] @ r_align.T for k in keys]))
    return {"mean": float(np.mean(errs)), "max": float(np.max(errs)), "matched": len(keys),
            "alignment": r_align.tolist()}
