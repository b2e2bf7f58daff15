"""Helpers of the fault suite: the onyx command as a subprocess, the instance's counts,
a batch's checksums, and killing a run's whole process group during a chosen step."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DATASETS = (REPO.parent / "shared" / "datasets").resolve()
STONE_SIGN = DATASETS / "real_videos" / "stone_sign.mp4"
ONYX = [sys.executable, "-m", "onyx_dagster.cli"]

# Every recipe step of these tests runs photogrammetry-proto (the CPU path, seconds) and
# masks for an outdoor scene with a tiny random SegFormer.
MODE, QUALITY, SCENE, INTERVAL = "photogrammetry", "proto", "outdoor", "0.15"  # every frame registers (not at 0.3)
RECIPE = f"{MODE}-{QUALITY}"
RUN_ARGS = ["--mode", MODE, "--scene", SCENE, "--quality", QUALITY, "--interval", INTERVAL]
ASSETS = ("video", "frames", "sparse_model", "reconstruction", "masks")
TOOLS = {"frames": "ingest", "sparse_model": "sfm", "reconstruction": "openmvs", "masks": "segformer"}


def env(**extra) -> dict:
    """The environment of an onyx subprocess: no inherited DAGSTER_HOME/ONYX_DATA (the
    instance is dagster-home/ beside the data root), no model hub."""
    out = {k: v for k, v in os.environ.items() if k not in ("DAGSTER_HOME", "ONYX_DATA", "ONYX_DEFINITIONS")}
    out.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "2"})
    out.update({k: str(v) for k, v in extra.items()})
    return out


def onyx(*args, environ: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([*ONYX, *map(str, args)], env=environ or env(), capture_output=True, text=True,
                          timeout=timeout)


def spawn(*args, environ: dict | None = None) -> subprocess.Popen:
    """onyx in its own session, so killing its process group kills it and its tools, as a crash would."""
    return subprocess.Popen([*ONYX, *map(str, args)], env=environ or env(), start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def open_home(root: Path):
    from onyx_dagster.operations.context import open_instance

    return open_instance(Path(root).parent / "dagster-home")


def partition(asset: str, key: str, recipe: str = RECIPE) -> str:
    return f"{key}|{recipe}" if asset in ("reconstruction", "masks") else key


def counts(root: Path, key: str, recipe: str = RECIPE) -> dict[str, int]:
    """Materialisations of each asset partition of the batch (the event log)."""
    from onyx_dagster.operations.state import count_materializations

    if not (Path(root).parent / "dagster-home").is_dir():
        return dict.fromkeys(ASSETS, 0)
    instance = open_home(root)
    try:
        return {name: count_materializations(instance, name, partition(name, key, recipe)) for name in ASSETS}
    finally:
        instance.dispose()


def run_ids(root: Path, key: str) -> set[str]:
    from onyx_dagster.operations.state import batch_runs

    instance = open_home(root)
    try:
        return {record.dagster_run.run_id for record in batch_runs(instance, key)}
    finally:
        instance.dispose()


def checksums(folder: Path) -> dict[str, str]:
    """sha256 of every file of a batch folder (the lock file aside: every onyx verb takes it)."""
    from onyx_tools.manifest import content_manifest

    return {k: v for k, v in content_manifest(folder).items() if k != ".lock"} if Path(folder).is_dir() else {}


def tree(root: Path) -> list[str]:
    root = Path(root)
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


@dataclass
class RunEvents:
    run_id: str
    started: set[str]        # step keys with a STEP_START
    materialized: set[str]   # asset keys with an ASSET_MATERIALIZATION
    status: str


def runs_of_pid(root: Path, key: str, pid: int) -> list[RunEvents]:
    """The runs the onyx process ``pid`` started for the batch, with what each did."""
    from dagster import DagsterEventType

    from onyx_dagster.operations.state import TAG_PID, batch_runs

    instance = open_home(root)
    try:
        found = []
        for record in batch_runs(instance, key):
            run = record.dagster_run
            if run.tags.get(TAG_PID) != str(pid):
                continue
            starts = instance.get_records_for_run(run.run_id, of_type=DagsterEventType.STEP_START, limit=1000)
            mats = instance.get_records_for_run(run.run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION,
                                                limit=1000)
            found.append(RunEvents(
                run.run_id, {r.event_log_entry.step_key for r in starts.records},
                {r.event_log_entry.dagster_event.asset_key.to_user_string() for r in mats.records},
                run.status.value))
        return found
    finally:
        instance.dispose()


def tool_started(log: Path, offset: int) -> bool:
    """The tool wrote its "<tool> started with" line after byte ``offset`` of its log."""
    try:
        with open(log, "rb") as handle:
            handle.seek(offset)
            return b" started with " in handle.read()
    except FileNotFoundError:
        return False


def log_size(log: Path) -> int:
    try:
        return log.stat().st_size
    except FileNotFoundError:
        return 0


def staging(batch: Path) -> list[str]:
    """The hidden temporaries a step is writing into (``.tmp-<name>-<id>``), below the batch folder."""
    return sorted(str(p.relative_to(batch)) for p in batch.rglob(".tmp-*")) if batch.exists() else []


def process_group_gone(pgid: int, timeout: float = 15.0) -> bool:
    """No live (non-zombie) process is left in the group: the tool died with its orchestrator."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    fields = handle.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                alive.append(entry)
        if not alive:
            return True
        time.sleep(0.2)
    return False


@dataclass
class Kill:
    """What was seen when ``onyx`` was killed during ``step``."""

    step: str
    pid: int
    alive_at_kill: bool      # the onyx process was still running (so the kill was mid-step)
    tool_running: bool       # the step's tool had started (its log says so)
    staged: list[str]        # hidden temporaries at the kill (a step mid-write)
    group_gone: bool         # nothing of the process group survived
    output: str              # what onyx printed before dying


def kill_during(proc: subprocess.Popen, batch: Path, step: str, *, wait: float, stage: str | None = None,
                timeout: float = 400) -> Kill:
    """SIGKILL the process group of ``proc`` during ``step``: once the step's tool has logged its
    start, as soon as it stages ``<batch>/.tmp-<stage>-*`` (mid-write) or after ``wait`` seconds."""
    log = batch / "logs" / f"{TOOLS[step]}.log"
    offset = log_size(log)
    deadline = time.monotonic() + timeout
    try:
        while not tool_started(log, offset):
            if proc.poll() is not None:
                raise AssertionError(f"onyx exited ({proc.returncode}) before {step} started:\n{proc.stdout.read()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{step} did not start within {timeout} s")
            time.sleep(0.02)
        began = time.monotonic()
        while time.monotonic() - began < wait:
            if stage and any(Path(s).name.startswith(f".tmp-{stage}-") for s in staging(batch)):
                break
            time.sleep(0.02)
        staged = staging(batch)
        alive = proc.poll() is None
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        out, _ = proc.communicate()
    return Kill(step=step, pid=proc.pid, alive_at_kill=alive, tool_running=tool_started(log, offset), staged=staged,
                group_gone=process_group_gone(proc.pid), output=out or "")


def planned(output: str) -> dict[str, str]:
    """The steps an ``onyx resume`` printed in its plan, with their reasons ("failed", "missing")."""
    import re

    steps: dict[str, str] = {}
    lines = output.splitlines()
    start = next((i for i, line in enumerate(lines) if re.match(r"^(resume \S+|plan):$", line)), None)
    if start is None:
        return steps
    for line in lines[start + 1:]:
        if not line.startswith("  ") or ": " not in line:
            break
        for item in line.split(": ", 1)[1].split(", "):
            name, _, reason = item.partition(" (")
            steps[name.strip()] = reason.rstrip(")")
    return steps
