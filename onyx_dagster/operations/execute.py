"""Plans (which asset partitions to materialise) and their execution in this process.

A plan has at most one run for the batch's own assets (partition = batch key) and one run
per recipe (partition = batch x recipe): Dagster runs have one partition key each. The
runs use the code location's implicit asset job against the persistent instance, tagged
``onyx/batch``, ``onyx/verb``, ``onyx/pid``, ``onyx/host`` (and ``onyx/recipe``), so the
UI shows them, ``resume`` can tell a dead one from a live one, and status is read back
from the event log.
"""

from __future__ import annotations

import os
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from dagster import AssetKey, DagsterInstance
from onyx_tools.tool import parse_progress

from .context import BATCH_ASSETS, RECIPE_ASSETS, STEPS, Onyx, open_instance
from .errors import OperationError, RunFailed
from .overrides import Overrides
from .state import (
    TAG_BATCH,
    TAG_HOST,
    TAG_PID,
    TAG_RECIPE,
    TAG_VERB,
    batch_states,
    recipe_partition,
)


@dataclass
class PlannedRun:
    partition: str                 # the batch key, or "batch|recipe"
    assets: list[str]
    recipe: str | None = None
    reasons: dict[str, str] = field(default_factory=dict)


@dataclass
class Plan:
    batch: str
    runs: list[PlannedRun] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    overrides: Overrides = field(default_factory=Overrides)  # --set, per asset

    @property
    def empty(self) -> bool:
        return not any(run.assets for run in self.runs)

    def describe(self) -> list[str]:
        lines = []
        for run in self.runs:
            if not run.assets:
                continue
            where = f"recipe {run.recipe}" if run.recipe else "batch"
            steps = ", ".join(f"{name} ({run.reasons[name]})" if run.reasons.get(name) else name
                              for name in run.assets)
            lines.append(f"{where} [{run.partition}]: {steps}")
        return lines + self.notes

    def apply(self, overrides: Overrides) -> "Plan":
        """Give the runs the ``--set`` settings; each one's step must be in the plan."""
        planned = {name for run in self.runs for name in run.assets}
        missing = [name for name in overrides.by_asset if name not in planned]
        if missing:
            step = {asset: step for step, asset in STEPS.items()}
            raise OperationError(
                f"--set names {', '.join(missing)}, which this plan does not run: "
                + "; ".join(f"add --from-step {step.get(name, name.upper())} (or remove --until) to run {name} "
                            "again with it" for name in missing))
        self.overrides = overrides
        for name, items in overrides.given.items():
            self.notes.append(f"{name} with {', '.join(item.split('.', 1)[1] for item in items)} (--set)")
        return self


def _forced_assets(onyx: Onyx, from_step: str | None) -> set[str]:
    if from_step is None:
        return set()
    step = from_step.upper()
    if step not in STEPS:
        raise OperationError(f"--from-step {from_step!r} is not a step: choose one of {', '.join(STEPS)}")
    name = STEPS[step]
    if not onyx.has_asset(name):
        raise OperationError(f"--from-step {step}: this code location has no {name!r} asset yet")
    order = [n for n in BATCH_ASSETS + RECIPE_ASSETS]
    return set(order[order.index(name):])


def _allowed_assets(onyx: Onyx, until: str | None) -> set[str]:
    """Assets up to and including ``until`` (a step name); all of them when None."""
    order = [n for n in BATCH_ASSETS + RECIPE_ASSETS if onyx.has_asset(n)]
    if until is None:
        return set(order)
    step = until.upper()
    if step not in STEPS:
        raise OperationError(f"--until {until!r} is not a step: choose one of {', '.join(STEPS)}")
    name = STEPS[step]
    if not onyx.has_asset(name):
        raise OperationError(f"--until {step}: this code location has no {name!r} asset yet")
    return set(order[: order.index(name) + 1])


def _trim(plan: Plan, allowed: set[str]) -> Plan:
    for run in plan.runs:
        run.assets = [name for name in run.assets if name in allowed]
    return plan


def plan_batch(onyx: Onyx, instance: DagsterInstance, key: str, recipes: list[str], *,
               from_step: str | None = None, include_batch_assets: bool = True, until: str | None = None,
               overrides: Overrides | None = None) -> Plan:
    """What is missing, failed or stale for the batch (and ``from_step`` onwards, forced; a step
    given ``--set`` settings is forced too, so it runs with them), up to the step ``until``
    (everything when None)."""
    forced = _forced_assets(onyx, from_step)
    set_here = set(overrides.by_asset) if overrides and from_step is None else set()
    allowed = _allowed_assets(onyx, until)
    states = batch_states(onyx, instance, key, recipes)
    plan = Plan(batch=key)
    upstream_changes = False
    batch_run = PlannedRun(partition=key, assets=[])
    for name, state in states["assets"].items():
        if name in forced or name in set_here:
            batch_run.assets.append(name)
            batch_run.reasons[name] = "--set" if name in set_here else f"--from-step {from_step.upper()}"
        elif upstream_changes or not state.done:
            batch_run.assets.append(name)
            batch_run.reasons[name] = "upstream re-materialised" if state.done else state.state
        else:
            continue
        upstream_changes = True
    if batch_run.assets and not include_batch_assets:
        raise OperationError(
            f"batch {key!r} needs {', '.join(batch_run.assets)} first "
            f"({'; '.join(f'{n}: {batch_run.reasons[n]}' for n in batch_run.assets)}): run `onyx resume {key}`")
    plan.runs.append(batch_run)
    for recipe in recipes:
        run = PlannedRun(partition=str(recipe_partition(key, recipe)), assets=[], recipe=recipe)
        changed = upstream_changes
        for name, state in states["recipes"][recipe].items():
            if name in forced or name in set_here:
                run.assets.append(name)
                run.reasons[name] = "--set" if name in set_here else f"--from-step {from_step.upper()}"
            elif changed or not state.done:
                run.assets.append(name)
                run.reasons[name] = "upstream re-materialised" if state.done else state.state
            else:
                continue
            changed = True
        plan.runs.append(run)
    if not onyx.has_recipe_assets:
        plan.notes.append("this code location has no reconstruction/masks assets yet: only the batch's "
                          "own steps (video, frames, sparse_model) run")
    plan = _trim(plan, allowed)
    return plan.apply(overrides) if overrides else plan


def new_batch_plan(onyx: Onyx, key: str, recipe: str, until: str | None = None) -> Plan:
    plan = Plan(batch=key, runs=[PlannedRun(partition=key, assets=[n for n in BATCH_ASSETS if onyx.has_asset(n)])])
    recipe_assets = [n for n in RECIPE_ASSETS if onyx.has_asset(n)]
    if recipe_assets:
        plan.runs.append(PlannedRun(partition=str(recipe_partition(key, recipe)), assets=recipe_assets, recipe=recipe))
    else:
        plan.notes.append("this code location has no reconstruction/masks assets yet: only video, frames "
                          "and sparse_model run")
    return _trim(plan, _allowed_assets(onyx, until))


# -- watching a run's events ----------------------------------------------------------
@dataclass
class StepEvent:
    """What the progress display draws: one step's start, progress, end, or a note."""

    kind: str            # start | progress | success | failure | materialized | note
    step: str
    percent: float | None = None
    stage: str = ""
    detail: str = ""
    metadata: dict = field(default_factory=dict)
    timestamp: float = 0.0   # when it happened (the event log's time)


ProgressCallback = Callable[[StepEvent], None]


def translate(entry) -> StepEvent | None:
    event = entry.dagster_event
    step = entry.step_key or ""
    if event is None:
        payload = parse_progress(entry.user_message or "")
        if payload is None or not step:
            return None
        return StepEvent("progress", step, percent=payload.get("percent"), stage=str(payload.get("stage", "")),
                         detail=str(payload.get("detail", "")))
    kind = event.event_type_value
    if kind == "STEP_START":
        return StepEvent("start", step)
    if kind == "STEP_SUCCESS":
        return StepEvent("success", step, percent=100.0)
    if kind == "STEP_FAILURE":
        return StepEvent("failure", step, detail=error_reason(event))
    if kind == "ASSET_MATERIALIZATION":
        materialization = event.event_specific_data.materialization
        metadata = {k: getattr(v, "value", v) for k, v in (materialization.metadata or {}).items()}
        return StepEvent("materialized", step, metadata=metadata)
    if kind == "ASSET_CHECK_EVALUATION":
        evaluation = event.event_specific_data
        if not evaluation.passed:
            return StepEvent("note", step, detail=f"check {evaluation.check_name} did not pass "
                                                  f"({evaluation.severity.value.lower()})")
    return None


class RunWatcher(threading.Thread):
    """Polls the instance's event log for one run and feeds the progress callback."""

    def __init__(self, onyx: Onyx, run_id: str, callback: ProgressCallback, interval: float = 0.5):
        super().__init__(daemon=True, name=f"watch-{run_id[:8]}")
        self._home = onyx.home
        self._run_id = run_id
        self._callback = callback
        self._interval = interval
        self._halt = threading.Event()
        self._cursor = None

    def _poll(self, instance: DagsterInstance) -> None:
        try:
            connection = instance.get_records_for_run(self._run_id, cursor=self._cursor)
        except Exception:  # noqa: BLE001 - the run's log may not exist yet, or SQLite is busy
            return
        for record in connection.records:
            step_event = translate(record.event_log_entry)
            if step_event is not None:
                step_event.timestamp = record.event_log_entry.timestamp
                try:
                    self._callback(step_event)
                except Exception:  # noqa: BLE001 - drawing must never break a run
                    pass
        self._cursor = connection.cursor

    def run(self) -> None:
        instance = open_instance(self._home)
        try:
            while not self._halt.is_set():
                self._poll(instance)
                self._halt.wait(self._interval)
            self._poll(instance)
        finally:
            instance.dispose()

    def finish(self) -> None:
        self._halt.set()
        self.join(timeout=10)


def run_tags(key: str, verb: str, recipe: str | None = None) -> dict[str, str]:
    tags = {TAG_BATCH: key, TAG_VERB: verb, TAG_PID: str(os.getpid()), TAG_HOST: socket.gethostname()}
    if recipe:
        tags[TAG_RECIPE] = recipe
    return tags


@dataclass
class RunOutcome:
    run_id: str
    partition: str
    assets: list[str]
    success: bool
    seconds: float


# A setting a tool's message advises, as --set spells it (frames.interval, sparse_model.mapper=global).
ADVISED_SETTING = re.compile(r"\b(?:frames|sparse_model|reconstruction|masks|viewer)\.[a-z_]+")


def _run_config(verbose: bool) -> dict:
    # Without -v the person sees the progress lines and the step's own reason; Dagster's log lines (with
    # its tracebacks) stay in the event log, which the UI shows.
    return {"loggers": {"console": {"config": {"log_level": "DEBUG" if verbose else "CRITICAL"}}}}


def execute_plan(onyx: Onyx, plan: Plan, *, verb: str, progress: ProgressCallback | None = None,
                 on_run_start: Callable[[PlannedRun, str], None] | None = None,
                 verbose: bool = False) -> list[RunOutcome]:
    """Materialise the plan's runs in order; stops at the first failed run (raises RunFailed)."""
    instance = onyx.instance()
    outcomes = []
    for planned in plan.runs:
        if not planned.assets:
            continue
        run_id = str(uuid.uuid4())
        if on_run_start is not None:
            on_run_start(planned, run_id)
        watcher = RunWatcher(onyx, run_id, progress) if progress is not None else None
        if watcher is not None:
            watcher.start()
        started = time.monotonic()
        try:
            result = onyx.job.execute_in_process(
                instance=instance,
                partition_key=planned.partition,
                asset_selection=[AssetKey(name) for name in planned.assets],
                run_id=run_id,
                tags=run_tags(plan.batch, verb, planned.recipe),
                run_config={**_run_config(verbose), **plan.overrides.op_config(planned.assets)},
                raise_on_error=False,
            )
        finally:
            if watcher is not None:
                watcher.finish()
        outcome = RunOutcome(run_id, planned.partition, planned.assets, result.success, time.monotonic() - started)
        outcomes.append(outcome)
        if not result.success:
            failures = [event for event in result.all_events if event.event_type_value == "STEP_FAILURE"]
            detail = "; ".join(
                f"{event.step_key}: {error_reason(event)}" for event in failures) or "the run failed"
            advice = f"`onyx resume {plan.batch}`"
            if ADVISED_SETTING.search(detail):
                advice += " with the setting named above as `--set STEP.SETTING=VALUE`"
            raise RunFailed(
                f"run {run_id} for {planned.partition} failed: {detail}. Logs: "
                f"{onyx.layout(plan.batch).logs}/; fix the cause, then {advice}")
    return outcomes


def error_reason(event) -> str:
    """The step's own reason, as a person is shown it (progress lines, the failed run's message):
    a tool's ``Failure`` description alone, else the causes that are not Dagster's own wrappers
    ("Error occurred while executing op ..."), without Python class paths (never
    ``dagster._core...Failure <- DagsterPipesExecutionError``)."""
    error = getattr(event.event_specific_data, "error", None)
    own, wrappers = [], []
    while error is not None:
        first = (error.message or "").strip().splitlines()
        if first:
            text = re.sub(r"^[\w.]+(Error|Exception|Failure|Interrupt): ", "", first[0])
            if error.cls_name == "Failure":
                return text
            (wrappers if (error.cls_name or "").startswith("Dagster") else own).append(text)
        error = error.cause
    return " <- ".join(dict.fromkeys(own or wrappers)) or "failed"
