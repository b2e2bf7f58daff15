"""360 video end to end: equirectangular frames kept, each split into the view set's views."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from onyx_ingest.config import IngestConfig
from onyx_ingest.ingest import ingest_video
from onyx_ingest.split import ViewSplitter
from onyx_tools.errors import ToolError
from onyx_tools.layout import BatchLayout
from onyx_tools.spherical import view_set

from .conftest import STONE_SIGN, need

VIEW = 128


@pytest.fixture(scope="module")
def batch_360(equirect_video, tmp_path_factory):
    layout = BatchLayout(tmp_path_factory.mktemp("walk360"))
    # auto: an 800x400 frame is 2:1, so it is detected as equirectangular
    metadata = ingest_video(IngestConfig(video="auto", interval=1.0, view_size=VIEW), equirect_video, layout)
    return layout, metadata, json.loads(layout.image_index.read_text())


def test_twelve_views_per_frame_with_the_right_names(batch_360):
    layout, metadata, index = batch_360
    assert metadata["is_360"] is True and metadata["views_per_frame"] == 12 and metadata["view_set"] == "cube12"
    assert metadata["source_frames"] == 3 and metadata["frames"] == 36
    assert metadata["resolution"] == f"{VIEW}x{VIEW}"
    expected = [f"frame_{k:05d}_v{v:02d}.jpg" for k in (1, 2, 3) for v in range(12)]
    assert [e["name"] for e in index["images"]] == expected
    assert sorted(p.name for p in layout.images.iterdir()) == sorted(expected + ["index.json", "operator_masks"])
    assert sorted(p.name for p in layout.panoramas.iterdir()) == ["operator_masks", "pano_00001.jpg",
                                                                   "pano_00002.jpg", "pano_00003.jpg"]
    for name in expected[:12]:
        assert cv2.imread(str(layout.images / name)).shape == (VIEW, VIEW, 3)
    assert cv2.imread(str(layout.panoramas / "pano_00002.jpg")).shape == (400, 800, 3)
    assert (layout.root / "previews" / "contact_sheet.png").is_file()


def test_index_describes_the_rig(batch_360):
    _layout, _metadata, index = batch_360
    assert index["kind"] == "360" and index["view_set"] == "cube12" and index["view_size"] == VIEW
    # cube12's neighbours are 90 degrees apart: 105 degree views overlap by 15
    assert index["fov_deg"] == 105.0 and index["focal_px"] == pytest.approx(VIEW / 2 / np.tan(np.radians(52.5)))
    assert index["views"] == [{"name": s.name, "yaw_deg": s.yaw_deg, "pitch_deg": s.pitch_deg}
                              for s in view_set("cube12")]
    pitches = sorted({v["pitch_deg"] for v in index["views"]})
    assert pitches == [-35.0, 0.0, 35.0]
    assert [v["yaw_deg"] for v in index["views"] if v["pitch_deg"] == 35.0] == [45.0, 135.0, 225.0, 315.0]
    for entry in index["images"]:
        k = entry["frame"]
        assert entry["view"] == entry["name"][-7:-4] and entry["panorama"] == f"pano_{k:05d}.jpg"
        # 5 fps, one still per second: the pick (the sharpest encoding of it) lies in its second
        assert 5 * (k - 1) <= entry["source_frame"] < 5 * k
        assert entry["timestamp_s"] == pytest.approx(entry["source_frame"] / 5.0)
    assert [p["name"] for p in index["panoramas"]] == ["pano_00001.jpg", "pano_00002.jpg", "pano_00003.jpg"]
    # 3 s at 5 fps: too few panoramas to tell what moves with the camera; the nadir is masked all the same
    assert index["operator_mask"]["camera_fixed_fraction"] == 0 and "only 15 panoramas" in index["operator_mask"]["note"]
    assert index["operator_mask"]["masked_fraction"] == pytest.approx((1 - np.cos(np.radians(20))) / 2, abs=0.003)


def test_written_views_are_the_split_of_the_written_panorama(batch_360):
    layout, _metadata, _index = batch_360
    pano = cv2.imread(str(layout.panoramas / "pano_00002.jpg"))
    splitter = ViewSplitter(view_set("cube12"), VIEW, 800, 400, 105.0)
    for spec, view in splitter.split(pano)[::3]:
        written = cv2.imread(str(layout.images / f"frame_00002_{spec.name}.jpg")).astype(float)
        # both went through JPEG q95 once more or less; the same picture differs by a few levels
        assert np.abs(written - view).mean() < 4.0


def test_other_view_sets(equirect_video, tmp_path):
    layout = BatchLayout(tmp_path)
    metadata = ingest_video(IngestConfig(video="360", interval=1.5, view_size=64, view_set="ring8"),
                            equirect_video, layout)
    assert metadata["views_per_frame"] == 8 and metadata["frames"] == 2 * 8
    # normal mode on the same batch replaces the images and drops the stale panoramas
    metadata = ingest_video(IngestConfig(video="normal", interval=1.5, max_width=400), equirect_video, layout)
    assert metadata["is_360"] is False and metadata["resolution"] == "400x200"
    assert not layout.panoramas.exists()
    assert sorted(p.name for p in layout.images.iterdir()) == ["frame_00001.jpg", "frame_00002.jpg", "index.json"]


def test_forcing_360_on_a_non_equirectangular_video_is_refused(tmp_path):
    with pytest.raises(ToolError, match=r"set to 360 but .* is 450x800, not a 2:1 equirectangular"):
        ingest_video(IngestConfig(video="360"), need(STONE_SIGN), BatchLayout(tmp_path))
    assert not (tmp_path / "images").exists()
