"""The encoded sample videos: frame count, size, rate, 360 tagging, ground truth next to them."""

import json
import subprocess

import numpy as np

from onyx_sample import load_truth, make_sample_video
from onyx_tools.video import probe_video

from .conftest import needs_ffmpeg


def _count_frames(path):
    out = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0",
                          "-show_entries", "stream=nb_read_frames,width,height,pix_fmt,codec_name",
                          "-of", "json", str(path)], check=True, capture_output=True, text=True).stdout
    return json.loads(out)["streams"][0]


@needs_ffmpeg
def test_pinhole_video_decodes_to_expected_frames(walk30):
    s = _count_frames(walk30.path)
    assert (int(s["nb_read_frames"]), s["width"], s["height"]) == (30, 640, 360)
    assert (s["codec_name"], s["pix_fmt"]) == ("h264", "yuv420p")
    info = probe_video(walk30.path)
    assert info.fps == 10 and not info.looks_equirectangular
    truth = load_truth(walk30.truth_path)
    assert truth.frame_count == 30 and truth.intrinsics.model == "PINHOLE"
    assert truth.frame_at(1.3) == 13
    assert np.allclose(truth.centres_by_frame()[13], truth.centres_by_timestamp()[1.3])
    assert truth.path_length == walk30.path_length


@needs_ffmpeg
def test_360_video_is_2_to_1_and_tagged(tmp_path):
    v = make_sample_video(tmp_path, kind="360", frames=6, width=512, height=256, fps=4)
    s = _count_frames(v.path)
    assert (int(s["nb_read_frames"]), s["width"], s["height"]) == (6, 512, 256)
    info = probe_video(v.path)
    assert info.projection == "equirectangular" and info.looks_equirectangular
    assert load_truth(v.truth_path).intrinsics.model == "EQUIRECTANGULAR"
