"""Frames arrive from the decoder as planar Y'CbCr and only kept ones are converted, in Python.

The conversion must give what ffmpeg's own ``format=bgr24`` gives, for each kind of source a
camera or an editor writes: BT.709, BT.2020, SMPTE 240M and untagged (BT.601) matrices,
full-range MJPEG, 4:4:4 (the real test videos), 4:2:0, 4:2:2, 10-bit, odd sizes.
"""

from __future__ import annotations

import subprocess

import numpy as np
import pytest

from onyx_ingest.decode import stream_frames
from onyx_ingest.yuv import planar_pix_fmt
from onyx_tools.video import probe_video

from .conftest import STONE_SIGN, ffmpeg, need

FRAMES = 4


def ffmpeg_bgr(path, width: int, height: int, scale: str | None = None) -> list[np.ndarray]:
    """The first frames as ffmpeg itself converts them to BGR."""
    chain = (f"{scale}," if scale else "") + "format=bgr24"
    data = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-frames:v", str(FRAMES),
                           "-vf", chain, "-f", "rawvideo", "-pix_fmt", "bgr24", "pipe:1"],
                          capture_output=True, check=True).stdout
    return list(np.frombuffer(data, np.uint8).reshape(-1, height, width, 3))


def differences(path, max_width: int | None = None) -> tuple[str, np.ndarray]:
    """(the planar format decode asked for, |ours - ffmpeg's| over the first frames)."""
    decoded = []
    for frame in stream_frames(path, max_width=max_width):
        decoded.append(frame)
        if len(decoded) == FRAMES:
            break
    height, width = decoded[0].luma.shape
    scale = f"scale=w='min(iw,{max_width})':h=-1:flags=area" if max_width else None
    reference = ffmpeg_bgr(path, width, height, scale)
    assert len(reference) == len(decoded) == FRAMES
    ours = np.stack([frame.image for frame in decoded]).astype(np.int16)
    return decoded[0].layout.pix_fmt, np.abs(ours - np.stack(reference).astype(np.int16))


# name: (encoder arguments, planar format decode asks for, largest difference allowed or None).
# 4:4:4 in and out: no chroma resampling on either side, so only rounding differs (range
# conversion of full-range MJPEG adds one level). 8-bit 4:2:0 at even sizes: ffmpeg's fast path
# replicates chroma like ours and rounds down where we round: up to 3 levels. 10-bit, 4:2:2 and
# odd-size 4:2:0: ffmpeg's own BGR path interpolates chroma where the planar hand-over replicates
# it, so single pixels at colour edges differ by tens of levels; there the means are compared.
SOURCES = {
    "bt709-444": (["-c:v", "libx264", "-pix_fmt", "yuv444p", "-colorspace", "bt709"], "yuv444p", 1),
    "bt2020-444": (["-c:v", "libx264", "-pix_fmt", "yuv444p", "-colorspace", "bt2020nc"], "yuv444p", 1),
    "smpte240m-444": (["-c:v", "libx264", "-pix_fmt", "yuv444p", "-colorspace", "smpte240m"], "yuv444p", 1),
    "full-range-mjpeg-444": (["-c:v", "mjpeg", "-pix_fmt", "yuvj444p"], "yuv444p", 2),
    "bt709-420": (["-c:v", "libx264", "-pix_fmt", "yuv420p", "-colorspace", "bt709"], "yuv420p", 3),
    "untagged-420": (["-c:v", "libx264", "-pix_fmt", "yuv420p"], "yuv420p", 3),
    "full-range-mjpeg-420": (["-c:v", "mjpeg", "-pix_fmt", "yuvj420p"], "yuv420p", 3),
    "bt709-10bit-420": (["-c:v", "libx264", "-pix_fmt", "yuv420p10le", "-colorspace", "bt709"], "yuv420p", None),
    "bt2020-422": (["-c:v", "libx264", "-pix_fmt", "yuv422p", "-colorspace", "bt2020nc"], "yuv422p", None),
    "odd-size-420": (["-vf", "scale=301:535", "-c:v", "ffv1", "-pix_fmt", "yuv420p"], "yuv420p", None),
}


@pytest.mark.parametrize("name", list(SOURCES))
def test_conversion_matches_ffmpeg(tmp_path, name):
    args, planar, largest = SOURCES[name]
    source = tmp_path / f"{name}.{'avi' if 'mjpeg' in name else 'mkv'}"
    ffmpeg("-i", str(need(STONE_SIGN)), "-frames:v", str(FRAMES), *args, str(source))
    pix_fmt, difference = differences(source)
    assert pix_fmt == planar
    if largest is not None:
        assert difference.max() <= largest
    # A wrong matrix or range shows in the largest difference (measured 10-13 levels on this video)
    # and, where single pixels may differ a lot, in the mean: 1.55-1.7 levels wrong, 0.6-1.15 right.
    assert difference.mean() < 1.25


def test_real_444_video_and_odd_sizes_after_downscaling():
    video = need(STONE_SIGN)
    assert probe_video(video).pix_fmt == "yuv444p"  # the camera's own 4:4:4 stays 4:4:4
    for max_width, largest in ((None, 1), (300, 2), (301, 2)):  # 450x800, 300x533, 301x535
        pix_fmt, difference = differences(video, max_width)  # downscaled: ffmpeg rounds once, we twice
        assert pix_fmt == "yuv444p" and difference.max() <= largest


def test_chroma_layout_rule():
    assert [planar_pix_fmt(f) for f in ("yuv420p", "yuvj420p", "nv12", "yuv420p10le", "p010le", "gray", "")] \
        == ["yuv420p"] * 7
    assert [planar_pix_fmt(f) for f in ("yuv444p", "yuv422p10le", "rgb24", "gbrp", "bgra")] == ["yuv444p"] * 5
