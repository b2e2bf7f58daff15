"""Target counts and intervals exactly as Onyx 1.0, and parameter validation."""

import numpy as np
import pytest

from onyx_ingest.config import TARGET_IMAGES, IngestConfig, frame_interval, source_frame_count
from onyx_tools.errors import ToolError
from onyx_tools.spherical import pinhole_focal, source_view_size, view_fov


def test_target_counts_are_the_first_versions():
    assert TARGET_IMAGES == {("outdoor", "production"): 300, ("outdoor", "proto"): 150,
                             ("indoor", "production"): 150, ("indoor", "proto"): 100}


@pytest.mark.parametrize("scene, quality, normal, three_sixty", [
    ("outdoor", "production", 300, 25),
    ("outdoor", "proto", 150, 12),
    ("indoor", "production", 150, 12),
    ("indoor", "proto", 100, 8),
])
def test_source_frames_normal_and_360(scene, quality, normal, three_sixty):
    assert source_frame_count(scene, quality) == normal
    assert source_frame_count(scene, quality, 12) == three_sixty  # max(1, target // 12)
    # Other view sets divide by their own size (documented choice): ring8 keeps ~target images.
    assert source_frame_count(scene, quality, 8) == max(1, normal // 8)


@pytest.mark.parametrize("duration, frames, interval", [
    (60.0, 300, 0.2),      # round(60 / 300, 2)
    (100.0, 150, 0.67),    # 0.6666.. rounds to 0.67
    (3.32, 300, 0.01),     # stone_sign, outdoor/production
    (3.32, 25, 0.13),      # a 360 clip of the same length
    (7.0, 8, 0.88),        # 0.875 rounds to even: Python's round, as Onyx 1.0 used
    (1.0, 300, 0.0),       # shorter than the frame count: every decoded frame is its own window
])
def test_interval_is_round_duration_over_frames(duration, frames, interval):
    assert frame_interval(duration, frames) == interval


def test_interval_override_wins():
    assert frame_interval(60.0, 300, override=1.5) == 1.5


def test_params_from_pipes_extras():
    cfg = IngestConfig.from_params({"scene": "indoor", "quality": "proto", "video": "360", "interval": None,
                                    "max_width": 1024, "view_size": 512, "view_set": "ring8",
                                    "jpeg_quality": 90, "sharpest_in_window": False,
                                    "inputs": {"video": "/x.mp4"}})
    assert (cfg.scene, cfg.quality, cfg.video, cfg.interval) == ("indoor", "proto", "360", None)
    assert (cfg.max_width, cfg.view_size, cfg.view_set, cfg.jpeg_quality) == (1024, 512, "ring8", 90)
    assert cfg.sharpest_in_window is False and cfg.target_images == 100
    assert IngestConfig.from_params({}) == IngestConfig()


def test_every_bad_param_is_named():
    with pytest.raises(ToolError) as caught:
        IngestConfig.from_params({"scene": "garden", "quality": "best", "video": "3d", "interval": -1,
                                  "max_width": 0, "view_set": "cube24", "jpeg_quality": 101,
                                  "sharpest_in_window": "maybe"})
    message = str(caught.value)
    for expected in ("scene: got 'garden', expected 'indoor' or 'outdoor'",
                     "quality: got 'best'", "video: got '3d'", "interval: Input should be greater than 0 (got -1)",
                     "max_width: Input should be greater than or equal to 16 (got 0)",
                     "view_set: got 'cube24', expected 'cube12', 'ring8' or 'cube6'",
                     "jpeg_quality: Input should be less than or equal to 100 (got 101)",
                     "sharpest_in_window: Input should be a valid boolean"):
        assert expected in message, message
    with pytest.raises(ToolError, match="colour: not a setting"):
        IngestConfig.from_params({"colour": "red"})


def test_360_views_are_sized_from_the_source():
    # a 90 degree view of side S holds S/2 px a radian at its centre, the panorama W/(2 pi)
    assert source_view_size(640, 90.0) == 202 and source_view_size(3840, 90.0) == 1222
    assert (view_fov("cube12"), view_fov("cube6"), view_fov("ring8")) == (105.0, 105.0, 90.0)
    cfg = IngestConfig()  # the defaults: sized from the source, neighbouring views overlapping
    assert cfg.view_size is None and cfg.fov_deg() == 105.0
    side = cfg.view_side(640)
    assert side == 264
    # never upsampled: the view's centre holds no more pixels a radian than the panorama
    assert pinhole_focal(side, cfg.fov_deg()) <= 640 / (2 * np.pi) < pinhole_focal(side + 2, cfg.fov_deg())
    fixed = IngestConfig(view_size=512, view_fov_deg=90.0)
    assert (fixed.view_side(640), fixed.fov_deg()) == (512, 90.0)
    with pytest.raises(ToolError, match="view_size"):
        IngestConfig.from_params({"view_size": 8})
