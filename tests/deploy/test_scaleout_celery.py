"""Phase 2 for real: Postgres + Redis (Debian, on loopback), two Celery workers as two GPU "hosts".

What runs: deploy/phase2/dagster.yaml as the instance (Postgres storage, queued runs), the Dagster
daemon, ``dagster job backfill`` of three batches of the sample walk (``onyx_sample``: rendered, then the
real ingest and COLMAP; 20 frames at 320x180, so SfM takes seconds: scale-out is the subject here), the
Celery executor of onyx_dagster/executors.py (ONYX_EXECUTOR=celery) routing each batch to one of the
queues ``hostA``/``hostB``, and two ``dagster-celery worker start`` processes (one queue each, one
task at a time). The worker of host A is killed (its whole process group: worker, pool child, tool)
in the middle of a sparse_model step; the run fails with WorkerLost, the other batches finish on
host B, and a re-execution from failure (what ``onyx resume`` / the UI's "re-execute from failure"
do) is routed to the live host and completes the batch. Postgres holds every run's events.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO

pytestmark = [pytest.mark.scaleout, pytest.mark.slow]

QUEUES = ["hostA", "hostB"]
BIN = Path(sys.executable).parent
WORKER_LOST_S = 8
TIMEOUT_S = 300


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _pick_keys():
    """Three batch keys: one routed to hostA (the host that dies), two to hostB."""
    from onyx_dagster.executors import rendezvous

    on = {queue: [] for queue in QUEUES}
    for index in range(1, 200):
        key = f"stone-{index:02d}"
        on[rendezvous(key, QUEUES)].append(key)
        if on["hostA"] and len(on["hostB"]) >= 2:
            return on["hostA"][0], on["hostB"][:2]
    raise AssertionError("rendezvous hashing put every key on one queue")


def _worker_events(instance, run_id):
    """{step_key: celery worker hostname} from the workers' own engine events in the event log."""
    found = {}
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None or event.event_type_value != "ENGINE_EVENT" or not entry.step_key:
            continue
        metadata = event.engine_event_data.metadata or {}
        if "Celery worker" in metadata:
            found[entry.step_key] = metadata["Celery worker"].value
    return found


def _routed_queue(instance, run_id) -> str | None:
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is not None and event.event_type_value == "ENGINE_EVENT":
            metadata = event.engine_event_data.metadata or {}
            if "routing" in metadata and "queue" in metadata:
                return metadata["queue"].value
    return None


def _submitted_queues(instance, run_id) -> dict[str, str]:
    found = {}
    for entry in instance.all_logs(run_id):
        message = entry.dagster_event.message if entry.dagster_event else ""
        if entry.step_key and message and message.startswith("Submitting celery task for step"):
            found[entry.step_key] = message.rsplit('to queue "', 1)[1].rstrip('".')
    return found


def _failure_text(instance, run_id) -> str:
    """The run failure's message and error chain, plus engine errors, as one text."""
    parts = []
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None:
            continue
        if event.event_type_value == "PIPELINE_FAILURE":
            parts.append(event.message or "")
            error = getattr(event.event_specific_data, "error", None)
            parts.append(error.to_string() if error is not None else "")
        elif event.event_type_value == "ENGINE_EVENT" and event.engine_event_data.error is not None:
            parts.append(event.engine_event_data.error.to_string())
    return "\n".join(parts)


REEXECUTE = """
import sys
import onyx_tools.native_order  # noqa: F401
from dagster import DagsterInstance, ReexecutionOptions, execute_job
from dagster._core.definitions.reconstruct import ReconstructableRepository

killed, repo = sys.argv[1], sys.argv[2]
instance = DagsterInstance.get()
job = ReconstructableRepository.for_module("onyx_dagster.definitions", "defs", repo).get_reconstructable_job("batch_job")
tags = {k: v for k, v in instance.get_run_by_id(killed).tags.items() if k.startswith(("dagster/partition", "onyx/"))}
with execute_job(job, instance=instance, tags=tags,
                 reexecution_options=ReexecutionOptions.from_failure(killed, instance)) as result:
    print(result.run_id, "success" if result.success else "failure")
"""


def _started_steps(instance, run_id) -> set[str]:
    return {entry.step_key for entry in instance.all_logs(run_id)
            if entry.dagster_event and entry.dagster_event.event_type_value == "STEP_START"}


def test_backfill_over_two_celery_hosts_survives_a_killed_worker(postgres, redis_server, tmp_path, monkeypatch):
    import psycopg2
    from dagster import (
        AssetKey,
        AssetRecordsFilter,
        DagsterInstance,
        DagsterRunStatus,
        RunsFilter,
    )

    from onyx_sample import make_sample_video

    video = make_sample_video(tmp_path / "video", frames=20, width=320, height=180, fps=4).path
    started = time.monotonic()

    home, data, shared, logs = (tmp_path / name for name in ("dagster-home", "onyx-data", "shared", "logs"))
    for folder in (home, data, shared, logs):
        folder.mkdir()
    (home / "dagster.yaml").write_text((REPO / "deploy" / "phase2" / "dagster.yaml").read_text())
    env = {
        "DAGSTER_HOME": str(home),
        "DAGSTER_PG_HOST": postgres["host"], "DAGSTER_PG_PORT": str(postgres["port"]),
        "DAGSTER_PG_USER": postgres["user"], "DAGSTER_PG_PASSWORD": postgres["password"],
        "DAGSTER_PG_DB": postgres["db"],
        "ONYX_DAGSTER_SHARED": str(shared / "storage"), "ONYX_DAGSTER_LOGS": str(shared / "compute-logs"),
        "ONYX_EXECUTOR": "celery",
        "ONYX_CELERY_BROKER": f"{redis_server}/0", "ONYX_CELERY_BACKEND": f"{redis_server}/1",
        "ONYX_CELERY_QUEUES": ",".join(QUEUES), "ONYX_CELERY_WORKER_LOST_S": str(WORKER_LOST_S),
        "ONYX_DATA": str(data), "ONYX_RUNNER": "local", "ONYX_DROP": str(tmp_path / "drop"),
        "PYTHONPATH": os.pathsep.join([str(REPO / "tests" / "deploy"), str(REPO)]),
        "OMP_NUM_THREADS": "1", "DAGSTER_TELEMETRY_ENABLED": "false",
        "PATH": os.pathsep.join([str(BIN), os.environ.get("PATH", "")]),  # dagster-celery runs `celery`
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    if str(REPO / "tests" / "deploy") not in sys.path:
        monkeypatch.syspath_prepend(str(REPO / "tests" / "deploy"))
    full_env = {**os.environ, **env}

    processes: dict[str, subprocess.Popen] = {}

    def spawn(name, args):
        processes[name] = subprocess.Popen(args, cwd=REPO, env=full_env, start_new_session=True,
                                           stdout=open(logs / f"{name}.log", "w"), stderr=subprocess.STDOUT)
        return processes[name]

    def stop(name, sig=signal.SIGTERM):
        process = processes.get(name)
        if process is not None and process.poll() is None:
            try:
                os.killpg(process.pid, sig)
            except ProcessLookupError:
                return
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)

    def diagnostics() -> str:
        return "\n".join(f"--- {log.name}\n{_tail(log)}" for log in sorted(logs.glob("*.log")))

    from onyx_dagster.batches import BatchSettings, add_batch

    instance = DagsterInstance.get()
    try:
        key_a, keys_b = _pick_keys()
        keys = [key_a, *keys_b]
        for key in keys:
            add_batch(instance, data, key, BatchSettings(input=video, scene="indoor", video="normal",
                                                         mode="gaussian", quality="proto", interval=0.25))

        # Two "hosts": one worker each, listening on its own queue, one task at a time.
        for queue in QUEUES:
            spawn(f"worker-{queue}", [str(BIN / "dagster-celery"), "worker", "start", "-A", "dagster_celery.app",
                                      "-y", str(REPO / "deploy" / "phase2" / "celery.yaml"), "-q", queue,
                                      "-n", queue, "-l", "INFO", "--", "--concurrency=1"])
        from dagster_celery.make_app import make_app

        from onyx_dagster.executors import live_queues
        app = make_app({"broker": env["ONYX_CELERY_BROKER"], "backend": env["ONYX_CELERY_BACKEND"]})
        deadline = time.monotonic() + 90
        while set(QUEUES) - (live_queues(app) or set()):
            dead = [name for name, process in processes.items() if process.poll() is not None]
            assert not dead and time.monotonic() < deadline, f"celery workers did not come up\n{diagnostics()}"
            time.sleep(1)

        spawn("daemon", [str(BIN / "dagster-daemon"), "run", "-m", "onyx_dagster.definitions"])
        backfill = subprocess.run(
            [str(BIN / "dagster"), "job", "backfill", "-m", "onyx_dagster.definitions", "-j", "batch_job",
             "--partitions", ",".join(keys), "--noprompt"],
            cwd=REPO, env=full_env, capture_output=True, text=True, timeout=120)
        assert backfill.returncode == 0, backfill.stdout + backfill.stderr

        # Wait for host A to be in the middle of sparse_model of its batch, then kill the host's worker.
        killed_run = None
        terminal = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            assert time.monotonic() < deadline, f"backfill did not finish in {TIMEOUT_S} s\n{diagnostics()}"
            runs = instance.get_runs(RunsFilter(job_name="batch_job"))
            by_batch = {run.tags.get("dagster/partition"): run for run in runs}
            if killed_run is None and key_a in by_batch:
                run = by_batch[key_a]
                if "sparse_model" in _started_steps(instance, run.run_id):
                    time.sleep(0.5)
                    stop("worker-hostA", signal.SIGKILL)  # the host dies: worker, pool child, tool
                    killed_run = run.run_id
            if len(by_batch) == len(keys) and all(run.status in terminal for run in by_batch.values()) \
                    and killed_run is not None:
                break
            time.sleep(1.0)
        first = {key: by_batch[key] for key in keys}

        # The killed host's run failed, naming the lost worker; the other batches finished on host B.
        assert first[key_a].status == DagsterRunStatus.FAILURE, diagnostics()
        said = _failure_text(instance, killed_run)
        assert "WorkerLost" in said and "hostA@" in said, said[-3000:]
        for key in keys_b:
            assert first[key].status == DagsterRunStatus.SUCCESS, f"{key}: {first[key].status}\n{diagnostics()}"

        # Each step went to the queue its run was routed to, and ran on that host's worker.
        expected = {key_a: "hostA", **{key: "hostB" for key in keys_b}}
        for key, run in first.items():
            assert _routed_queue(instance, run.run_id) == expected[key]
            submitted = _submitted_queues(instance, run.run_id)
            ran_on = _worker_events(instance, run.run_id)
            assert submitted and set(submitted.values()) == {expected[key]}, (key, submitted)
            assert ran_on and all(host.startswith(f"{expected[key]}@") for host in ran_on.values()), (key, ran_on)
        assert _worker_events(instance, killed_run)["sparse_model"].startswith("hostA@")

        # Resume: re-execute the failed run from failure; host A is gone, so it goes to host B. In a process
        # of its own, as a control plane would: this one may have loaded the definitions without these settings.
        done = subprocess.run([sys.executable, "-c", REEXECUTE, killed_run, str(REPO)], cwd=REPO, env=full_env,
                              capture_output=True, text=True, timeout=TIMEOUT_S)
        lines = done.stdout.split()
        assert done.returncode == 0 and lines[-1:] == ["success"], done.stdout[-2000:] + done.stderr[-3000:] \
            + diagnostics()
        resumed = lines[-2]
        assert _routed_queue(instance, resumed) == "hostB"
        resumed_on = _worker_events(instance, resumed)
        assert "sparse_model" in resumed_on and all(h.startswith("hostB@") for h in resumed_on.values()), resumed_on
        assert "video" not in _started_steps(instance, resumed)  # what succeeded is not redone

        # No batch lost: every batch has its sparse model, on disk and as a materialisation.
        for key in keys:
            assert (data / key / "sparse" / "0" / "images.bin").is_file(), key
            for asset in ("video", "frames", "sparse_model"):
                records = instance.fetch_materializations(
                    AssetRecordsFilter(asset_key=AssetKey(asset), asset_partitions=[key]), limit=10).records
                assert records, (key, asset)
        assert set(instance.get_dynamic_partitions("batches")) == set(keys)

        # Postgres has every event of every run, written by the run processes and both hosts' workers.
        connection = psycopg2.connect(host=postgres["host"], port=postgres["port"], user=postgres["user"],
                                      dbname=postgres["db"])
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT run_id, dagster_event_type, count(*) FROM event_logs GROUP BY 1, 2")
                rows = cursor.fetchall()
                cursor.execute("SELECT run_id, count(*) FROM event_logs GROUP BY 1")
                totals = dict(cursor.fetchall())
        finally:
            connection.close()
        types: dict[str, set] = {}
        for run_id, event_type, _count in rows:
            types.setdefault(run_id, set()).add(event_type)
        for run_id in [*(run.run_id for run in first.values()), resumed]:
            assert totals[run_id] == len(instance.all_logs(run_id))
        for run_id in [first[key].run_id for key in keys_b] + [resumed]:
            assert {"PIPELINE_START", "STEP_START", "STEP_SUCCESS", "ASSET_MATERIALIZATION",
                                         "PIPELINE_SUCCESS"} <= types[run_id]
        assert {"PIPELINE_START", "STEP_START", "PIPELINE_FAILURE"} <= types[killed_run]
    finally:
        for name in list(processes):
            stop(name)
        instance.dispose()
        print(f"scale-out test wall time: {time.monotonic() - started:.0f} s")
