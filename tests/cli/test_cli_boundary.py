"""Verbs that write or delete act only on ``<data root>/<key>`` folders that are that batch's own.

Every hostile path is tried against the real code location (`onyx add` registers real
batches; ffprobe validates the real video): each is refused with exit code 2 and a
message naming what was given, no traceback, and a canary folder beside the data root
keeps every byte. A purge killed at any moment is finished by the next one.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import ONYX, snapshot
from onyx_dagster.cli import main

RUN = ["--mode", "gaussian", "--scene", "indoor", "--quality", "proto"]


def onyx(capsys, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def sha256_list(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def world(tmp_path, monkeypatch, tiny_video, capsys):
    """A data root with two real batches, and a canary folder beside it."""
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.delenv("ONYX_DATA", raising=False)
    monkeypatch.delenv("ONYX_DEFINITIONS", raising=False)
    root = tmp_path / "data"
    for key in ("b1", "b2"):
        code, _, err = onyx(capsys, "add", "-i", tiny_video, "-o", root, *RUN, "--batch", key)
        assert code == 0, err
    canary = tmp_path / "victim-abc"
    (canary / "sub").mkdir(parents=True)
    (canary / "keep.txt").write_text("keep me")
    (canary / "sub" / "data.bin").write_bytes(os.urandom(4096))
    (canary / "batch.json").write_text(json.dumps({"key": "victim-abc"}))  # even a marker does not make it ours
    return root, canary


def test_hostile_paths_are_refused_and_nothing_is_touched(world, tmp_path, monkeypatch, capsys):
    root, canary = world
    before_canary = sha256_list(canary)
    (root / "nomarker").mkdir()
    (root / "nomarker" / "keep.txt").write_text("not a batch")
    wrong = root / "b3"
    wrong.mkdir()
    (wrong / "batch.json").write_text((root / "b1" / "batch.json").read_text())  # says key b1
    os.symlink(canary, root / "linked")
    before_root = sha256_list(root)

    cases = [
        (["purge", canary, "-d", root], "not a folder directly inside the data root"),
        (["purge", "../victim-abc", "-d", root], "not a folder directly inside the data root"),
        (["purge", "..", "-d", root], "not a folder directly inside the data root"),
        (["purge", ".", "-d", root], "the data root"),
        (["purge", root, "-d", root], "the data root"),
        (["purge", "/"], "file system root"),
        (["purge", "/", "-d", root], "file system root"),
        (["purge", "linked", "-d", root], "symlink"),
        (["purge", root / "linked", "-d", root], "not a folder directly inside the data root"),
        (["purge", "nomarker", "-d", root], "no readable batch.json"),
        (["purge", "b3", "-d", root], "belongs to batch 'b1'"),
        (["purge", "B1", "-d", root], "is not a batch"),
        (["purge", "", "-d", root], "no batch given"),
        (["purge-all", root, "--yes"], "nothing removed"),
        (["resume", "linked", "-d", root], "symlink"),
        (["fork", "b3", "-d", root, "--mode", "photogrammetry", "--quality", "proto"], "belongs to batch"),
        (["export", "b1", "-d", root, "-o", root / "b1.zip"], "inside the data root"),
        (["export", "b1", "-d", root, "-o", root / "b2" / "x.zip"], "inside the data root"),
        (["export", "b1", "-d", root, "-o", canary / "keep.txt"], "already exists"),
        (["export", "nomarker", "-d", root, "-o", tmp_path / "x.zip"], "no readable batch.json"),
        (["import-batch", tmp_path / "missing.zip", "-o", root, "--as", "../escape"], "does not exist"),
    ]
    monkeypatch.chdir(root)
    for args, message in cases:
        code, out, err = onyx(capsys, *args)
        assert code == 2, (args, out, err)
        assert message in err, (args, err)
        assert "Traceback" not in out + err
        assert sha256_list(canary) == before_canary, args
        assert sha256_list(root) == before_root, args
    # Without --data-root, '.' and '..' name folders that are no batch's own: refused as such.
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    for args, message in ((["purge", "."], "no readable batch.json"), (["purge", ".."], "not a batch key")):
        code, _, err = onyx(capsys, *args)
        assert code == 2 and message in err, (args, err)
    assert sha256_list(canary) == before_canary and sha256_list(root) == before_root
    # The real batches are still there and purge cleanly.
    os.unlink(root / "linked")
    code, out, err = onyx(capsys, "purge", "b1", "-d", root)
    assert code == 0, err
    assert not (root / "b1").exists() and (root / "b2").is_dir()
    assert sha256_list(canary) == before_canary


def test_import_under_another_key_rewrites_the_marker(world, tmp_path, capsys):
    root, _ = world
    archive = tmp_path / "b1.zip"
    code, _, err = onyx(capsys, "export", "b1", "-d", root, "-o", archive)
    assert code == 0, err
    other = tmp_path / "other" / "data"
    code, _, err = onyx(capsys, "import-batch", archive, "-o", other, "--as", "copy-1")
    assert code == 0, err
    assert json.loads((other / "copy-1" / "batch.json").read_text())["key"] == "copy-1"
    code, out, err = onyx(capsys, "purge", "copy-1", "-d", other)
    assert code == 0, err


def test_unexpected_error_is_one_line_with_a_log(world, tmp_path, monkeypatch, capsys):
    root, _ = world
    (root.parent / "dagster-home" / "dagster.yaml").write_text("run_storage: [not, a, mapping]\n")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    code, out, err = onyx(capsys, "list", root)
    assert code == 1, (out, err)
    assert "Traceback" not in out + err and len(err.strip().splitlines()) == 1
    log = err.strip().rsplit(" ", 1)[-1]
    assert Path(log).is_file() and "Traceback" in Path(log).read_text()


def test_purge_killed_at_any_point_is_finished_by_the_next(world, tmp_path, tiny_video, capsys):
    """kill -9 while the folder is being deleted; the next purge completes; nothing else goes."""
    root, canary = world
    before_canary = sha256_list(canary)
    env = {k: v for k, v in os.environ.items() if k not in ("DAGSTER_HOME", "ONYX_DATA", "ONYX_DEFINITIONS")}
    interrupted = 0
    for attempt, key in enumerate(["k1", "k2", "k3"]):
        code, _, err = onyx(capsys, "add", "-i", tiny_video, "-o", root, *RUN, "--batch", key)
        assert code == 0, err
        bulk = root / key / "images"
        bulk.mkdir()
        for index in range(10000):  # long enough to delete that the kill lands mid-purge
            (bulk / f"{index:05d}.txt").write_text("x")
        process = subprocess.Popen([*ONYX, "purge", key, "-d", str(root)], env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        trash = root / f".purging-{key}"
        deadline = time.monotonic() + 60
        while process.poll() is None and time.monotonic() < deadline:
            if trash.exists():
                time.sleep(0.05 * attempt)  # kill at a few points: right after the rename, and later
                break
            time.sleep(0.002)
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            interrupted += 1
        process.wait()
        code, out, err = onyx(capsys, "purge", key, "-d", root)
        if code == 2:  # the killed purge had finished everything but deleting was not needed
            assert "does not exist" in err
        else:
            assert code == 0, err
        assert not (root / key).exists() and not trash.exists()
        code, out, _ = onyx(capsys, "list", root, "--json")
        assert key not in {row["batch"] for row in json.loads(out)["batches"]}
    assert interrupted >= 2
    assert sha256_list(canary) == before_canary
    assert (root / "b1").is_dir() and (root / "b2").is_dir()
    assert sorted(os.listdir(root)) == ["b1", "b2"]
    assert snapshot(canary)
