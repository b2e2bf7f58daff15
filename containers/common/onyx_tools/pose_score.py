"""How right a set of camera poses is, against ground truth: plain functions over arrays.

An SfM model is known only up to a similarity (scale, rotation, translation), so the estimated
camera centres are first aligned to the true ones by the similarity that fits them best
(Umeyama 1991); what is left is the error. The centre error is given as a percentage of the
true path length (so it reads the same for a 6 m walk and a 60 m street), and the rotation
error as the median angle between each true orientation and its aligned estimate.

Poses here are ``cam_from_world`` rotations R (x_cam = R x_world + t) and camera centres C.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np


def umeyama(source: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """The similarity (s, R, t) minimising sum |target - (s R source + t)|^2 (Umeyama 1991).

    ``source`` and ``target`` are (N, 3) with N >= 3 points not all on one line.
    """
    src = np.asarray(source, np.float64)
    dst = np.asarray(target, np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[0] < 3:
        raise ValueError(f"need two (N, 3) arrays with N >= 3, got {src.shape} and {dst.shape}")
    mu_s, mu_d = src.mean(axis=0), dst.mean(axis=0)
    xs, xd = src - mu_s, dst - mu_d
    cov = xd.T @ xs / len(src)
    u, sing, vt = np.linalg.svd(cov)
    sign = np.eye(src.shape[1])
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[-1, -1] = -1.0
    r = u @ sign @ vt
    var_s = (xs ** 2).sum() / len(src)
    if var_s <= 0:
        raise ValueError("the source points are all the same point")
    s = float(np.trace(np.diag(sing) @ sign) / var_s)
    t = mu_d - s * r @ mu_s
    return s, r, t


def path_length(centres: np.ndarray) -> float:
    """Length of the polyline through ``centres`` (N, 3) in their order."""
    centres = np.asarray(centres, np.float64).reshape(-1, 3)
    return float(np.linalg.norm(np.diff(centres, axis=0), axis=1).sum())


def rotation_angles_deg(truth: np.ndarray, estimate: np.ndarray) -> np.ndarray:
    """Angle (degrees) of truth[i] @ estimate[i].T for stacks of 3x3 rotations."""
    delta = np.einsum("nij,nkj->nik", np.asarray(truth, np.float64), np.asarray(estimate, np.float64))
    cosine = (np.trace(delta, axis1=1, axis2=2) - 1.0) / 2.0
    # The sine from the skew part as well: arccos alone loses half the digits near 0 degrees
    # (1e-6 degrees of noise on identical rotations), atan2 keeps them at every angle.
    skew = np.stack([delta[:, 2, 1] - delta[:, 1, 2], delta[:, 0, 2] - delta[:, 2, 0],
                     delta[:, 1, 0] - delta[:, 0, 1]], axis=-1)
    sine = np.linalg.norm(skew, axis=-1) / 2.0
    return np.degrees(np.arctan2(sine, cosine))


@dataclass(frozen=True)
class PoseScore:
    """The error of the images both sides have, after the best similarity alignment."""

    matched: int            # images with both a true and an estimated pose
    missing: int            # true images without an estimate (not registered)
    centre_rms: float       # in the true scene's units
    path_length: float      # of the true centres in name order, same units
    median_rotation_deg: float
    max_rotation_deg: float

    @property
    def centre_rms_pct(self) -> float:
        """Centre RMS as a percentage of the true path length."""
        return 100.0 * self.centre_rms / self.path_length if self.path_length > 0 else float("inf")

    def as_dict(self) -> dict:
        return {"matched": self.matched, "missing": self.missing, "centre_rms": round(self.centre_rms, 6),
                "path_length": round(self.path_length, 4), "centre_rms_pct": round(self.centre_rms_pct, 4),
                "median_rotation_deg": round(self.median_rotation_deg, 4),
                "max_rotation_deg": round(self.max_rotation_deg, 4)}

    def __str__(self) -> str:
        return (f"{self.matched} matched ({self.missing} missing), centre RMS {self.centre_rms_pct:.3f}% of "
                f"the path, median rotation {self.median_rotation_deg:.3f} deg")


def score_poses(truth: Mapping[str, tuple[np.ndarray, np.ndarray]],
                estimate: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> PoseScore:
    """Score ``estimate`` against ``truth``; both map an image name to (cam_from_world R, centre C).

    The path length is that of all true centres in name order (a model that drops frames is not
    scored against a shorter path). Needs at least 3 common images whose centres are not all
    on one point.
    """
    names = sorted(set(truth) & set(estimate))
    if len(names) < 3:
        raise ValueError(f"need at least 3 images with both a true and an estimated pose, got {len(names)}")
    true_r = np.stack([np.asarray(truth[n][0], np.float64) for n in names])
    true_c = np.stack([np.asarray(truth[n][1], np.float64).reshape(3) for n in names])
    est_r = np.stack([np.asarray(estimate[n][0], np.float64) for n in names])
    est_c = np.stack([np.asarray(estimate[n][1], np.float64).reshape(3) for n in names])
    scale, rotation, translation = umeyama(est_c, true_c)
    aligned_c = scale * est_c @ rotation.T + translation
    errors = np.linalg.norm(aligned_c - true_c, axis=1)
    # an estimated camera in the true world: x_cam = R_est (A^T x_true + ...), so R_true ~ R_est A^T
    angles = rotation_angles_deg(true_r, est_r @ rotation.T)
    all_true = np.stack([np.asarray(truth[n][1], np.float64).reshape(3) for n in sorted(truth)])
    return PoseScore(matched=len(names), missing=len(set(truth) - set(estimate)),
                     centre_rms=float(np.sqrt((errors ** 2).mean())), path_length=path_length(all_true),
                     median_rotation_deg=float(np.median(angles)), max_rotation_deg=float(angles.max()))


def read_strecha_cameras(path: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Ground truth of a Strecha benchmark folder's ``gt/cameras.json``: image name -> (cam_from_world R, C).

    The file stores R camera-to-world (columns are the camera axes in world) and the centre C;
    x ~ K R^T (X - C), so cam_from_world is R^T.
    """
    path = Path(path)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        cameras = document["cameras"]
        return {name: (np.asarray(record["R"], np.float64).reshape(3, 3).T,
                       np.asarray(record["C"], np.float64).reshape(3))
                for name, record in cameras.items()}
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{path}: not a ground-truth cameras.json with cameras.<name>.R and .C "
                         f"({type(error).__name__}: {error})") from None
