"""Where a run's steps execute: Dagster's default executor, or Celery workers on several GPU hosts.

The settings' ``ONYX_EXECUTOR`` picks it, never code (the phase-2 deployment in ``deploy/phase2`` sets it):

- unset / ``default`` / ``in_process``: Dagster's in-process executor: a run's steps one after another in
  the run's own process. A step's work is its tool, a subprocess of its own anyway; the multiprocess
  executor would start a second Python (and load the code location again) for every step, seconds
  each on a small machine, for parallelism a batch's chain of steps has little use for;
- ``multiprocess``: Dagster's multiprocess executor (every step in its own process on the run's machine);
- ``celery``: :func:`onyx_celery_executor`, Dagster's Celery executor (``dagster_celery``) with
  Redis as broker and result backend, one queue per GPU host, and two additions:

  **Routing by batch.** A run's steps go to one queue, chosen in this order:
  1. the step's op tag ``dagster-celery/queue`` (Dagster's own; an asset's ``op_tags``),
  2. the run tag ``onyx/queue`` (pin a batch to a host: ``onyx/queue=gpu-b``),
  3. rendezvous hashing of the run's batch (its partition key) over the queues in
     ``ONYX_CELERY_QUEUES`` that have a live worker right now, else over all of them.
  So a batch's steps all run on one host (its frames and models are written there once), a
  backfill spreads batches over the hosts, adding a host moves only ~1/n of the batches, and a
  resumed run whose host is gone goes to a host that is alive.

  **A lost worker fails the step.** Dagster's Celery loop waits for a task's result forever; a
  worker killed mid-step (host crash, OOM kill, power) never sends one. Tasks are tracked
  (``task_track_started``), and a started task whose worker stops answering pings for
  ``ONYX_CELERY_WORKER_LOST_S`` seconds (default 60) fails with ``WorkerLost``: the run fails and
  ``onyx resume`` / re-execute-from-failure completes it on a live host.

Workers are ``dagster-celery worker start -A dagster_celery.app -y deploy/phase2/celery.yaml
-q <host queue> -n <host>`` on each GPU host (see deploy/README.md).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping, Sequence

from dagster import (
    DagsterEvent,
    Field,
    Noneable,
    StringSource,
    executor,
    in_process_executor,
    multiple_process_executor_requirements,
    multiprocess_executor,
)

from .dagster_internals import EngineEventData, RetryMode, celery_executor_parts
from .settings import OnyxSettings, SettingsError

ONYX_QUEUE_TAG = "onyx/queue"
CELERY_QUEUE_TAG = "dagster-celery/queue"  # dagster_celery.tags.DAGSTER_CELERY_QUEUE_TAG
DEFAULT_QUEUE = "dagster"
PARTITION_TAGS = ("onyx/batch", "dagster/partition/batch", "dagster/partition")

# Celery settings the executor and every worker share (workers read them from celery.yaml).
SHARED_CELERY_SETTINGS = {
    "task_track_started": True,      # a started task records its worker's hostname
    "worker_prefetch_multiplier": 1,  # a worker takes one step at a time (GPU hosts)
    "result_extended": True,
    "broker_connection_retry_on_startup": True,
}


class WorkerLost(Exception):
    """The Celery worker that started a step stopped answering: its host or process died."""


def split_queues(value: str | Sequence[str] | None) -> list[str]:
    if value is None:
        return []
    items = value.split(",") if isinstance(value, str) else list(value)
    return [item.strip() for item in items if item and item.strip()]


def rendezvous(key: str, queues: Sequence[str]) -> str:
    """Highest-random-weight choice: stable per key, and removing a queue moves only its keys."""
    return max(queues, key=lambda queue: hashlib.sha256(f"{queue}\0{key}".encode()).digest())


def batch_of(run_tags: Mapping[str, str], run_id: str) -> str:
    for tag in PARTITION_TAGS:
        if run_tags.get(tag):
            value = run_tags[tag]
            # a batch x recipe key ("batch=k|recipe=r" or "k|r"): route by the batch part
            if "|" in value:
                parts = dict(part.split("=", 1) for part in value.split("|") if "=" in part)
                value = parts.get("batch", value.split("|")[0])
            return value
    return run_id


def route_run(run_tags: Mapping[str, str], run_id: str, queues: Sequence[str],
              live: Sequence[str] | None) -> tuple[str, str]:
    """(queue, why) for a run's steps that carry no dagster-celery/queue tag of their own."""
    if run_tags.get(ONYX_QUEUE_TAG):
        return run_tags[ONYX_QUEUE_TAG], f"run tag {ONYX_QUEUE_TAG}"
    if not queues:
        return DEFAULT_QUEUE, "no ONYX_CELERY_QUEUES: the default queue"
    batch = batch_of(run_tags, run_id)
    alive = [queue for queue in queues if live is not None and queue in live]
    if alive:
        return rendezvous(batch, alive), f"batch {batch} hashed over live queues {alive}"
    return rendezvous(batch, queues), f"batch {batch} hashed over {list(queues)} (no live worker seen)"


def live_queues(app, timeout: float = 1.0) -> set[str] | None:
    """Queues some worker consumes now (None when the broker cannot be asked)."""
    try:
        replies = app.control.inspect(timeout=timeout).active_queues() or {}
    except Exception:
        return None
    return {queue["name"] for queues in replies.values() for queue in (queues or [])}


class WatchedResult:
    """An AsyncResult whose step fails once the worker that started it stops answering pings."""

    def __init__(self, result, app, step_key: str, lost_after_s: float, ping_every_s: float):
        self._result = result
        self._app = app
        self._step_key = step_key
        self._lost_after_s = lost_after_s
        self._ping_every_s = ping_every_s
        self._last_seen = time.monotonic()
        self._last_ping = 0.0
        self._lost: str | None = None

    def _worker(self) -> str | None:
        try:
            if self._result.state != "STARTED":
                return None
            info = self._result.info
            return info.get("hostname") if isinstance(info, dict) else None
        except Exception:
            return None

    def ready(self) -> bool:
        if self._lost is not None or self._result.ready():
            return True
        worker = self._worker()
        now = time.monotonic()
        if worker is None:  # queued, not started yet: waiting for a worker is not a loss
            self._last_seen = now
            return False
        if now - self._last_ping >= self._ping_every_s:
            self._last_ping = now
            try:
                answered = bool(self._app.control.ping(destination=[worker], timeout=1.0))
            except Exception:
                answered = False
            if answered:
                self._last_seen = now
            elif now - self._last_seen >= self._lost_after_s:
                self._lost = worker
                return True
        return False

    def get(self, *args, **kwargs):
        if self._lost is not None:
            raise WorkerLost(
                f"celery worker {self._lost} stopped answering for {self._lost_after_s:.0f} s while running "
                f"step {self._step_key}: its host or process died. Resume the run (onyx resume, or "
                "re-execute from failure): it goes to a live host")
        return self._result.get(*args, **kwargs)

    def revoke(self, *args, **kwargs):
        return self._result.revoke(*args, **kwargs)


def _make_onyx_celery_executor_class():
    celery = celery_executor_parts()

    class OnyxCeleryExecutor(celery.executor_class):
        def __init__(self, *, queues, worker_lost_after_s, ping_every_s, **kwargs):
            super().__init__(**kwargs)
            self.queues = split_queues(queues)
            self.worker_lost_after_s = float(worker_lost_after_s)
            self.ping_every_s = float(ping_every_s)

        def execute(self, plan_context, execution_plan):
            run = plan_context.dagster_run
            live = live_queues(celery.make_app(self.app_args())) if self.queues else None
            queue, why = route_run(run.tags, run.run_id, self.queues, live)
            # Steps without their own dagster-celery/queue tag go to the run's queue: Dagster's loop
            # takes the app's task_default_queue for them (and says so in its "Submitting" events).
            self.config_source.task_default_queue = queue
            yield DagsterEvent.engine_event(
                plan_context, f"onyx: steps of this run go to celery queue {queue!r} ({why})",
                EngineEventData({"queue": queue, "routing": why,
                                 "live queues": ", ".join(sorted(live or [])) or "-"}))

            def submit(app, context, step, step_queue, priority, known_state):
                result = celery.submit_task(app, context, step, step_queue, priority, known_state)
                return WatchedResult(result, app, step.key, self.worker_lost_after_s, self.ping_every_s)

            yield from celery.execution_loop(plan_context, execution_plan, step_execution_fn=submit)

    return OnyxCeleryExecutor


def _config_schema():
    return {
        **celery_executor_parts().config_schema,
        "queues": Field(Noneable(StringSource), is_required=False, default_value=None,
                        description="comma-separated host queues a batch may be routed to"),
        "worker_lost_after_s": Field(float, is_required=False, default_value=60.0,
                                     description="a started step whose worker is silent this long fails"),
        "ping_every_s": Field(float, is_required=False, default_value=5.0),
    }


def _build(init_context):
    config = init_context.executor_config
    cls = _make_onyx_celery_executor_class()
    return cls(
        broker=config.get("broker"),
        backend=config.get("backend"),
        include=config.get("include"),
        config_source={**SHARED_CELERY_SETTINGS, **(config.get("config_source") or {})},
        retries=RetryMode.from_config(config["retries"]),
        queues=config.get("queues"),
        worker_lost_after_s=config.get("worker_lost_after_s", 60.0),
        ping_every_s=config.get("ping_every_s", 5.0),
    )


def onyx_celery_executor_def():
    """The executor definition (dagster_celery imported lazily: only deployments with Celery need it)."""
    return executor(name="onyx_celery", config_schema=_config_schema(),
                    requirements=multiple_process_executor_requirements())(_build)


def executor_from_settings(settings: OnyxSettings):
    """ONYX_EXECUTOR: default/in_process -> Dagster's in-process executor, multiprocess -> Dagster's
    multiprocess executor, celery -> the Celery executor.

    The broker and backend URLs reach the executor as environment references (ONYX_CELERY_BROKER,
    ONYX_CELERY_BACKEND), read by the run process, so secrets never enter the job snapshot.
    """
    if settings.executor in ("default", "in_process"):
        return in_process_executor
    if settings.executor == "multiprocess":
        return multiprocess_executor
    if not settings.celery_broker:
        raise SettingsError("ONYX_EXECUTOR=celery needs ONYX_CELERY_BROKER (e.g. redis://control:6379/0)")
    config = {
        "broker": {"env": OnyxSettings.variable("celery_broker")},
        "backend": {"env": OnyxSettings.variable("celery_backend" if settings.celery_backend else "celery_broker")},
        "worker_lost_after_s": settings.celery_worker_lost_s,
        "ping_every_s": min(5.0, max(0.5, settings.celery_worker_lost_s / 4)),
    }
    if settings.celery_queues:
        config["queues"] = {"env": OnyxSettings.variable("celery_queues")}
    return onyx_celery_executor_def().configured(config, name="onyx_celery")
