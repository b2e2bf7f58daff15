"""Bad batches are refused at the boundary, one clear message per problem, nothing written."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from components import needs

from onyx_dagster.batches import BatchError, BatchSettings, add_batch, parse_settings
from onyx_dagster.partitions import batches


def settings_for(video, **overrides) -> BatchSettings:
    raw = {"input": str(video), "scene": "outdoor", "mode": "gaussian", "quality": "proto", **overrides}
    return parse_settings(raw)


def assert_nothing_written(instance, data_root):
    assert list(data_root.iterdir()) == []
    assert instance.get_dynamic_partitions(batches.name) == []


def test_invalid_settings_name_every_field():
    with pytest.raises(BatchError) as error:
        parse_settings({"input": "v.mp4", "scene": "beach", "mode": "gaussian", "quality": "fast",
                        "interval": -1, "colour": "red"})
    message = str(error.value)
    assert "scene: got 'beach', expected 'indoor' or 'outdoor'" in message
    assert "quality: got 'fast', expected 'proto' or 'production'" in message
    assert "interval: Input should be greater than 0" in message
    assert "colour: not a setting" in message
    assert message.count("\n") == 4  # a header line, then exactly one line per bad field


def test_missing_settings_are_named():
    with pytest.raises(BatchError, match=r"(?s)scene: required.*mode: required.*quality: required"):
        parse_settings({"input": "v.mp4"})


@pytest.mark.parametrize("key", ["Has Caps", "a,b", "../up", "-leading", "", "x" * 65, "ünï"])
def test_invalid_batch_key_is_refused_with_the_rule(dagster_instance, data_root, stone_sign, key):
    with pytest.raises(BatchError, match="lower-case letters, digits and '-'"):
        add_batch(dagster_instance, data_root, key, settings_for(stone_sign))
    assert_nothing_written(dagster_instance, data_root)


@pytest.fixture
def stone_sign(datasets):
    return datasets / "real_videos" / "stone_sign.mp4"


def test_missing_file(dagster_instance, data_root, tmp_path):
    with pytest.raises(BatchError, match="does not exist: check the path"):
        add_batch(dagster_instance, data_root, "walk", settings_for(tmp_path / "nope.mp4"))
    assert_nothing_written(dagster_instance, data_root)


def test_zero_byte_file(dagster_instance, data_root, tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.touch()
    with pytest.raises(BatchError, match=r"is empty \(0 bytes\)"):
        add_batch(dagster_instance, data_root, "walk", settings_for(empty))
    assert_nothing_written(dagster_instance, data_root)


def test_text_file_named_mp4(dagster_instance, data_root, tmp_path):
    fake = tmp_path / "notes.mp4"
    fake.write_text("these are my holiday notes, not a video\n" * 20)
    with pytest.raises(BatchError, match="is not a readable video: ffprobe says"):
        add_batch(dagster_instance, data_root, "walk", settings_for(fake))
    assert_nothing_written(dagster_instance, data_root)


def test_truncated_mp4(dagster_instance, data_root, tmp_path, stone_sign):
    truncated = tmp_path / "truncated.mp4"
    data = stone_sign.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(BatchError, match="truncated|not a readable video|cannot be decoded"):
        add_batch(dagster_instance, data_root, "walk", settings_for(truncated))
    assert_nothing_written(dagster_instance, data_root)


def test_fewer_than_three_frames(dagster_instance, data_root, tmp_path, stone_sign):
    short = tmp_path / "two-frames.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(stone_sign), "-frames:v", "2", "-c:v", "libx264",
                    str(short)], check=True)
    with pytest.raises(BatchError, match=r"has 2 frame\(s\); Onyx needs at least 3"):
        add_batch(dagster_instance, data_root, "walk", settings_for(short))
    assert_nothing_written(dagster_instance, data_root)


def test_insta360_camera_file_is_refused_with_how_to_stitch(dagster_instance, data_root, tmp_path, stone_sign):
    insv = tmp_path / "VID_20260101_120000_00_001.insv"
    shutil.copy(stone_sign, insv)
    with pytest.raises(BatchError, match=r"Insta360 camera file \(\.insv\).*accepts stitched equirectangular.*"
                                         r"Insta360 Studio"):
        add_batch(dagster_instance, data_root, "walk", settings_for(insv))
    assert_nothing_written(dagster_instance, data_root)


def test_dual_fisheye_video_is_refused_with_how_to_stitch(dagster_instance, data_root, tmp_path, stone_sign):
    """Two circular images side by side in a 2:1 MP4 pass for equirectangular by their shape, not their content."""
    import cv2
    import numpy as np
    from onyx_tools.video import encode_mp4

    capture = cv2.VideoCapture(str(stone_sign))
    lenses = []
    for _ in range(6):
        ok, frame = capture.read()
        assert ok
        lens = cv2.resize(frame[:450], (400, 400))[:, :, ::-1]
        ys, xs = np.mgrid[0:400, 0:400]
        lens[np.hypot(xs - 199.5, ys - 199.5) > 196] = 0  # black outside the image circle
        lenses.append(np.concatenate([lens, lens[:, ::-1]], axis=1))
    capture.release()
    dual = tmp_path / "dual-fisheye.mp4"
    encode_mp4(lenses, dual, 800, 400, 5.0)
    with pytest.raises(BatchError, match=r"unstitched dual-fisheye recording.*accepts stitched equirectangular"):
        add_batch(dagster_instance, data_root, "walk", settings_for(dual))
    assert_nothing_written(dagster_instance, data_root)


@needs("setpriv", os.geteuid() != 0 or shutil.which("setpriv") is not None, "needs setpriv to drop root")
def test_unwritable_data_root(stone_sign):
    # Root ignores permission bits, so the check runs as an unprivileged user (nobody),
    # in a folder that user can reach.
    import tempfile

    parent = Path(tempfile.mkdtemp(prefix="onyx-ro-", dir="/tmp"))
    parent.chmod(0o755)
    root = parent / "read-only-root"
    root.mkdir()
    root.chmod(0o555)
    code = (
        "from pathlib import Path\n"
        "from dagster import DagsterInstance\n"
        "from onyx_dagster.batches import add_batch, parse_settings, BatchError\n"
        f"s = parse_settings({{'input': {str(stone_sign)!r}, 'scene': 'outdoor', 'mode': 'gaussian', 'quality': 'proto'}})\n"
        "try:\n"
        f"    add_batch(DagsterInstance.ephemeral(), Path({str(root)!r}), 'walk', s)\n"
        "except BatchError as e:\n"
        "    print(e)\n"
    )
    import sys

    prefix = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"] if os.geteuid() == 0 else []
    out = subprocess.run([*prefix, sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "HOME": "/tmp"}, cwd="/tmp")
    assert "is not writable" in out.stdout, out.stdout + out.stderr
    assert list(root.iterdir()) == []
    shutil.rmtree(parent)


def test_batch_json_is_written_once(dagster_instance, data_root, stone_sign):
    layout = add_batch(dagster_instance, data_root, "stone-sign", settings_for(stone_sign, interval=0.5))
    assert layout.settings_file.is_file()
    assert dagster_instance.get_dynamic_partitions(batches.name) == ["stone-sign"]
    before = layout.settings_file.read_bytes()
    with pytest.raises(BatchError, match="already exists"):
        add_batch(dagster_instance, data_root, "stone-sign", settings_for(stone_sign, scene="indoor"))
    assert layout.settings_file.read_bytes() == before
