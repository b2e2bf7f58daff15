"""Pins each Dagster internal that ``onyx_dagster.dagster_internals`` gathers: its import and
the behaviour Onyx relies on. A Dagster upgrade that breaks one fails here, by name."""

import inspect
import os
import signal
import sys

import pytest

from components import require_module
from dagster import AssetExecutionContext, PipesSubprocessClient, asset, materialize

from onyx_dagster import dagster_internals as internals


def test_pipes_client_raises_the_execution_error_on_a_failing_process():
    """The runners catch exactly this class to show the tool's reason instead of Dagster's."""

    @asset
    def failing(context: AssetExecutionContext):
        return PipesSubprocessClient().run(
            context=context, command=[sys.executable, "-c", "import sys; sys.exit(3)"]).get_results()

    result = materialize([failing], raise_on_error=False)
    assert not result.success
    failure = result.get_step_failure_events()[0].step_failure_data.error
    chain, names = failure, []
    while chain is not None:
        names.append(chain.cls_name)
        chain = chain.cause
    assert internals.DagsterPipesExecutionError.__name__ in names


def test_captured_interrupts_are_held_then_reported():
    """The docker runner removes its container with a run's termination signal held back."""
    with internals.capture_interrupts():
        os.kill(os.getpid(), signal.SIGINT)
        held = internals.check_captured_interrupt()
    assert held is True


def test_engine_event_data_and_retry_mode_take_what_the_celery_executor_gives():
    data = internals.EngineEventData({"queue": "gpu-a", "routing": "rendezvous"})
    assert {entry for entry in data.metadata} == {"queue", "routing"}
    assert internals.RetryMode.from_config({"enabled": {}}) == internals.RetryMode.ENABLED
    assert internals.RetryMode.from_config({"disabled": {}}) == internals.RetryMode.DISABLED


def test_celery_executor_parts_have_the_shape_the_routing_executor_extends():
    require_module("dagster_celery", "dagster-celery is in the deploy extra (bootstrap installs it)")
    parts = internals.celery_executor_parts()
    assert list(inspect.signature(parts.submit_task).parameters)[:6] == \
        ["app", "plan_context", "step", "queue", "priority", "known_state"]
    assert "step_execution_fn" in inspect.signature(parts.execution_loop).parameters
    executor = parts.executor_class(retries=internals.RetryMode.DISABLED, broker="redis://localhost:1/0")
    assert callable(executor.app_args) and hasattr(executor, "config_source")
    assert {"broker", "backend", "include", "config_source", "retries"} <= set(parts.config_schema)


def test_the_backfill_loop_waits_the_interval_that_onyx_sets():
    """The daemon's backfill loop sleeps DEFAULT_DAEMON_INTERVAL_SECONDS of the controller module, read when
    the loop starts: setting it before the daemon's loops start is how dagster.yaml's interval applies."""
    from dagster._daemon import backfill, controller

    source = inspect.getsource(backfill.execute_backfill_iteration_loop)
    assert "from dagster._daemon.controller import DEFAULT_DAEMON_INTERVAL_SECONDS" in source
    assert "DEFAULT_DAEMON_INTERVAL_SECONDS - loop_duration" in source
    before = controller.DEFAULT_DAEMON_INTERVAL_SECONDS
    try:
        internals.set_backfill_loop_interval(2)
        assert controller.DEFAULT_DAEMON_INTERVAL_SECONDS == 2
    finally:
        controller.DEFAULT_DAEMON_INTERVAL_SECONDS = before


def test_a_blocked_pool_claim_waits_at_most_the_cap():
    from dagster._core.execution.plan import instance_concurrency_context as claims

    assert claims._calculate_timeout_interval(None, 40) == claims.MAX_CONCURRENCY_CLAIM_BLOCKED_INTERVAL
    before = claims.MAX_CONCURRENCY_CLAIM_BLOCKED_INTERVAL
    try:
        internals.cap_pool_claim_backoff(2.0)
        assert max(claims._calculate_timeout_interval(None, n) for n in range(60)) == 2.0
    finally:
        claims.MAX_CONCURRENCY_CLAIM_BLOCKED_INTERVAL = before
