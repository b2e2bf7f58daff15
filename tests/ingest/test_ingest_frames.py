"""Frame selection on a real video: count, the sharpest frame of each window, a consistent index."""

from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest

from onyx_ingest.config import IngestConfig
from onyx_ingest.decode import stream_frames
from onyx_ingest.ingest import ingest_video
from onyx_ingest.selection import window_of
from onyx_ingest.sharpness import laplacian_sharpness
from onyx_tools.layout import BatchLayout

from .conftest import STONE_SIGN, need

INTERVAL = 0.2  # stone_sign: 83 frames at 25 fps, 3.32 s -> 17 windows of 5 frames (the last of 3)


@pytest.fixture(scope="module")
def stone_sign_batch(tmp_path_factory):
    video = need(STONE_SIGN)
    layout = BatchLayout(tmp_path_factory.mktemp("stone-sign"))
    progress = []
    metadata = ingest_video(IngestConfig(interval=INTERVAL, max_width=300), video, layout,
                            progress=lambda *args: progress.append(args))
    index = json.loads(layout.image_index.read_text())
    return video, layout, metadata, index, progress


@pytest.fixture(scope="module")
def every_frame():
    """All frames of stone_sign through the same decode path, downscaled like the batch, scored on luma."""
    return [(f.index, f.timestamp_s, laplacian_sharpness(f.luma)) for f in stream_frames(need(STONE_SIGN), 300)]


def test_count_and_metadata(stone_sign_batch):
    _video, _layout, metadata, index, progress = stone_sign_batch
    windows = math.ceil(3.32 / INTERVAL)
    assert metadata["frames"] == metadata["source_frames"] == windows == len(index["images"]) == 17
    assert metadata["decoded_frames"] == 83
    assert metadata["blurry_passed_over"] == 83 - 17
    assert 0 < metadata["sharpest_not_first"] <= 17
    assert metadata["is_360"] is False and metadata["views_per_frame"] == 1
    assert metadata["resolution"] == "300x533"  # 450x800 scaled to max_width 300, aspect kept
    assert metadata["interval_s"] == INTERVAL and metadata["duration_s"] == pytest.approx(3.32)
    assert metadata["contact_sheet_path"] == "previews/contact_sheet.png"
    assert progress and progress[-1][0] == "publish"


def test_timestamps_follow_the_25_fps_stream(every_frame):
    assert len(every_frame) == 83
    for index, timestamp, _ in every_frame:
        assert timestamp == pytest.approx(index / 25.0, abs=1e-6)


def test_sharpest_frame_of_each_window_is_chosen(stone_sign_batch, every_frame):
    _video, _layout, metadata, index, _ = stone_sign_batch
    by_window: dict[int, list] = {}
    for frame_index, timestamp, sharpness in every_frame:
        by_window.setdefault(window_of(timestamp, 0.0, INTERVAL), []).append((sharpness, frame_index))
    assert sorted(by_window) == list(range(17))
    chosen = [entry["source_frame"] for entry in index["images"]]
    assert chosen == [max(by_window[w])[1] for w in sorted(by_window)]
    not_first = sum(1 for w in by_window if max(by_window[w])[1] != by_window[w][0][1])
    assert metadata["sharpest_not_first"] == not_first
    for entry in index["images"]:
        expected = dict((i, s) for s, i in sum(by_window.values(), []))[entry["source_frame"]]
        assert entry["sharpness"] == pytest.approx(expected, abs=0.01)


def test_index_is_consistent_and_images_exist(stone_sign_batch):
    _video, layout, _metadata, index, _ = stone_sign_batch
    assert index["kind"] == "normal" and index["view_set"] is None and index["views"] == []
    assert index["video"]["width"] == 450 and index["video"]["frame_count"] == 83
    assert index["interval_s"] == INTERVAL and index["image_size"] == [300, 533]
    names = [e["name"] for e in index["images"]]
    assert names == [f"frame_{k:05d}.jpg" for k in range(1, 18)]
    assert [e["frame"] for e in index["images"]] == list(range(1, 18))
    assert all(e["view"] is None for e in index["images"])
    sources = [e["source_frame"] for e in index["images"]]
    assert sources == sorted(sources) and len(set(sources)) == 17
    for entry in index["images"]:
        assert entry["timestamp_s"] == pytest.approx(entry["source_frame"] / 25.0, abs=1e-3)
        assert window_of(entry["timestamp_s"], 0.0, INTERVAL) == entry["frame"] - 1
    on_disk = sorted(p.name for p in layout.images.iterdir())
    assert on_disk == sorted(names + ["index.json"])
    for name in names:
        image = cv2.imread(str(layout.images / name))
        assert image.shape == (533, 300, 3)
    sheet = cv2.imread(str(layout.root / "previews" / "contact_sheet.png"))
    assert sheet is not None and sheet.shape[0] > 100 and sheet.shape[1] > 100
    assert not any(p.name.startswith(".tmp-") for p in layout.root.iterdir())


def test_each_image_is_its_source_frame(stone_sign_batch):
    """Decode the video independently (OpenCV) and find which frame each written image is."""
    video, layout, _metadata, index, _ = stone_sign_batch
    capture = cv2.VideoCapture(str(video))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(cv2.resize(frame, (300, 533), interpolation=cv2.INTER_AREA).astype(np.float32))
    assert len(frames) == 83
    for entry in index["images"][::4]:
        image = cv2.imread(str(layout.images / entry["name"])).astype(np.float32)
        window = range(max(0, entry["source_frame"] - 4), min(83, entry["source_frame"] + 5))
        errors = {i: float(np.abs(frames[i] - image).mean()) for i in window}
        assert min(errors, key=errors.get) == entry["source_frame"], errors


def test_first_frame_mode_takes_each_windows_first(tmp_path):
    layout = BatchLayout(tmp_path)
    metadata = ingest_video(IngestConfig(interval=0.4, max_width=200, sharpest_in_window=False),
                            need(STONE_SIGN), layout)
    index = json.loads(layout.image_index.read_text())
    assert [e["source_frame"] for e in index["images"]] == list(range(0, 83, 10))
    assert metadata["sharpest_not_first"] == 0 and metadata["blurry_passed_over"] == 0
    assert metadata["resolution"] == "200x356"


def test_rotated_phone_video_comes_out_upright(tmp_path):
    """A display-matrix rotation (portrait phones) is applied by ffmpeg; the frame size follows it."""
    from .conftest import ffmpeg

    rotated = tmp_path / "rotated.mp4"
    ffmpeg("-i", str(need(STONE_SIGN)), "-c", "copy", "-metadata:s:v:0", "rotate=90", str(rotated))
    layout = BatchLayout(tmp_path / "batch")
    metadata = ingest_video(IngestConfig(interval=1.0, max_width=400), rotated, layout)
    assert metadata["resolution"] == "400x225"  # 800x450 as displayed, scaled to max_width
    assert cv2.imread(str(layout.images / "frame_00001.jpg")).shape == (225, 400, 3)


def test_selection_is_what_the_ffmpeg_command_line_decode_gives(stone_sign_batch):
    """The same frames as decoding with the ffmpeg program (its luma through a pipe) and scoring that."""
    import subprocess

    video, _layout, _metadata, index, _ = stone_sign_batch
    raw = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(video), "-vf",
                          "scale=w='min(iw,300)':h=-1:flags=area,format=yuv444p", "-fps_mode", "passthrough",
                          "-f", "rawvideo", "-pix_fmt", "yuv444p", "pipe:1"], capture_output=True, check=True).stdout
    lumas = np.frombuffer(raw, np.uint8).reshape(-1, 3, 533, 300)[:, 0]  # Y' of each 4:4:4 frame
    assert len(lumas) == 83
    best: dict[int, tuple[float, int]] = {}
    for number, luma in enumerate(lumas):
        window = window_of(number / 25.0, 0.0, INTERVAL)
        best[window] = max(best.get(window, (-1.0, -1)), (laplacian_sharpness(luma), number),
                           key=lambda pair: pair[0])  # the first of equals, as selection keeps it
    assert [entry["source_frame"] for entry in index["images"]] == [best[w][1] for w in sorted(best)]
    assert [entry["sharpness"] for entry in index["images"]] == pytest.approx([best[w][0] for w in sorted(best)],
                                                                               abs=0.01)
