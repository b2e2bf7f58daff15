"""The onyx command end to end on the real tools (local runner) and a real video.

../shared/datasets/real_videos/stone_sign.mp4 (3.3 s, 450x800) at --interval 0.15 gives
about 22 frames, all registered (at 0.2 s only 12 of 17 chain into one model, under the 0.9
registration ratio, and the step fails). The batch's own steps (frames, sparse_model) are run for real; the
recipe steps (reconstruction, masks) take many minutes on a CPU, so they are checked
through the plan only, unless ONYX_TEST_RECIPES=1.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
from components import needs

from conftest import ONYX, SHARED, snapshot, subprocess_env
from onyx_dagster.operations.context import open_instance
from onyx_dagster.operations.state import count_materializations

VIDEO = SHARED / "real_videos" / "stone_sign.mp4"
RUN = ["--mode", "gaussian", "--scene", "outdoor", "--quality", "proto", "--interval", "0.15"]
MODEL_FILES = {"cameras.bin", "images.bin", "points3D.bin"}

pytestmark = [
    pytest.mark.slow,
    needs("datasets", VIDEO.is_file(), f"real test data absent: {VIDEO} (../shared/datasets)"),
    needs("checkout", importlib.util.find_spec("onyx_sfm.__main__") is not None
          and importlib.util.find_spec("onyx_ingest.__main__") is not None,
          "the ingest / sfm tools are not in this checkout"),
]


@pytest.fixture(autouse=True)
def _segformer_weights(installed_weights, monkeypatch):
    """The outdoor recipe plans masks, and the preflight wants their weights: the tiny installed ones."""
    monkeypatch.setenv("ONYX_WEIGHTS", str(installed_weights))


def onyx(*args, env=None, timeout=600) -> subprocess.CompletedProcess:
    return subprocess.run([*ONYX, *map(str, args)], env=env or subprocess_env(), capture_output=True, text=True,
                          timeout=timeout)


def counts(root: Path, key: str) -> dict[str, int]:
    instance = open_instance(root.parent / "dagster-home")
    try:
        return {name: count_materializations(instance, name, key) for name in ("video", "frames", "sparse_model")}
    finally:
        instance.dispose()


class SparseWatcher(threading.Thread):
    """Polls <batch>/sparse: it must be absent or hold a complete model, never a partial one."""

    def __init__(self, batch: Path):
        super().__init__(daemon=True)
        self.batch, self.halt, self.bad, self.seen_complete = batch, threading.Event(), [], False

    def run(self):
        while not self.halt.is_set():
            model = self.batch / "sparse" / "0"
            try:
                if (self.batch / "sparse").exists():
                    names = {p.name for p in model.iterdir()} if model.is_dir() else set()
                    visible = {p.name for p in (self.batch / "sparse").iterdir() if not p.name.startswith(".")}
                    if visible and not MODEL_FILES <= names:
                        self.bad.append(sorted(visible | names))
                    elif names:
                        self.seen_complete = True
            except FileNotFoundError:
                pass  # swapped between listing and reading: an atomic rename in progress
            self.halt.wait(0.2)

    def stop(self):
        self.halt.set()
        self.join()


def wait_for_step(root: Path, key: str, step: str, proc, timeout=300) -> None:
    from dagster import DagsterEventType, RunsFilter

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stdout.read()
        if (root.parent / "dagster-home/history/runs.db").is_file():
            instance = open_instance(root.parent / "dagster-home")
            try:
                for record in instance.get_run_records(RunsFilter(tags={"onyx/batch": key})):
                    starts = instance.get_records_for_run(record.dagster_run.run_id,
                                                          of_type=DagsterEventType.STEP_START).records
                    if any(r.event_log_entry.step_key == step for r in starts):
                        return
            finally:
                instance.dispose()
        time.sleep(0.5)
    raise AssertionError(f"{step} did not start within {timeout} s")


@pytest.fixture(scope="module")
def killed_and_resumed(tmp_path_factory):
    """onyx run, kill -9 of its process group during sfm, onyx resume --until SFM."""
    root = tmp_path_factory.mktemp("real") / "data"
    key = "stone"
    watcher = SparseWatcher(root / key)
    watcher.start()
    proc = subprocess.Popen([*ONYX, "run", "-i", VIDEO, "-o", root, *RUN, "--batch", key, "--until", "SFM"],
                            env=subprocess_env(), start_new_session=True, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        wait_for_step(root, key, "sparse_model", proc)
        time.sleep(3)  # into feature extraction
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    after_kill = counts(root, key)
    had_sparse_after_kill = (root / key / "sparse" / "0").exists()
    started = time.monotonic()
    resumed = onyx("resume", key, "-d", root, "--until", "SFM")
    watcher.stop()
    return {"root": root, "key": key, "after_kill": after_kill, "sparse_after_kill": had_sparse_after_kill,
            "resumed": resumed, "resume_s": time.monotonic() - started, "watcher": watcher}


def test_kill9_during_sfm_then_resume(killed_and_resumed):
    r = killed_and_resumed
    assert r["after_kill"] == {"video": 1, "frames": 1, "sparse_model": 0}
    assert not r["sparse_after_kill"], "a killed sfm left sparse/0 behind"
    assert r["resumed"].returncode == 0, r["resumed"].stdout + r["resumed"].stderr
    assert "sparse_model (failed)" in r["resumed"].stdout  # the dead run was reported failed
    assert counts(r["root"], r["key"]) == {"video": 1, "frames": 1, "sparse_model": 1}
    assert MODEL_FILES <= {p.name for p in (r["root"] / r["key"] / "sparse/0").iterdir()}
    assert r["watcher"].bad == [], f"partial sparse/ seen: {r['watcher'].bad[:3]}"
    assert r["watcher"].seen_complete


def test_listing_and_recipe_plan(killed_and_resumed):
    r = killed_and_resumed
    listed = onyx("list", r["root"], "--json")
    row = {b["batch"]: b for b in json.loads(listed.stdout)["batches"]}[r["key"]]
    assert row["assets"]["sparse_model"]["state"] == "materialized"
    assert row["last_run"]["status"] == "success"
    plan = onyx("resume", r["key"], "-d", r["root"], "--dry-run")
    assert plan.returncode == 0, plan.stderr
    if "reconstruction" in plan.stdout:  # the recipe steps exist in this code location
        assert "recipe gaussian-proto" in plan.stdout and "frames" not in plan.stdout.split("\n")[1]
        if os.environ.get("ONYX_TEST_RECIPES") == "1":
            done = onyx("resume", r["key"], "-d", r["root"], timeout=3600)
            assert done.returncode == 0, done.stderr
            assert (r["root"] / r["key"] / "output" / "gaussian-proto").is_dir()


def test_from_step_sfm_redoes_sfm_not_frames(killed_and_resumed):
    r = killed_and_resumed
    before = counts(r["root"], r["key"])
    done = onyx("resume", r["key"], "-d", r["root"], "--from-step", "SFM", "--until", "SFM")
    assert done.returncode == 0, done.stderr
    after = counts(r["root"], r["key"])
    assert after["frames"] == before["frames"] and after["video"] == before["video"]
    assert after["sparse_model"] == before["sparse_model"] + 1


def test_export_import_into_fresh_instance(killed_and_resumed, tmp_path):
    from onyx_tools.manifest import content_manifest

    r = killed_and_resumed
    archive = tmp_path / "stone.zip"
    exported = onyx("export", r["key"], "-d", r["root"], "-o", archive)
    assert exported.returncode == 0, exported.stderr
    fresh_root, fresh_home = tmp_path / "other-data", tmp_path / "other-home"
    env = subprocess_env(DAGSTER_HOME=fresh_home)  # an explicit DAGSTER_HOME wins over dagster-home/ beside the root
    imported = onyx("import-batch", archive, "-o", fresh_root, env=env)
    assert imported.returncode == 0, imported.stderr
    assert fresh_home.is_dir() and not (tmp_path / "dagster-home").exists()
    source = {k: v for k, v in content_manifest(r["root"] / r["key"]).items() if k != ".lock"}
    assert content_manifest(fresh_root / r["key"]) == source
    listed = onyx("list", fresh_root, env=env)
    assert r["key"] in listed.stdout and "imported" in listed.stdout
    before = snapshot(fresh_root)
    again = onyx("import-batch", archive, "-o", fresh_root, env=env)
    assert again.returncode == 2 and "--as NEWKEY" in again.stderr and snapshot(fresh_root) == before


def test_bad_settings_at_the_boundary(tmp_path):
    root = tmp_path / "data"
    bad = onyx("run", "-i", VIDEO, "-o", root, "--mode", "gaussian", "--scene", "moon", "--quality", "proto",
               "--video", "vr")
    assert bad.returncode == 2
    assert "scene: got 'moon'" in bad.stderr and "video: got 'vr'" in bad.stderr
    assert not root.exists()
