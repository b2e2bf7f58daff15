"""The onyx verbs on a fast stand-in code location (tests/cli/fake_defs.py).

Same asset keys, partitions and storage as the real one, steps that take milliseconds:
these tests pin the command's own logic (plans from the event log, refusals, archives,
purge safety). test_cli_real.py runs the real tools.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import zipfile
from pathlib import Path

import pytest
from dagster import DagsterInstance

from conftest import ONYX, snapshot, subprocess_env
from onyx_dagster.cli import main
from onyx_dagster.operations.state import count_materializations

RUN = ["--mode", "gaussian", "--scene", "outdoor", "--quality", "proto"]


def onyx(capsys, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def instance_of(root: Path) -> DagsterInstance:
    from onyx_dagster.operations.context import open_instance

    return open_instance(root.parent / "dagster-home")


def count(root: Path, asset: str, partition: str) -> int:
    instance = instance_of(root)
    try:
        return count_materializations(instance, asset, partition)
    finally:
        instance.dispose()


def listing(capsys, root: Path) -> dict:
    code, out, _ = onyx(capsys, "list", root, "--json")
    assert code == 0
    return {row["batch"]: row for row in json.loads(out)["batches"]}


def new_batch(capsys, root, video, key="b1", *extra):
    code, out, err = onyx(capsys, "run", "-i", video, "-o", root, *RUN, "--batch", key, *extra)
    assert code == 0, err
    return out, err


def test_run_resume_from_step_and_fork(fake_env, tiny_video, capsys):
    root = fake_env
    out, err = new_batch(capsys, root, tiny_video)
    assert "frames" in err and "100%" in err  # progress lines fed by the run's events
    row = listing(capsys, root)["b1"]
    assert {n: s["state"] for n, s in row["assets"].items()} == \
        {"video": "materialized", "frames": "materialized", "sparse_model": "materialized"}
    assert row["recipes"]["gaussian-proto"]["masks"]["state"] == "materialized"
    assert row["last_run"]["status"] == "success"

    code, out, _ = onyx(capsys, "resume", "b1", "-d", root)
    assert code == 0 and "nothing to do" in out

    code, out, err = onyx(capsys, "resume", root / "b1", "--from-step", "SFM")  # a batch folder path works too
    assert code == 0, err
    assert count(root, "frames", "b1") == 1
    assert count(root, "sparse_model", "b1") == 2
    assert count(root, "reconstruction", "b1|gaussian-proto") == 2
    assert count(root, "masks", "b1|gaussian-proto") == 2

    code, out, err = onyx(capsys, "fork", "b1", "-d", root, "--mode", "photogrammetry", "--quality", "proto")
    assert code == 0, err
    assert count(root, "frames", "b1") == 1 and count(root, "sparse_model", "b1") == 2
    assert (root / "b1/output/gaussian-proto").is_dir() and (root / "b1/output/photogrammetry-proto").is_dir()
    row = listing(capsys, root)["b1"]
    assert set(row["recipes"]) == {"gaussian-proto", "photogrammetry-proto"}

    for mode, quality in (("photogrammetry", "proto"), ("gaussian", "proto")):
        code, _, err = onyx(capsys, "fork", "b1", "-d", root, "--mode", mode, "--quality", quality)
        assert code == 2 and "already has recipe" in err
    code, _, err = onyx(capsys, "fork", "b1", "-d", root, "--mode", "lidar", "--quality", "proto")
    assert code == 2 and "mode: got 'lidar'" in err


def test_failed_step_then_resume(fake_env, tiny_video, capsys, monkeypatch):
    root = fake_env
    monkeypatch.setenv("ONYX_FAKE_FAIL_SPARSE_MODEL", "1")
    code, _, err = onyx(capsys, "run", "-i", tiny_video, "-o", root, *RUN, "--batch", "b2")
    assert code == 1 and "sparse_model" in err and "onyx resume b2" in err
    assert not (root / "b2/sparse/0").exists()  # the failed step published nothing
    row = listing(capsys, root)["b2"]
    assert row["assets"]["sparse_model"]["state"] == "failed"
    monkeypatch.delenv("ONYX_FAKE_FAIL_SPARSE_MODEL")
    code, out, err = onyx(capsys, "resume", "b2", "-d", root)
    assert code == 0, err
    assert "sparse_model (failed)" in out and "frames" not in out.split("resume b2:")[1].split("\n")[1]
    assert count(root, "frames", "b2") == 1 and count(root, "sparse_model", "b2") == 1
    assert count(root, "masks", "b2|gaussian-proto") == 1


def test_bad_input_refused_with_exit_2_and_nothing_written(fake_env, tiny_video, tmp_path, capsys):
    root = fake_env
    code, _, err = onyx(capsys, "run", "-i", tiny_video, "-o", root, "--mode", "gaussian", "--scene", "beach",
                        "--quality", "fast", "--interval", "-1")
    assert code == 2
    assert "scene: got 'beach'" in err and "quality: got 'fast'" in err and "interval:" in err
    code, _, err = onyx(capsys, "run", "-o", root, "--scene", "outdoor")
    assert code == 2 and "input: required" in err and "mode: required" in err and "quality: required" in err
    code, _, err = onyx(capsys, "run", "-i", tmp_path / "nope.mp4", "-o", root, *RUN)
    assert code == 2 and "does not exist" in err
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    code, _, err = onyx(capsys, "run", "-i", text, "-o", root, *RUN)
    assert code == 2 and "not a readable video" in err
    code, _, err = onyx(capsys, "run", "-i", tiny_video, "-o", root, *RUN, "--batch", "Bad,Key")
    assert code == 2 and "invalid batch key" in err
    code, out, _ = onyx(capsys, "run", "-i", tiny_video, "-o", root, *RUN, "--dry-run")
    assert code == 0 and "nothing written" in out and "tiny-walk-" in out  # the default key
    code, _, err = onyx(capsys, "resume", "nope", "-d", root)
    assert code == 2 and "does not exist" in err
    code, _, err = onyx(capsys, "resume", "nope", "-d", root, "--until", "SFM", "--from-step", "INGEST")
    assert code == 2
    assert not root.exists() and not (root.parent / "dagster-home").exists()  # nothing written, not even an instance


def _wait_for_step(root: Path, key: str, step: str, timeout: float = 60.0) -> str:
    """Poll the persistent instance until a run of the batch has started ``step``; its run id."""
    from dagster import DagsterEventType, RunsFilter

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (root.parent / "dagster-home" / "history" / "runs.db").is_file():
            instance = instance_of(root)
            try:
                for record in instance.get_run_records(RunsFilter(tags={"onyx/batch": key})):
                    starts = instance.get_records_for_run(
                        record.dagster_run.run_id, of_type=DagsterEventType.STEP_START).records
                    if any(r.event_log_entry.step_key == step for r in starts):
                        return record.dagster_run.run_id
            finally:
                instance.dispose()
        time.sleep(0.3)
    raise AssertionError(f"no run of {key} started {step} within {timeout} s")


def test_kill9_during_sfm_then_resume(fake_env, tiny_video):
    root = fake_env
    env = subprocess_env(ONYX_DEFINITIONS="fake_defs:defs", ONYX_FAKE_SLEEP_SPARSE_MODEL=60)
    proc = subprocess.Popen([*ONYX, "run", "-i", tiny_video, "-o", root, *RUN, "--batch", "k9"],
                            env=env, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        _wait_for_step(root, "k9", "sparse_model")
        assert (root / "k9/images").is_dir()
        assert not (root / "k9/sparse/0").exists()  # staged in a hidden temporary, not published
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    env.pop("ONYX_FAKE_SLEEP_SPARSE_MODEL")
    done = subprocess.run([*ONYX, "resume", "k9", "-d", root, "-q"], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert "sparse_model (failed)" in done.stdout
    assert count(root, "frames", "k9") == 1 and count(root, "sparse_model", "k9") == 1
    assert sorted(p.name for p in (root / "k9/sparse/0").iterdir()) == [f"sparse_model_{i:03d}.txt" for i in range(4)]
    assert not list((root / "k9/sparse").glob(".tmp-*"))


def test_second_run_on_same_batch_refused(fake_env, tiny_video, capsys):
    root = fake_env
    env = subprocess_env(ONYX_DEFINITIONS="fake_defs:defs", ONYX_FAKE_SLEEP_FRAMES=60)
    proc = subprocess.Popen([*ONYX, "run", "-i", tiny_video, "-o", root, *RUN, "--batch", "two"],
                            env=env, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        _wait_for_step(root, "two", "frames")
        settled = lambda: [p for p in snapshot(root / "two") if not p.startswith(".tmp-images")]  # noqa: E731
        before = settled()
        for args in (["run", "-i", tiny_video, "-o", root, *RUN, "--batch", "two"],
                     ["resume", "two", "-d", root], ["purge", "two", "-d", root],
                     ["export", "two", "-d", root, "-o", root.parent / "two.zip"]):
            second = subprocess.run([*ONYX, *map(str, args)], env=env, capture_output=True, text=True, timeout=60)
            assert second.returncode == 2, second.stderr
            assert "run in progress" in second.stderr and "pid" in second.stderr
        assert settled() == before  # only the first run's own staging folder grew
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def test_batch_lock_refuses_a_second_writer(fake_env, tiny_video, capsys):
    from onyx_dagster.operations.errors import BatchBusy
    from onyx_dagster.operations.state import batch_lock

    root = fake_env
    new_batch(capsys, root, tiny_video, "locked", "--until", "INGEST")
    holder = subprocess.Popen(
        ["python3", "-c", "import fcntl,sys,time; f=open(sys.argv[1],'a'); fcntl.flock(f, fcntl.LOCK_EX); "
         "print('held', flush=True); time.sleep(60)", str(root / "locked/.lock")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        code, _, err = onyx(capsys, "resume", "locked", "-d", root)
        assert code == 2 and "in use by another onyx process" in err
        with pytest.raises(BatchBusy):
            with batch_lock(root / "locked", "locked"):
                pass
    finally:
        holder.kill()
        holder.wait()


# -- export / import ------------------------------------------------------------------
def _checksums(folder: Path) -> dict:
    from onyx_tools.manifest import content_manifest

    return {k: v for k, v in content_manifest(folder).items() if k != ".lock"}


def test_export_import_roundtrip(fake_env, tiny_video, tmp_path, capsys, monkeypatch):
    root = fake_env
    new_batch(capsys, root, tiny_video, "ex1")
    archive = tmp_path / "ex1.zip"
    code, out, err = onyx(capsys, "export", "ex1", "-d", root, "-o", archive)
    assert code == 0, err
    with zipfile.ZipFile(archive) as zf:
        manifest = json.loads(zf.read("onyx-manifest.json"))
        assert ".lock" not in zf.namelist()
    assert {e["asset"] for e in manifest["lineage"]} == {"video", "frames", "sparse_model", "reconstruction", "masks"}
    assert all(e["run_id"] and e["data_version"] and e["code_version"] for e in manifest["lineage"])
    code, _, err = onyx(capsys, "export", "ex1", "-d", root, "-o", archive)
    assert code == 2 and "already exists" in err

    fresh = tmp_path / "elsewhere" / "data"  # a fresh data root with its own fresh Dagster instance
    code, out, err = onyx(capsys, "import-batch", archive, "-o", fresh)
    assert code == 0, err
    assert _checksums(fresh / "ex1") == _checksums(root / "ex1")
    row = listing(capsys, fresh)["ex1"]
    assert row["registered"] and row["assets"]["sparse_model"]["state"] == "materialized"
    assert row["assets"]["frames"]["imported_from"] == str(archive)
    assert row["recipes"]["gaussian-proto"]["masks"]["state"] == "materialized"
    code, out, _ = onyx(capsys, "list", fresh)
    assert "ex1" in out and "imported" in out
    code, out, _ = onyx(capsys, "resume", "ex1", "-d", fresh)
    assert code == 0 and "nothing to do" in out  # imported materialisations are current

    before = snapshot(fresh)
    code, _, err = onyx(capsys, "import-batch", archive, "-o", fresh)
    assert code == 2 and "--as NEWKEY" in err and snapshot(fresh) == before
    code, _, err = onyx(capsys, "import-batch", archive, "-o", fresh, "--as", "ex1-copy")
    assert code == 0, err
    assert _checksums(fresh / "ex1-copy") == _checksums(root / "ex1")


def _hostile(tmp_path: Path, good: Path, name: str, mutate) -> Path:
    out = tmp_path / f"{name}.zip"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(out, "w") as dst:
        manifest = json.loads(src.read("onyx-manifest.json"))
        for info in src.infolist():
            if info.filename != "onyx-manifest.json":
                dst.writestr(info, src.read(info))
        mutate(dst, manifest)
        dst.writestr("onyx-manifest.json", json.dumps(manifest))
    return out


def _special(dst, name: str, mode: int, data: bytes = b""):
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = mode << 16
    dst.writestr(info, data)


def test_hostile_archives_refused(fake_env, tiny_video, tmp_path, capsys):
    import hashlib
    import stat

    root = fake_env
    new_batch(capsys, root, tiny_video, "hx", "--until", "SFM")
    good = tmp_path / "good.zip"
    assert onyx(capsys, "export", "hx", "-d", root, "-o", good)[0] == 0

    def listed(dst, manifest, name, data=b"x"):
        dst.writestr(name, data)
        manifest["files"][name] = hashlib.sha256(data).hexdigest()

    cases = {
        "slip": (lambda d, m: listed(d, m, "images/../../escape.txt"), "zip-slip"),
        "absolute": (lambda d, m: listed(d, m, "/tmp/onyx-abs.txt"), "absolute path"),
        "symlink": (lambda d, m: _special(d, "images/link", stat.S_IFLNK | 0o777, b"/etc/passwd"), "is a symlink"),
        "device": (lambda d, m: _special(d, "images/dev", stat.S_IFCHR | 0o644), "is a device file"),
        "checksum": (lambda d, m: m["files"].update({"batch.json": "0" * 64}), "checksum mismatch for batch.json"),
        "unlisted": (lambda d, m: d.writestr("images/extra.txt", b"extra"), "not in the manifest"),
    }
    target = tmp_path / "other" / "data"  # its own fresh instance beside it
    for name, (mutate, message) in cases.items():
        archive = _hostile(tmp_path, good, name, mutate)
        code, _, err = onyx(capsys, "import-batch", archive, "-o", target)
        assert code == 2, name
        assert message in err, (name, err)
        assert not target.parent.exists(), name  # nothing written: no data root, no instance
    assert not (tmp_path / "escape.txt").exists()
    # duplicate key: the batch exists in this data root and instance
    before = snapshot(root)
    code, _, err = onyx(capsys, "import-batch", good, "-o", root)
    assert code == 2 and "already" in err or "registered" in err
    assert snapshot(root) == before
    not_zip = tmp_path / "plain.zip"
    not_zip.write_text("hello")
    code, _, err = onyx(capsys, "import-batch", not_zip, "-o", target)
    assert code == 2 and "not a zip archive" in err


# -- purge ------------------------------------------------------------------------------
def test_purge_safety_and_purge_all(fake_env, tiny_video, tmp_path, capsys, monkeypatch):
    root = fake_env
    new_batch(capsys, root, tiny_video, "p1", "--until", "SFM")
    new_batch(capsys, root, tiny_video, "p2", "--until", "SFM")
    outside = tmp_path / "precious"
    outside.mkdir()
    (outside / "keep.txt").write_text("keep me")
    (outside / "batch.json").write_text("{}")

    # a batch folder that is a symlink to outside the data root
    os.symlink(outside, root / "evil")
    code, _, err = onyx(capsys, "purge", "evil", "-d", root)
    assert code == 2 and "symlink" in err
    # purge-all refuses as a whole while that link is there
    code, _, err = onyx(capsys, "purge-all", root, "--yes")
    assert code == 2 and "nothing removed" in err
    assert (root / "p1").is_dir() and (outside / "keep.txt").exists()
    os.unlink(root / "evil")

    # a link inside a batch pointing out
    os.symlink(outside, root / "p1/images/escape")
    code, _, err = onyx(capsys, "purge", "p1", "-d", root)
    assert code == 2 and "point outside the data root" in err
    os.unlink(root / "p1/images/escape")

    code, out, err = onyx(capsys, "purge", "p1", "-d", root, "--keep-output")
    assert code == 0, err
    assert sorted(set(os.listdir(root / "p1")) - {".lock"}) == ["batch.json"]
    assert listing(capsys, root)["p1"]["assets"]["frames"]["state"] == "missing"

    monkeypatch.setattr("sys.stdin", __import__("io").StringIO("n\n"))
    code, out, _ = onyx(capsys, "purge-all", root)
    assert code == 0 and "nothing purged" in out and (root / "p2").is_dir()
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO("y\n"))
    code, out, _ = onyx(capsys, "purge-all", root)
    assert code == 0 and "purged p2" in out
    assert os.listdir(root) == []
    assert listing(capsys, root) == {}
    assert count(root, "frames", "p2") == 0
    assert (outside / "keep.txt").read_text() == "keep me"
    # the key is free again, and a new batch under it starts from nothing
    new_batch(capsys, root, tiny_video, "p2", "--until", "INGEST")
    assert count(root, "frames", "p2") == 1
