"""Bad input: each kind gets its own message, and nothing is written to images/."""

from __future__ import annotations

import pytest

from onyx_ingest.config import IngestConfig
from onyx_ingest.ingest import ingest_video
from onyx_tools.layout import BatchLayout
from onyx_tools.video import VideoError

from .conftest import STONE_SIGN, ffmpeg, need


def _ingest(video, tmp_path):
    layout = BatchLayout(tmp_path / "batch")
    layout.root.mkdir()
    try:
        ingest_video(IngestConfig(), video, layout)
    finally:
        assert not layout.images.exists() and not layout.panoramas.exists()
        assert not any(layout.root.glob(".tmp-*"))


def test_missing_file(tmp_path):
    with pytest.raises(VideoError, match=r"input video .*nowhere\.mp4 does not exist: check the path"):
        _ingest(tmp_path / "nowhere.mp4", tmp_path)


def test_zero_bytes(tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.touch()
    with pytest.raises(VideoError, match=r"is empty \(0 bytes\): the copy or download did not finish"):
        _ingest(empty, tmp_path)


def test_text_file_named_mp4(tmp_path):
    text = tmp_path / "notes.mp4"
    text.write_text("this is a shopping list, not a video\n" * 20)
    with pytest.raises(VideoError, match=r"is not a readable video: .*\(the file holds text, not video: "
                                         r"give the path of the video file itself\)"):
        _ingest(text, tmp_path)


def test_truncated_mp4(tmp_path):
    """stone_sign keeps its index (moov) at the end: the first half has none."""
    data = need(STONE_SIGN).read_bytes()
    half = tmp_path / "half.mp4"
    half.write_bytes(data[: len(data) // 2])
    with pytest.raises(VideoError, match=r"not a readable video: .*\(an MP4 without its index, the moov atom: "
                                         r"the file is truncated, copy it again\)"):
        _ingest(half, tmp_path)


def test_truncated_faststart_mp4(tmp_path):
    """With the index at the front ffprobe is content and ffmpeg exits 0; the decode must still refuse."""
    faststart = tmp_path / "faststart.mp4"
    ffmpeg("-i", str(need(STONE_SIGN)), "-c", "copy", "-movflags", "+faststart", str(faststart))
    data = faststart.read_bytes()
    half = tmp_path / "half_faststart.mp4"
    half.write_bytes(data[: len(data) // 2])
    with pytest.raises(VideoError, match=r"is truncated: its index lists more data than the file holds, and "
                                         r"ffmpeg decoded only \d+ frame\(s\) before the end; copy the file again"):
        _ingest(half, tmp_path)


def test_fewer_than_three_frames(tmp_path):
    short = tmp_path / "two_frames.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=160x120:rate=10", "-frames:v", "2", "-c:v", "libx264",
           "-pix_fmt", "yuv420p", str(short))
    with pytest.raises(VideoError, match=r"has 2 frame\(s\); Onyx needs at least 3"):
        _ingest(short, tmp_path)
