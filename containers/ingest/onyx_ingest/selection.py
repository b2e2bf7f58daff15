"""Frame selection: one frame per interval window, the sharpest one.

Onyx 1.0 took the frame at each multiple of the interval (ffmpeg's fps
filter), blurry or not. Here the video is cut into windows of ``interval_s`` and each
window yields its sharpest frame. The selection streams: it holds the best frame of
the current window only, so memory does not depend on the video's length.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from .decode import DecodedFrame
from .sharpness import laplacian_sharpness

# Guards the window index against float noise: 0.6 / 0.2 is 2.9999999999999996.
_EPS = 1e-6


@dataclass(frozen=True)
class SelectedFrame:
    frame: DecodedFrame
    sharpness: float
    window: int  # 0-based window number
    candidates: int  # frames the window held
    first_index: int  # the window's first frame (what a fixed interval would take)
    first_sharpness: float

    @property
    def is_first(self) -> bool:
        return self.frame.index == self.first_index


@dataclass
class SelectionStats:
    decoded: int = 0
    windows: int = 0
    blurry_passed_over: int = 0  # frames skipped because a sharper one shared their window
    sharpest_not_first: int = 0  # windows whose pick is not the frame a fixed interval would take
    sharpness_gain: list[float] = field(default_factory=list)  # chosen / first, per window that changed

    def as_metadata(self) -> dict:
        gains = sorted(self.sharpness_gain)
        median = gains[len(gains) // 2] if gains else 1.0
        return {"decoded_frames": self.decoded, "windows": self.windows,
                "blurry_passed_over": self.blurry_passed_over, "sharpest_not_first": self.sharpest_not_first,
                "median_sharpness_gain": round(median, 3)}


def window_of(timestamp_s: float, start_s: float, interval_s: float) -> int:
    """The window a frame at ``timestamp_s`` falls in; interval 0 gives every frame its own."""
    if interval_s <= 0:
        return -1
    return int(math.floor((timestamp_s - start_s) / interval_s + _EPS))


def select_frames(frames: Iterable[DecodedFrame], interval_s: float, sharpest: bool = True,
                  stats: SelectionStats | None = None,
                  score: Callable = laplacian_sharpness,
                  window_of_frame: Callable[[DecodedFrame], int] | None = None) -> Iterator[SelectedFrame]:
    """Yield one frame per non-empty window, in order (the sharpest, or the first when not ``sharpest``).

    Windows are ``interval_s`` long, or numbered by ``window_of_frame`` (non-decreasing) when given.
    """
    stats = stats if stats is not None else SelectionStats()
    start: float | None = None
    current = None  # [window, best frame, best score, count, first frame, first score]

    def close(state) -> SelectedFrame:
        window, best, best_score, count, first, first_score = state
        stats.windows += 1
        if sharpest:  # every other frame of the window lost on sharpness
            stats.blurry_passed_over += count - 1
        if best.index != first.index:
            stats.sharpest_not_first += 1
            stats.sharpness_gain.append(best_score / max(first_score, 1e-9))
        return SelectedFrame(frame=best, sharpness=best_score, window=window, candidates=count,
                             first_index=first.index, first_sharpness=first_score)

    for frame in frames:
        stats.decoded += 1
        if start is None:
            start = frame.timestamp_s
        if window_of_frame is not None:
            window = window_of_frame(frame)
        else:
            window = window_of(frame.timestamp_s, start, interval_s)
        if window == -1:
            window = frame.index
        value = score(frame.luma)
        if current is not None and window != current[0]:
            yield close(current)
            current = None
        if current is None:
            current = [window, frame, value, 1, frame, value]
            continue
        current[3] += 1
        if sharpest and value > current[2]:
            current[1], current[2] = frame, value
    if current is not None:
        yield close(current)
