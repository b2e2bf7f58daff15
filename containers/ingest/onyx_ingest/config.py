"""Ingest parameters and the first version's frame-count arithmetic.

The orchestrator passes the parameters as Pipes extras; ``IngestConfig.from_params``
validates them all at once and names every bad one, so a misconfigured run fails
before ffmpeg starts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from onyx_tools.errors import ToolError
from onyx_tools.spherical import view_set

SCENES = ("indoor", "outdoor")
QUALITIES = ("proto", "production")
VIDEO_KINDS = ("normal", "360", "auto")
VIEW_SETS = ("cube12", "ring8", "cube6")

# Images the first version aimed for per (scene, quality); for 360 video this counts
# perspective views, not panoramas.
TARGET_IMAGES: dict[tuple[str, str], int] = {
    ("outdoor", "production"): 300,
    ("outdoor", "proto"): 150,
    ("indoor", "production"): 150,
    ("indoor", "proto"): 100,
}

FIRST_VERSION_VIEWS_PER_FRAME = 12


@dataclass(frozen=True)
class IngestConfig:
    """What the ``frames`` asset asks of the ingest tool."""

    scene: str = "outdoor"
    quality: str = "production"
    video: str = "auto"  # normal | 360 | auto (detect from metadata or a 2:1 frame)
    interval: float | None = None  # seconds between extracted frames; overrides the target count
    max_width: int = 2048  # normal video: frames are downscaled to at most this width, never upscaled
    view_size: int = 2048  # 360 video: side of each square perspective view
    view_set: str = "cube12"  # 360 view layout (onyx_tools.spherical.view_set)
    jpeg_quality: int = 95
    sharpest_in_window: bool = True  # pick the sharpest frame of each interval window, not its first

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> IngestConfig:
        """Build from Pipes extras (unknown keys such as ``inputs`` are ignored; None means default)."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in params.items() if k in known and (v is not None or k == "interval")}
        problems: list[str] = []
        coerced: dict[str, Any] = {}
        for name, value in values.items():
            try:
                coerced[name] = _coerce(name, value)
            except ValueError as error:
                problems.append(f"{name}: {error}")
        if problems:
            raise ToolError("invalid ingest parameters:\n  " + "\n  ".join(problems))
        return cls(**coerced)

    @property
    def target_images(self) -> int:
        return TARGET_IMAGES[(self.scene, self.quality)]


def _coerce(name: str, value: Any) -> Any:
    def choice(options: tuple[str, ...]) -> str:
        text = str(value)
        if text not in options:
            raise ValueError(f"got {value!r}, expected one of {', '.join(options)}")
        return text

    def integer(lo: int, hi: int) -> int:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ValueError(f"got {value!r}, expected a whole number from {lo} to {hi}")
        try:
            number = int(str(value))
        except ValueError:
            raise ValueError(f"got {value!r}, expected a whole number from {lo} to {hi}") from None
        if not lo <= number <= hi:
            raise ValueError(f"got {number}, expected a whole number from {lo} to {hi}")
        return number

    if name == "scene":
        return choice(SCENES)
    if name == "quality":
        return choice(QUALITIES)
    if name == "video":
        return choice(VIDEO_KINDS)
    if name == "view_set":
        return choice(VIEW_SETS)
    if name == "interval":
        if value is None:
            return None
        try:
            seconds = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"got {value!r}, expected seconds between frames (e.g. 0.5) or none") from None
        if isinstance(value, bool) or not math.isfinite(seconds) or not 0 < seconds <= 3600:
            raise ValueError(f"got {value!r}, expected seconds between frames, more than 0 and at most 3600")
        return seconds
    if name == "max_width":
        return integer(16, 16384)
    if name == "view_size":
        return integer(16, 8192)
    if name == "jpeg_quality":
        return integer(1, 100)
    if name == "sharpest_in_window":
        if isinstance(value, bool):
            return value
        if str(value).lower() in ("true", "1", "yes"):
            return True
        if str(value).lower() in ("false", "0", "no"):
            return False
        raise ValueError(f"got {value!r}, expected true or false")
    raise ValueError("not an ingest parameter")  # pragma: no cover - filtered by from_params


def source_frame_count(scene: str, quality: str, views_per_frame: int = 1) -> int:
    """How many frames to take from the video.

    Normal video: the target image count. 360 video: the first version divided the
    target by its 12 views (``max(1, target // 12)``). We divide by the chosen view
    set's size instead, so the *image* count stays near the target whatever the
    layout (ring8 gets more panoramas than cube12); for cube12 this is exactly the
    first version's figure.
    """
    target = TARGET_IMAGES[(scene, quality)]
    if views_per_frame <= 1:
        return target
    return max(1, target // views_per_frame)


def frame_interval(duration_s: float, source_frames: int, override: float | None = None) -> float:
    """Seconds between extracted frames: the override, else round(duration / source_frames, 2)."""
    if override is not None:
        return float(override)
    return round(duration_s / max(1, source_frames), 2)


def views_per_frame(view_set_name: str) -> int:
    return len(view_set(view_set_name))
