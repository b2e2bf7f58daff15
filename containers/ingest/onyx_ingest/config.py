"""The ingest tool's settings and Onyx 1.0's (run_pipeline.py) frame-count arithmetic.

The orchestrator passes the settings as Pipes extras; ``IngestConfig.from_params``
validates them all at once and names every bad one, so a misconfigured run fails
before ffmpeg starts.
"""

from __future__ import annotations

from typing import Annotated, Literal

from onyx_tools.config import Quality, Scene, ToolConfig, VideoKind
from onyx_tools.spherical import VIEW_OVERLAP_DEG, source_view_size, view_fov, view_set
from pydantic import Field

ViewSet = Literal["cube12", "ring8", "cube6"]

# Images Onyx 1.0 aimed for per (scene, quality); for 360 video this counts
# perspective views, not panoramas.
TARGET_IMAGES: dict[tuple[str, str], int] = {
    ("outdoor", "production"): 300,
    ("outdoor", "proto"): 150,
    ("indoor", "production"): 150,
    ("indoor", "proto"): 100,
}

FIRST_VERSION_VIEWS_PER_FRAME = 12

# 360 video chosen by motion: the most frames a second (4), and the fewest (one every 2 s, even standing still)
MIN_GAP_S = 0.25
MAX_GAP_S = 2.0


class IngestOptions(ToolConfig):
    """How frames are taken and stored: the ``frames`` asset's configuration."""

    max_width: int = Field(2048, ge=16, le=16384,
                           description="normal video: frames downscaled to at most this width, never upscaled")
    # None, not "auto": Dagster's config schema takes Optional but no union of int and str.
    view_size: Annotated[int, Field(ge=16, le=8192)] | None = Field(
        None, description="360 video: side of each square perspective view in px; unset: the panorama's own "
                          "angular resolution at the view's centre (a 105 degree view of a 640 px wide panorama "
                          "is 264 px), so views are never upsampled past what the source holds")
    view_set: ViewSet = Field("cube12", description="360 view layout: cube12 (Onyx 1.0's 12 views), "
                                                   "ring8 or cube6")
    view_fov_deg: Annotated[float, Field(ge=60, le=150)] | None = Field(
        None, description="360 video: field of view of each view in degrees; unset: neighbouring views "
                          f"overlap by {VIEW_OVERLAP_DEG:g} degrees (cube12: 105, ring8: 90)")
    motion_step_deg: float = Field(
        8.0, gt=0, le=90, description="360 video without an interval: a frame each time the median parallax "
                                      "(what is left of the panorama's motion once its rotation is removed) "
                                      "reaches this many degrees; at least one frame every "
                                      f"{MAX_GAP_S:g} s, at most one every {MIN_GAP_S:g} s")
    operator_mask: bool = Field(True, description="360 video: find what moves with the camera (the operator, "
                                                  "the stick) and keep it out of SfM and training")
    nadir_mask_deg: float = Field(20.0, ge=0, le=90, description="360 video, with operator_mask: also mask "
                                                                "this many degrees around straight down")
    jpeg_quality: int = Field(95, ge=1, le=100)
    sharpest_in_window: bool = Field(True, description="pick the sharpest frame of each interval window, "
                                                       "not its first")

    def fov_deg(self) -> float:
        """The 360 views' field of view in degrees."""
        return view_fov(self.view_set) if self.view_fov_deg is None else float(self.view_fov_deg)

    def view_side(self, pano_width: int) -> int:
        """The 360 views' side in px for panoramas ``pano_width`` px wide."""
        return source_view_size(pano_width, self.fov_deg()) if self.view_size is None else int(self.view_size)


class IngestConfig(IngestOptions):
    """Everything the ingest tool is given: the options and the batch's own choices."""

    scene: Scene = "outdoor"
    quality: Quality = "production"
    video: VideoKind = Field("auto", description="normal | 360 | auto (detected from metadata or a 2:1 frame)")
    interval: float | None = Field(None, gt=0, le=3600, allow_inf_nan=False,
                                   description="seconds between extracted frames; overrides the target count "
                                               "(normal video) or the camera's motion (360 video)")

    @property
    def target_images(self) -> int:
        return TARGET_IMAGES[(self.scene, self.quality)]


def source_frame_count(scene: str, quality: str, views_per_frame: int = 1) -> int:
    """How many frames to take from the video.

    Normal video: the target image count. 360 video: Onyx 1.0 divided the
    target by its 12 views (``max(1, target // 12)``). We divide by the chosen view
    set's size instead, so the *image* count stays near the target whatever the
    layout (ring8 gets more panoramas than cube12); for cube12 this is exactly the
    Onyx 1.0's figure.
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


CONFIG = IngestConfig  # the tool's one settings model (onyx_dagster.recipes validates with it)
