"""Frames of a 360 walk chosen by how far the camera moved, not by a fixed count.

A panorama sees everything around it whatever way the camera turns, so what separates two
frames for SfM is translation: the parallax it causes. While the video decodes, every
``ANALYSIS_PERIOD_S`` the luma plane is shrunk to ``ANALYSIS_WIDTH`` px and corners of the
current window's first panorama are tracked into it (pyramidal Lucas-Kanade, checked forwards
and backwards); the tracks become unit directions, the rotation between the two panoramas is
fitted to them (Kabsch, refitted on the better half), and the median angle left once it is
removed is the parallax. A new frame window opens once that parallax reaches ``step_deg``,
never sooner than ``min_gap_s`` and never later than ``max_gap_s`` after the last one; the
selection keeps the sharpest frame of each window (``selection.py``).

The same shrunk panoramas go to ``observers`` (the camera-fixed region detector), so the
video is analysed once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import cv2
import numpy as np
from onyx_tools.spherical import equirect_to_directions

if TYPE_CHECKING:
    from .decode import DecodedFrame


ANALYSIS_WIDTH = 512  # px of the shrunk panorama: 0.7 degrees a pixel
ANALYSIS_PERIOD_S = 0.1
MAX_CORNERS = 400
MIN_TRACKS = 24  # fewer tracked corners than this: the motion is unknown, a frame is kept
_FB_TOLERANCE_PX = 1.0
_POLE_MARGIN = 0.1  # rows within 18 degrees of a pole are stretched too much to track


def shrink_panorama(luma: np.ndarray, width: int = ANALYSIS_WIDTH) -> np.ndarray:
    """The luma plane of a panorama as a ``width`` x ``width / 2`` image (area filter)."""
    return cv2.resize(luma, (width, width // 2), interpolation=cv2.INTER_AREA)


def rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The rotation R minimising sum |b_i - R a_i|^2 for unit directions a, b (N, 3) (Kabsch)."""
    u, _s, vt = np.linalg.svd(b.T @ a)
    d = np.sign(np.linalg.det(u @ vt)) or 1.0
    return u @ np.diag([1.0, 1.0, d]) @ vt


def angles_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.degrees(np.arccos(np.clip(np.einsum("ij,ij->i", a, b), -1.0, 1.0)))


@dataclass(frozen=True)
class PairMotion:
    tracks: int
    rotation_deg: float
    parallax_deg: float  # median angle left once the rotation is removed


def track_motion(previous: np.ndarray, current: np.ndarray) -> PairMotion | None:
    """The motion between two shrunk panoramas; None when too few corners can be followed."""
    height, width = previous.shape
    margin = int(_POLE_MARGIN * height)
    mask = np.zeros_like(previous)
    mask[margin:height - margin] = 255
    corners = cv2.goodFeaturesToTrack(previous, MAX_CORNERS, 0.01, 6, mask=mask)
    if corners is None or len(corners) < MIN_TRACKS:
        return None
    params = dict(winSize=(21, 21), maxLevel=3,
                  criteria=(cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 20, 0.03))
    forward, ok_f, _ = cv2.calcOpticalFlowPyrLK(previous, current, corners, None, **params)
    backward, ok_b, _ = cv2.calcOpticalFlowPyrLK(current, previous, forward, None, **params)
    good = (ok_f[:, 0] == 1) & (ok_b[:, 0] == 1) & (np.linalg.norm(backward - corners, axis=2)[:, 0] < _FB_TOLERANCE_PX)
    if good.sum() < MIN_TRACKS:
        return None
    p0, p1 = corners[good, 0].astype(np.float64), forward[good, 0].astype(np.float64)
    a = equirect_to_directions(p0[:, 0], p0[:, 1], width, height)
    b = equirect_to_directions(p1[:, 0], p1[:, 1], width, height)
    rotation = rotation_between(a, b)
    residual = angles_deg(a @ rotation.T, b)
    better = residual <= np.median(residual)  # parallax and mistracks weigh on the fit: refit on the better half
    if better.sum() >= 3:
        rotation = rotation_between(a[better], b[better])
        residual = angles_deg(a @ rotation.T, b)
    angle = float(np.degrees(np.arccos(np.clip((np.trace(rotation) - 1) / 2, -1.0, 1.0))))
    return PairMotion(int(good.sum()), angle, float(np.median(residual)))


@dataclass
class MotionStats:
    analysed: int = 0
    untracked: int = 0  # analysed frames whose motion could not be measured
    parallax_deg: float = 0.0  # along the whole video
    rotation_deg: float = 0.0
    by_motion: int = 0  # windows opened because the parallax reached the step
    by_max_gap: int = 0  # ... because max_gap_s passed first

    def as_metadata(self) -> dict:
        return {"analysed_frames": self.analysed, "untracked_frames": self.untracked,
                "parallax_deg": round(self.parallax_deg, 1), "rotation_deg": round(self.rotation_deg, 1),
                "windows_by_motion": self.by_motion, "windows_by_max_gap": self.by_max_gap}


@dataclass
class MotionWindows:
    """``window(frame)`` for ``select_frames``: frame windows of 360 video by parallax.

    The parallax is measured from the panorama that opened the current window, so it does not
    drift with the number of frames analysed. With ``interval_s`` the windows are fixed in time
    instead (the motion is still measured and reported, and the observers see every analysed
    panorama).
    """

    step_deg: float
    min_gap_s: float
    max_gap_s: float
    interval_s: float | None = None
    observers: list[Callable[[np.ndarray], None]] = field(default_factory=list)
    stats: MotionStats = field(default_factory=MotionStats)
    _window: int = 0
    _start_s: float | None = None
    _window_start_s: float = 0.0
    _parallax_deg: float = 0.0  # since the window's first panorama
    _rotation_deg: float = 0.0
    _reference: np.ndarray | None = None
    _analysed_s: float = -np.inf

    def __call__(self, frame: DecodedFrame) -> int:
        t = frame.timestamp_s
        if self._start_s is None:
            self._start_s = self._window_start_s = t
        analysed = t - self._analysed_s >= ANALYSIS_PERIOD_S - 1e-6
        small = self._analyse(frame.luma, t) if analysed else None
        if self.interval_s is not None:
            window = int(np.floor((t - self._start_s) / self.interval_s + 1e-6))
            opened = window != self._window
            self._window = window
        else:
            elapsed = t - self._window_start_s
            moved = self._parallax_deg >= self.step_deg and elapsed >= self.min_gap_s - 1e-6
            opened = moved or elapsed >= self.max_gap_s - 1e-6
            if opened:
                self.stats.by_motion += int(moved)
                self.stats.by_max_gap += int(not moved)
                self._window += 1
        if opened:
            self.stats.parallax_deg += min(self._parallax_deg, 2 * self.step_deg)
            self.stats.rotation_deg += self._rotation_deg
            self._window_start_s = t
            self._parallax_deg = self._rotation_deg = 0.0
            self._reference = small  # None when this frame was not analysed: the next analysed one
        return self._window

    def _analyse(self, luma: np.ndarray, t: float) -> np.ndarray:
        small = shrink_panorama(luma)
        self._analysed_s = t
        self.stats.analysed += 1
        for observer in self.observers:
            observer(small)
        if self._reference is None:
            self._reference = small
            return small
        motion = track_motion(self._reference, small)
        if motion is None:  # lost: the camera moved too fast, or a cut; a frame must be kept now
            self.stats.untracked += 1
            self._parallax_deg = np.inf
        else:
            self._parallax_deg, self._rotation_deg = motion.parallax_deg, motion.rotation_deg
        return small
