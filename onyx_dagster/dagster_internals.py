"""The parts of Dagster that Onyx uses beyond its public API, gathered in one file.

Dagster 1.13 does not export these. Each one is pinned by
``tests/platform/test_dagster_internals.py`` (its import path and the behaviour Onyx relies
on), so a Dagster upgrade that moves or changes one fails there, loudly, and this module
is the only place to mend.

- ``DagsterPipesExecutionError``: what a Pipes client raises when the external process
  fails; the runners turn it into the tool's own reason.
- ``capture_interrupts`` / ``check_captured_interrupt``: hold a run's termination signal
  while a container is removed, then honour it.
- ``EngineEventData`` and ``RetryMode``: the Celery executor's routing event and its retry
  setting.
- ``celery_executor_parts()``: Dagster-Celery's executor class, its task submission and
  its execution loop, which the batch-routing executor extends (``executors.py``).
- ``set_backfill_loop_interval(seconds)``: how often the daemon's backfill loop looks for new
  backfills. Dagster 1.13 fixes it at 30 s (``DEFAULT_DAEMON_INTERVAL_SECONDS``, read when the loop
  starts) and offers no setting; ``run_queue.OnyxRunCoordinator`` sets it from dagster.yaml.
- ``cap_pool_claim_backoff(seconds)``: the longest wait between a blocked step's tries for a pool
  slot. Dagster 1.13 grows it to 15 s, so a step waiting behind another's SfM started up to 15 s
  after the slot was free (5-11 s measured per hand-over); the code location caps it when it loads.
"""

from __future__ import annotations

from typing import NamedTuple

from dagster._core.errors import DagsterPipesExecutionError
from dagster._core.events import EngineEventData
from dagster._core.execution.retries import RetryMode
from dagster._utils.interrupts import capture_interrupts, check_captured_interrupt

__all__ = [
    "DagsterPipesExecutionError",
    "EngineEventData",
    "RetryMode",
    "capture_interrupts",
    "celery_executor_parts",
    "check_captured_interrupt",
    "cap_pool_claim_backoff",
    "set_backfill_loop_interval",
]


def cap_pool_claim_backoff(seconds: float) -> None:
    """A step blocked on a pool tries again at most ``seconds`` later (in this process's runs)."""
    from dagster._core.execution.plan import instance_concurrency_context

    instance_concurrency_context.MAX_CONCURRENCY_CLAIM_BLOCKED_INTERVAL = seconds


def set_backfill_loop_interval(seconds: float) -> None:
    """The seconds between the backfill daemon's looks for new backfills, in this process.

    Takes effect for a daemon started after the call (the loop reads the value once, when it starts).
    The same constant is the asset daemon's default interval, which dagster.yaml pins on its own
    (``auto_materialize: minimum_interval_seconds``).
    """
    from dagster._daemon import controller

    controller.DEFAULT_DAEMON_INTERVAL_SECONDS = seconds


class CeleryExecutorParts(NamedTuple):
    executor_class: type          # dagster_celery.executor.CeleryExecutor
    submit_task: object           # (app, plan_context, step, queue, priority, known_state) -> AsyncResult
    execution_loop: object        # core_celery_execution_loop(plan_context, plan, step_execution_fn=...)
    make_app: object              # make_app(app_args) -> celery.Celery
    config_schema: dict           # CELERY_CONFIG, the executor's config fields


def celery_executor_parts() -> CeleryExecutorParts:
    """Imported on demand: only deployments with the Celery executor have dagster-celery."""
    from dagster_celery.core_execution_loop import core_celery_execution_loop
    from dagster_celery.executor import CELERY_CONFIG, CeleryExecutor, _submit_task
    from dagster_celery.make_app import make_app

    return CeleryExecutorParts(CeleryExecutor, _submit_task, core_celery_execution_loop, make_app, CELERY_CONFIG)
