"""Four videos launched together through the queue, against the same four one after another.

Four small batches from ../shared/datasets (each about 16-18 frames):

    stone-sign        real_videos/stone_sign.mp4, interval 0.2 s
    holiday-display   real_videos/holiday_display_01.mp4, interval 0.15 s
    chair             chair_images/ made into a 5 fps video, interval 0.25 s
    stone-sign-cut    a second cut of stone_sign.mp4 (from 0.4 s on), interval 0.17 s

Together: the real ``dagster-webserver`` and ``dagster-daemon`` on loopback with the
repository's own dagster.yaml (queued runs, at most 4 at once, one per batch, the ``gpu``
pool of 1), and one asset backfill of video, frames and sparse_model over the four batches,
launched with the GraphQL mutation the UI's "Launch backfill" button sends. Timed from the
launch until the last run has finished.

One after another: ``dagster asset materialize`` for each batch in turn, each in its own
process, on an instance with the same dagster.yaml (Onyx 1.0's way: one video at
a time from a terminal).

The project's dagster.yaml as it is: the queue looks for runs every second and the backfill loop
every 2 s (onyx_dagster/run_queue.py); the heavy steps take a slot in the ``cpu`` pool on a host
without a GPU, sized from the cores (one on 2 cores), so ingest of one batch overlaps the SfM of
another while two SfMs never share the cores; steps run in the run's own process (in-process
executor). Reported besides the ratio: seconds from the launch to the first run's launch and to its
first step's start.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from .harness import DATASETS, REPO, Row

BIN = Path(sys.executable).parent
SELECTION = ["video", "frames", "sparse_model"]
BATCHES = {  # key: (source, interval seconds)
    "stone-sign": ("stone_sign.mp4", 0.2),
    "holiday-display": ("holiday_display_01.mp4", 0.15),
    "chair": ("chair.mp4", 0.25),
    "stone-sign-cut": ("stone_sign_cut.mp4", 0.17),
}
RUN_TIMEOUT_S = 1800


def make_videos(folder: Path) -> dict[str, Path]:
    videos = folder / "videos"
    videos.mkdir()
    real = DATASETS / "real_videos"
    shutil.copy(real / "stone_sign.mp4", videos / "stone_sign.mp4")
    shutil.copy(real / "holiday_display_01.mp4", videos / "holiday_display_01.mp4")
    ffmpeg = ["ffmpeg", "-v", "error", "-y"]
    subprocess.run([*ffmpeg, "-framerate", "5", "-i", str(DATASETS / "chair_images" / "image%03d.jpg"),
                    "-c:v", "libx264", "-pix_fmt", "yuv420p", str(videos / "chair.mp4")], check=True)
    subprocess.run([*ffmpeg, "-ss", "0.4", "-i", str(real / "stone_sign.mp4"), "-an", "-c:v", "libx264",
                    "-pix_fmt", "yuv420p", str(videos / "stone_sign_cut.mp4")], check=True)
    return {key: videos / name for key, (name, _) in BATCHES.items()}


def make_site(root: Path, videos: dict[str, Path]) -> dict:
    """A DAGSTER_HOME with the repository's dagster.yaml, the four batches added, and its env."""
    from dagster import DagsterInstance

    from onyx_dagster.batches import add_batch, parse_settings
    from onyx_dagster.pools import ensure_pools

    home, data, drop = root / "dagster-home", root / "onyx-data", root / "onyx-drop"
    for folder in (home, data, drop):
        folder.mkdir(parents=True)
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    instance = DagsterInstance.from_config(str(home))
    try:
        ensure_pools(instance)
        for key, (_, interval) in BATCHES.items():
            add_batch(instance, data, key, parse_settings({
                "input": str(videos[key]), "scene": "outdoor", "mode": "gaussian", "quality": "proto",
                "interval": interval}))
    finally:
        instance.dispose()
    return {**os.environ, "DAGSTER_HOME": str(home), "ONYX_DATA": str(data), "ONYX_DROP": str(drop),
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}


def sfm_seconds(home: str) -> float:
    """Seconds spent in sparse_model steps, summed over runs (from the event log)."""
    from dagster import DagsterEventType, DagsterInstance, EventRecordsFilter

    instance = DagsterInstance.from_config(home)
    try:
        times = {}
        for kind in (DagsterEventType.STEP_START, DagsterEventType.STEP_SUCCESS):
            for record in instance.get_event_records(EventRecordsFilter(event_type=kind)):
                entry = record.event_log_entry
                if entry.step_key == "sparse_model":
                    times.setdefault(entry.run_id, {})[kind] = entry.timestamp
        return sum(t[DagsterEventType.STEP_SUCCESS] - t[DagsterEventType.STEP_START] for t in times.values()
                   if len(t) == 2)
    finally:
        instance.dispose()


def one_after_another(env: dict) -> float:
    start = time.perf_counter()
    for key in BATCHES:
        done = subprocess.run([str(BIN / "dagster"), "asset", "materialize", "-m", "onyx_dagster.definitions",
                               "--select", ",".join(SELECTION), "--partition", key],
                              cwd=REPO, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
        if done.returncode != 0:
            raise RuntimeError(f"materialize {key} failed:\n{(done.stdout + done.stderr)[-3000:]}")
    return time.perf_counter() - start


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _graphql(url: str, query: str, variables: dict) -> dict:
    request = urllib.request.Request(f"{url}/graphql", data=json.dumps({"query": query, "variables": variables})
                                     .encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as response:
        answer = json.loads(response.read())
    if "errors" in answer:
        raise RuntimeError(f"GraphQL error: {answer['errors']}")
    return answer["data"]


LAUNCH_BACKFILL = """
mutation Launch($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
  }
}"""


def together(env: dict, logs: Path) -> tuple[float, dict]:
    """One backfill over the four batches, run by the real daemon; seconds from launch to last run end."""
    from dagster import DagsterEventType, DagsterInstance, EventRecordsFilter

    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    processes = []
    try:
        for name, command in (("webserver", [str(BIN / "dagster-webserver"), "-w", "workspace.yaml",
                                             "-h", "127.0.0.1", "-p", str(port)]),
                              ("daemon", [str(BIN / "dagster-daemon"), "run", "-w", "workspace.yaml"])):
            processes.append(subprocess.Popen(command, cwd=REPO, env=env, start_new_session=True,
                                              stdout=(logs / f"{name}.log").open("wb"), stderr=subprocess.STDOUT))
        deadline = time.monotonic() + 300
        while True:
            try:
                urllib.request.urlopen(f"{url}/server_info", timeout=5).read()
                break
            except OSError:
                if time.monotonic() > deadline or processes[0].poll() is not None:
                    raise RuntimeError("dagster-webserver did not start: see " + str(logs)) from None
                time.sleep(1)
        instance = DagsterInstance.from_config(env["DAGSTER_HOME"])
        try:
            # The daemon is ready when its backfill and run-queue loops have reported in.
            while not {"BACKFILL", "QUEUED_RUN_COORDINATOR"} <= set(instance.get_daemon_heartbeats()):
                if time.monotonic() > deadline or processes[1].poll() is not None:
                    raise RuntimeError("dagster-daemon did not start: see " + str(logs))
                time.sleep(1)
            launched = time.time()
            answer = _graphql(url, LAUNCH_BACKFILL, {"params": {
                "partitionNames": list(BATCHES), "assetSelection": [{"path": [key]} for key in SELECTION],
                "tags": [{"key": "onyx/bench", "value": "backfill"}]}})["launchPartitionBackfill"]
            if answer["__typename"] != "LaunchBackfillSuccess":
                raise RuntimeError(f"backfill not launched: {answer}")
            backfill_id = answer["backfillId"]
            while True:
                backfill = instance.get_backfill(backfill_id)
                runs = [run for run in instance.get_runs() if run.tags.get("dagster/backfill") == backfill_id]
                if backfill.status.value.startswith(("COMPLETED", "FAILED", "CANCELED")) and all(
                        run.is_finished for run in runs):
                    break
                if time.time() - launched > RUN_TIMEOUT_S:
                    raise RuntimeError(f"backfill {backfill_id} still {backfill.status.value} after "
                                       f"{RUN_TIMEOUT_S} s")
                time.sleep(1)
            failed = [run.run_id for run in runs if run.status.value != "SUCCESS"]
            if backfill.status.value != "COMPLETED_SUCCESS" or failed:
                raise RuntimeError(f"backfill {backfill_id} ended {backfill.status.value}, failed runs {failed}")
            ends = [instance.get_run_stats(run.run_id).end_time for run in runs]
            wall = max(ends) - launched
            steps = instance.get_event_records(EventRecordsFilter(event_type=DagsterEventType.STEP_START))
            facts = {"runs": len(runs), "first_run_start_s": round(
                min(instance.get_run_stats(run.run_id).launch_time for run in runs) - launched, 1),
                "first_step_start_s": round(min(r.event_log_entry.timestamp for r in steps) - launched, 1)}
        finally:
            instance.dispose()
        return wall, facts
    finally:
        for process in reversed(processes):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()


def run() -> list[Row]:
    if not DATASETS.is_dir():
        raise RuntimeError(f"real test data not found at {DATASETS}")
    keep = os.environ.get("ONYX_BENCH_KEEP")  # a folder to keep the instances and logs in
    root = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="onyx-bench-backfill-"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        videos = make_videos(root)
        # The baseline is measured before and after the together cases and averaged: these machines
        # are shared, and their background load changes from minute to minute.
        before_env = make_site(root / "sequential-before", videos)
        before_s = one_after_another(before_env)
        alone_sfm_s = sfm_seconds(before_env["DAGSTER_HOME"])
        print(f"bench backfill: one after another {before_s:.1f} s", file=sys.stderr, flush=True)
        site = root / "together"
        env = make_site(site, videos)
        wall, facts = together(env, site)
        facts["sfm_s"] = sfm_seconds(env["DAGSTER_HOME"])
        print(f"bench backfill: together: {wall:.1f} s {facts}", file=sys.stderr, flush=True)
        after_s = one_after_another(make_site(root / "sequential-after", videos))
        print(f"bench backfill: one after another, again {after_s:.1f} s", file=sys.stderr, flush=True)
        sequential_s = (before_s + after_s) / 2
        rows = [Row("4 videos backfilled at once vs one after another", wall, sequential_s, "s", "<= 1.0x",
                    f"one asset backfill (video, frames, sparse_model) run by the daemon through the queue, "
                    f"{facts['runs']} runs, first run launched {facts['first_run_start_s']} s and first step "
                    f"started {facts['first_step_start_s']} s after launch (goal <= 5 s), SfM steps "
                    f"{facts['sfm_s']:.0f} s in all (one after another: {alone_sfm_s:.0f} s); baseline: dagster "
                    f"asset materialize x4 one after another ({before_s:.0f} s before, {after_s:.0f} s after); "
                    f"{os.cpu_count()} shared cores, load {os.getloadavg()[0]:.1f}")]
        return rows
    finally:
        if not keep:
            shutil.rmtree(root, ignore_errors=True)
