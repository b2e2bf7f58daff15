"""Atomic publication: a step's output is the old one or the new whole one, never half."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time

import pytest

from onyx_tools.manifest import content_manifest, data_version
from onyx_tools.publish import publishing


def write_files(folder, count, text):
    for i in range(count):
        (folder / f"f{i:03d}.txt").write_text(f"{text} {i}\n")


def test_success_replaces_the_old_output_whole(tmp_path):
    target = tmp_path / "images"
    with publishing(target) as staged:
        write_files(staged, 5, "old")
    old_version = data_version(target)
    with publishing(target) as staged:
        write_files(staged, 3, "new")
    assert sorted(p.name for p in target.iterdir()) == ["f000.txt", "f001.txt", "f002.txt"]
    assert data_version(target) != old_version
    assert [p.name for p in tmp_path.iterdir()] == ["images"]  # no temporaries left behind


def test_failure_leaves_the_old_output_untouched(tmp_path):
    target = tmp_path / "sparse"
    with publishing(target) as staged:
        write_files(staged, 4, "good")
    before = content_manifest(target)
    with pytest.raises(RuntimeError):
        with publishing(target) as staged:
            write_files(staged, 2, "half")
            raise RuntimeError("step died")
    assert content_manifest(target) == before
    assert [p.name for p in tmp_path.iterdir()] == ["sparse"]


def _slow_publish(target):
    with publishing(target) as staged:
        for i in range(10_000):
            (staged / f"f{i:05d}.txt").write_text("x")
            time.sleep(0.001)


def test_kill_9_mid_write_never_shows_a_partial_output(tmp_path):
    target = tmp_path / "images"
    with publishing(target) as staged:
        write_files(staged, 2, "previous")
    before = content_manifest(target)
    process = multiprocessing.get_context("fork").Process(target=_slow_publish, args=(target,))
    process.start()
    time.sleep(0.5)
    os.kill(process.pid, signal.SIGKILL)
    process.join()
    assert content_manifest(target) == before  # the previous output, whole
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "images"]
    assert leftovers and all(name.startswith(".tmp-images-") for name in leftovers)  # hidden, not output
    with publishing(target) as staged:          # the next attempt sweeps what the killed one left
        write_files(staged, 1, "next")
    assert [p.name for p in tmp_path.iterdir()] == ["images"]


def test_data_version_follows_content_not_timestamps(tmp_path):
    a, b = tmp_path / "a" / "images", tmp_path / "b" / "images"
    for folder in (a, b):
        folder.mkdir(parents=True)
        write_files(folder, 3, "same")
    os.utime(a / "f000.txt", (0, 0))
    assert data_version(a) == data_version(b)
    (b / "f001.txt").write_text("changed\n")
    assert data_version(a) != data_version(b)
