"""The onyx verbs on a fast stand-in code location (tests/cli/fake_defs.py).

Same asset keys, partitions and storage as the real one, steps that take milliseconds:
these tests pin the command's own logic (plans from the event log, refusals, archives,
purge safety). test_cli_real.py runs the real tools.
"""

from __future__ import annotations

import json
import os
import signal
import socket
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
    code, out, err = onyx(capsys, "run", "-i", tiny_video, "-o", root, *RUN, "--batch", "b2")
    assert code == 1 and "sparse_model" in err and "onyx resume b2" in err
    # the step's own reason, never Dagster's class names or its wrapper's words
    assert "sparse_model failed on purpose" in err
    for internal in ("dagster._core", "DagsterExecutionStepExecutionError", "Error occurred while executing",
                     "RuntimeError"):
        assert internal not in out + err, (internal, out + err)
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
    """After kill -9 of `onyx run`: `list` reports the run failed, in the Dagster instance itself (what
    the UI reads), and the lock the dead process left is taken over with a note and removed after."""
    from dagster import DagsterRunStatus

    root = fake_env
    env = subprocess_env(ONYX_DEFINITIONS="fake_defs:defs", ONYX_FAKE_SLEEP_SPARSE_MODEL=60)
    proc = subprocess.Popen([*ONYX, "run", "-i", tiny_video, "-o", root, *RUN, "--batch", "k9"],
                            env=env, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        run_id = _wait_for_step(root, "k9", "sparse_model")
        assert (root / "k9/images").is_dir()
        assert not (root / "k9/sparse/0").exists()  # staged in a hidden temporary, not published
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    env.pop("ONYX_FAKE_SLEEP_SPARSE_MODEL")
    lock = root / "k9" / ".lock"
    assert lock.read_text().strip() == f"pid {proc.pid} on {socket.gethostname()}"  # what kill -9 leaves
    listed = subprocess.run([*ONYX, "list", root, "--json"], env=env, capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0, listed.stderr
    assert f"note: batch k9: run {run_id} marked failed: the onyx process (pid {proc.pid}" in listed.stderr
    row = json.loads(listed.stdout)["batches"][0]
    assert row["assets"]["sparse_model"]["state"] == "failed" and row["last_run"]["status"] == "failure"
    instance = instance_of(root)
    try:
        assert instance.get_run_by_id(run_id).status == DagsterRunStatus.FAILURE  # the UI agrees
    finally:
        instance.dispose()
    assert lock.is_file()  # list reads the lock, never takes it
    done = subprocess.run([*ONYX, "resume", "k9", "-d", root, "-q"], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert "sparse_model (failed)" in done.stdout
    assert f"note: batch k9: took over the lock left by pid {proc.pid} on {socket.gethostname()} " \
           "(that process is gone)" in done.stderr
    assert not lock.exists(), "the lock outlived the resume that held it"
    assert count(root, "frames", "k9") == 1 and count(root, "sparse_model", "k9") == 1
    assert sorted(p.name for p in (root / "k9/sparse/0").iterdir()) == [f"sparse_model_{i:03d}.txt" for i in range(4)]
    assert not list((root / "k9/sparse").glob(".tmp-*"))


def test_dead_onyx_runs_sensor_fails_only_the_runs_whose_process_is_gone(tmp_path):
    """Where a daemon runs, the sensor marks failed a run whose onyx process is gone; a live one stays."""
    from dagster import DagsterRunStatus, build_sensor_context, instance_for_test, job, op

    from onyx_dagster.defs.dead_runs import dead_onyx_runs
    from onyx_dagster.operations.state import TAG_BATCH, TAG_HOST, TAG_PID

    @op
    def step():
        pass

    @job
    def stand_in():
        step()

    gone = subprocess.Popen(["true"])
    gone.wait()
    alive = subprocess.Popen(["sleep", "60"])
    try:
        with instance_for_test(temp_dir=str(tmp_path)) as instance:
            runs = {name: instance.create_run_for_job(
                stand_in, status=DagsterRunStatus.STARTED,
                tags={TAG_BATCH: name, TAG_PID: str(pid), TAG_HOST: socket.gethostname()}).run_id
                    for name, pid in (("gone", gone.pid), ("alive", alive.pid))}
            result = dead_onyx_runs(build_sensor_context(instance=instance))
            assert "1 run(s) marked failed" in str(result.skip_message)
            assert instance.get_run_by_id(runs["gone"]).status == DagsterRunStatus.FAILURE
            assert instance.get_run_by_id(runs["alive"]).status == DagsterRunStatus.STARTED
            assert "no run of a dead onyx process" in str(dead_onyx_runs(build_sensor_context(instance=instance))
                                                          .skip_message)
    finally:
        alive.kill()
        alive.wait()


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
    # A lock file planted as a symlink is never written through (the holder's line would land in its target).
    victim = root.parent / "victim.txt"
    victim.write_text("precious\n")
    (root / "locked/.lock").unlink()
    (root / "locked/.lock").symlink_to(victim)
    code, _, err = onyx(capsys, "resume", "locked", "-d", root)
    assert code == 2 and "a symlink or a folder is refused" in err, err
    assert victim.read_text() == "precious\n"


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
    copied, original = _checksums(fresh / "ex1-copy"), _checksums(root / "ex1")
    assert copied.pop("batch.json") != original.pop("batch.json")  # its marker names the new key
    assert copied == original
    settings = json.loads((fresh / "ex1-copy" / "batch.json").read_text())
    assert settings == {**json.loads((root / "ex1" / "batch.json").read_text()), "key": "ex1-copy"}


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


# -- --set: a step's settings for one run -----------------------------------------------
def _config(root: Path, asset: str, partition: str) -> dict:
    from dagster import AssetKey, AssetRecordsFilter

    instance = instance_of(root)
    try:
        record = instance.fetch_materializations(
            AssetRecordsFilter(asset_key=AssetKey(asset), asset_partitions=[partition]), limit=1).records[0]
        return record.asset_materialization.metadata["config"].value
    finally:
        instance.dispose()


def test_set_reaches_the_step_and_runs_it_again(fake_env, tiny_video, capsys):
    root = fake_env
    out, _ = new_batch(capsys, root, tiny_video, "s1", "--set", "sparse_model.matching=exhaustive",
                       "--set", "frames.interval=0.5")
    assert "sparse_model with matching=exhaustive (--set)" in out
    assert _config(root, "sparse_model", "s1")["matching"] == "exhaustive"
    assert _config(root, "frames", "s1")["interval"] == 0.5
    code, out, err = onyx(capsys, "resume", "s1", "-d", root, "--set", "sparse_model.mapper=global",
                          "--set", "reconstruction.cpu_budget_s=30")
    assert code == 0, err
    plan = out.split("resume s1:")[1]
    assert "sparse_model (--set)" in plan and "frames" not in plan.split("\n")[1]
    given = _config(root, "sparse_model", "s1")
    assert given["mapper"] == "global" and given["matching"] == "auto"  # this run's settings only
    assert _config(root, "reconstruction", "s1|gaussian-proto")["settings"] == {"cpu_budget_s": 30.0}
    assert count(root, "frames", "s1") == 1 and count(root, "sparse_model", "s1") == 2
    assert count(root, "masks", "s1|gaussian-proto") == 2  # downstream of what ran again


BAD_SETS = [
    ("resume", ["nonsense"], "expected STEP.SETTING=VALUE"),
    ("resume", ["video.input=/etc/passwd"], "'video' is not a step here"),
    ("resume", ["sparse_model.matching=bogus"], "sparse_model.matching: got 'bogus'"),
    ("resume", ["frames.interval=-1"], "frames.interval: Input should be greater than 0"),
    ("resume", ["sparse_model.colour=red"], "sparse_model.colour: not a setting of sparse_model"),
    ("resume", ["reconstruction.cpu_budget_s=fast"], "reconstruction.cpu_budget_s: Input should be a valid number"),
    ("resume", ["reconstruction.lidar=1"], "reconstruction.lidar: not a setting"),
    ("resume", ["masks.batch_size=0"], "masks.batch_size: Input should be greater than or equal to 1"),
    ("resume", ["masks.batch_size=2", "masks.batch_size.x=1"], "set twice"),
    ("resume", ["sparse_model.matching=[1"], "is not valid JSON"),
    ("resume --from-step SFM", ["frames.interval=0.1"], "--set names frames, which this plan does not run"),
    ("resume --until INGEST", ["sparse_model.mapper=global"], "add --from-step SFM (or remove --until)"),
    ("fork", ["frames.interval=0.1"], "'frames' is not a step here"),
    ("resume", ["reconstruction.scene=indoor"], "the batch's own choice (batch.json)"),
]


def test_bad_set_refused_with_nothing_written(fake_env, tiny_video, capsys):
    """Every bad --set on one batch: exit 2, the message names the setting, nothing written."""
    root = fake_env
    new_batch(capsys, root, tiny_video, "s2")
    before = snapshot(root), count(root, "sparse_model", "s2")
    for verb, sets, says in BAD_SETS:
        words = verb.split()
        args = [words[0], "s2", "-d", root, *words[1:], *(x for item in sets for x in ("--set", item))]
        if words[0] == "fork":
            args += ["--mode", "photogrammetry", "--quality", "proto"]
        code, _, err = onyx(capsys, *args)
        assert code == 2 and says in err and "Traceback" not in err, (verb, sets, err)
    assert (snapshot(root), count(root, "sparse_model", "s2")) == before
