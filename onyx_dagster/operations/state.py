"""What Dagster knows about a batch: every answer here comes from the instance's event
log and run storage, never from a file in the batch folder.

- an asset partition is ``materialized``, ``stale`` (its code version changed, or an
  upstream partition was materialised again with another data version since), ``failed``
  (the last attempt failed), ``in_progress`` or ``missing``;
- a run of a batch is one tagged ``onyx/batch=KEY`` (the onyx command) or partitioned by
  it (``dagster/partition`` / ``dagster/partition/batch``, e.g. launched from the UI);
- a run the onyx command started records ``onyx/pid`` and ``onyx/host``: when that process
  is gone the run cannot be in progress, and is reported failed (``report_run_failed``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import os
import socket
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from dagster import AssetKey, DagsterInstance, DagsterRunStatus, MultiPartitionKey, RunsFilter
from dagster._core.event_api import AssetRecordsFilter
from dagster._core.storage.dagster_run import IN_PROGRESS_RUN_STATUSES

from ..partitions import batch_recipes, batches
from ..recipes import RECIPES
from .context import BATCH_ASSETS, RECIPE_ASSETS, Onyx
from .errors import BatchBusy

TAG_BATCH = "onyx/batch"
TAG_RECIPE = "onyx/recipe"
TAG_VERB = "onyx/verb"
TAG_PID = "onyx/pid"
TAG_HOST = "onyx/host"
DATA_VERSION_TAG = "dagster/data_version"
CODE_VERSION_TAG = "dagster/code_version"
INPUT_POINTER_PREFIX = "dagster/input_event_pointer/"
LOCK_NAME = ".lock"


def recipe_partition(key: str, recipe: str) -> MultiPartitionKey:
    return MultiPartitionKey({"batch": key, "recipe": recipe})


def partition_for(name: str, key: str, recipe: str | None) -> str:
    if name in RECIPE_ASSETS:
        assert recipe is not None
        return str(recipe_partition(key, recipe))
    return key


def _iso(timestamp: float | None) -> str | None:
    if not timestamp:
        return None
    return dt.datetime.fromtimestamp(timestamp, tz=dt.timezone.utc).isoformat(timespec="seconds")


@dataclass
class PartitionState:
    asset: str
    partition: str
    state: str                    # materialized | stale | failed | in_progress | missing
    reason: str = ""
    run_id: str | None = None     # of the last materialisation ("" when imported / runless)
    time: str | None = None
    data_version: str | None = None
    code_version: str | None = None
    storage_id: int | None = None
    imported_from: str | None = None

    @property
    def done(self) -> bool:
        return self.state == "materialized"

    def as_dict(self) -> dict:
        data = asdict(self)
        data.pop("storage_id")
        return data


# -- materialisations ----------------------------------------------------------------
# Dagster's SQL event logs cannot wipe single partitions, so ``purge`` records a runless
# observation carrying this marker; materialisations before it no longer count (a batch
# created again under the same key starts from nothing).
PURGE_MARK = "onyx_purged"


def purge_mark(instance: DagsterInstance, name: str, partition: str) -> int:
    """Storage id of the partition's latest purge marker (0 when never purged)."""
    result = instance.fetch_observations(
        AssetRecordsFilter(asset_key=AssetKey(name), asset_partitions=[partition]), limit=100)
    for record in result.records:
        if PURGE_MARK in (record.asset_observation.metadata or {}):
            return record.storage_id
    return 0


def mark_purged(instance: DagsterInstance, name: str, partition: str, reason: str) -> None:
    from dagster import AssetObservation

    instance.report_runless_asset_event(AssetObservation(
        asset_key=AssetKey(name), partition=partition, metadata={PURGE_MARK: True, "reason": reason}))


def latest_materialization(instance: DagsterInstance, name: str, partition: str):
    result = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=AssetKey(name), asset_partitions=[partition]), limit=1)
    if not result.records:
        return None
    record = result.records[0]
    return record if record.storage_id > purge_mark(instance, name, partition) else None


def count_materializations(instance: DagsterInstance, name: str, partition: str) -> int:
    """Materialisations of the partition since it was last purged."""
    after = purge_mark(instance, name, partition)
    total, cursor = 0, None
    while True:
        result = instance.fetch_materializations(
            AssetRecordsFilter(asset_key=AssetKey(name), asset_partitions=[partition], after_storage_id=after or None),
            limit=1000, cursor=cursor)
        total += len(result.records)
        if not result.has_more:
            return total
        cursor = result.cursor


def _materialization_by_id(instance: DagsterInstance, name: str, storage_id: int):
    result = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=AssetKey(name), storage_ids=[storage_id]), limit=1)
    return result.records[0] if result.records else None


def _status(instance: DagsterInstance, name: str, partition: str) -> str | None:
    partitions_def = batch_recipes if name in RECIPE_ASSETS else batches
    try:
        statuses = instance.get_status_by_partition(AssetKey(name), [partition], partitions_def) or {}
    except Exception:  # noqa: BLE001 - a missing partition in a fresh instance reads as "missing"
        return None
    status = statuses.get(partition)
    return status.value.lower() if status is not None else None


def partition_state(onyx: Onyx, instance: DagsterInstance, name: str, key: str,
                    recipe: str | None = None) -> PartitionState:
    partition = partition_for(name, key, recipe)
    record = latest_materialization(instance, name, partition)
    status = _status(instance, name, partition)
    if record is None:
        if status == "in_progress":
            return PartitionState(name, partition, "in_progress", "a run is materialising it")
        if status == "failed":
            return PartitionState(name, partition, "failed", "its last run failed")
        return PartitionState(name, partition, "missing", "never materialised")
    event = record.asset_materialization
    tags = event.tags or {}
    metadata = event.metadata or {}
    imported = metadata.get("imported_from")
    state = PartitionState(
        name, partition, "materialized",
        run_id=record.run_id, time=_iso(record.timestamp),
        data_version=tags.get(DATA_VERSION_TAG), code_version=tags.get(CODE_VERSION_TAG),
        storage_id=record.storage_id,
        imported_from=getattr(imported, "value", imported) if imported is not None else None,
    )
    if status in ("in_progress", "failed"):
        state.state = status
        state.reason = "a run is materialising it again" if status == "in_progress" else "its last run failed"
        return state
    current = onyx.code_version(name)
    if current is not None and state.code_version is not None and current != state.code_version:
        state.state, state.reason = "stale", f"code version {state.code_version} -> {current}"
        return state
    for parent in onyx.parents(name):
        parent_partition = partition_for(parent, key, recipe)
        upstream = latest_materialization(instance, parent, parent_partition)
        if upstream is None:
            continue
        pointer = tags.get(INPUT_POINTER_PREFIX + parent)
        if pointer is None:  # imported or runless: compare the order of events
            if upstream.storage_id > record.storage_id:
                state.state, state.reason = "stale", f"{parent} was materialised again since"
                return state
            continue
        if int(pointer) == upstream.storage_id:
            continue
        used = _materialization_by_id(instance, parent, int(pointer))
        used_version = (used.asset_materialization.tags or {}).get(DATA_VERSION_TAG) if used else None
        latest_version = (upstream.asset_materialization.tags or {}).get(DATA_VERSION_TAG)
        if used_version is None or used_version != latest_version:
            state.state, state.reason = "stale", f"{parent} has new data since"
            return state
    return state


def known_recipes(onyx: Onyx, instance: DagsterInstance, key: str, first: str | None) -> list[str]:
    """The batch's first recipe, then every recipe Dagster has seen for it (forks)."""
    found = [first] if first else []
    if not onyx.has_recipe_assets:
        return found
    for recipe in RECIPES:
        if recipe in found:
            continue
        for name in RECIPE_ASSETS:
            if not onyx.has_asset(name):
                continue
            partition = partition_for(name, key, recipe)
            if _status(instance, name, partition) or latest_materialization(instance, name, partition):
                found.append(recipe)
                break
    return found


def batch_states(onyx: Onyx, instance: DagsterInstance, key: str, recipes: list[str]) -> dict:
    """{"assets": {name: PartitionState}, "recipes": {recipe: {name: PartitionState}}}."""
    assets = {name: partition_state(onyx, instance, name, key) for name in BATCH_ASSETS if onyx.has_asset(name)}
    per_recipe = {
        recipe: {name: partition_state(onyx, instance, name, key, recipe)
                 for name in RECIPE_ASSETS if onyx.has_asset(name)}
        for recipe in recipes
    }
    return {"assets": assets, "recipes": per_recipe}


# -- runs ------------------------------------------------------------------------------
def _batch_run_filters(key: str) -> list[dict]:
    return [{TAG_BATCH: key}, {"dagster/partition": key}, {"dagster/partition/batch": key}]


def batch_runs(instance: DagsterInstance, key: str, statuses=None, limit: int | None = None) -> list:
    seen: dict[str, object] = {}
    for tags in _batch_run_filters(key):
        for record in instance.get_run_records(RunsFilter(tags=tags, statuses=statuses), limit=limit):
            seen.setdefault(record.dagster_run.run_id, record)
    records = sorted(seen.values(), key=lambda r: r.create_timestamp, reverse=True)
    return records[:limit] if limit else records


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def run_process_dead(run) -> bool:
    """True when the run was started by an onyx process on this host that no longer exists."""
    tags = run.tags
    if tags.get(TAG_HOST) != socket.gethostname() or not tags.get(TAG_PID, "").isdigit():
        return False
    pid = int(tags[TAG_PID])
    return pid != os.getpid() and not _pid_alive(pid)


def reap_dead_runs(instance: DagsterInstance, key: str) -> list[str]:
    """Mark failed the in-progress runs of the batch whose onyx process died (kill -9, crash)."""
    reaped = []
    for record in batch_runs(instance, key, statuses=list(IN_PROGRESS_RUN_STATUSES)):
        run = record.dagster_run
        if run_process_dead(run):
            instance.report_run_failed(
                run, f"the onyx process (pid {run.tags[TAG_PID]} on {run.tags[TAG_HOST]}) that ran it "
                     "is gone (killed or crashed); marked failed so the batch can be resumed")
            storage = instance.event_log_storage
            if storage.supports_global_concurrency_limits:
                storage.free_concurrency_slots_for_run(run.run_id)  # its gpu pool slot, held forever otherwise
            reaped.append(run.run_id)
    return reaped


def in_progress_runs(instance: DagsterInstance, key: str) -> list:
    return [record.dagster_run for record in batch_runs(instance, key, statuses=list(IN_PROGRESS_RUN_STATUSES))]


def describe_run(run) -> str:
    tags = run.tags
    who = (f"onyx {tags.get(TAG_VERB, 'run')}, pid {tags[TAG_PID]} on {tags.get(TAG_HOST, '?')}"
           if TAG_PID in tags else "launched from Dagster (UI, sensor or backfill)")
    return f"run {run.run_id} ({run.status.value.lower()}, {who})"


def ensure_idle(instance: DagsterInstance | None, key: str) -> list[str]:
    """Refuse when a run of the batch is in progress; returns the dead runs it reaped."""
    if instance is None:
        return []
    reaped = reap_dead_runs(instance, key)
    active = in_progress_runs(instance, key)
    if active:
        runs = "; ".join(describe_run(run) for run in active)
        raise BatchBusy(
            f"batch {key!r} has a run in progress: {runs}. Wait for it to finish (onyx list shows it), "
            "or cancel it in the Dagster UI, then try again")
    return reaped


def last_run(instance: DagsterInstance, key: str) -> dict | None:
    records = batch_runs(instance, key, limit=1)
    if not records:
        return None
    record = records[0]
    run = record.dagster_run
    return {
        "run_id": run.run_id,
        "status": run.status.value.lower(),
        "verb": run.tags.get(TAG_VERB),
        "recipe": run.tags.get(TAG_RECIPE) or run.tags.get("dagster/partition/recipe"),
        "time": _iso(record.create_timestamp.timestamp()),
    }


# -- the batch lock --------------------------------------------------------------------
@contextlib.contextmanager
def batch_lock(folder: Path, key: str) -> Iterator[None]:
    """An OS lock on ``<batch>/.lock`` for as long as this process writes the batch folder.

    Held by ``run``/``resume``/``fork``/``export``/``purge``; a second onyx process on the
    same batch is refused instead of writing the folder at the same time.
    """
    path = Path(folder) / LOCK_NAME
    handle = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - held across the yield
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise BatchBusy(
                f"batch {key!r} is in use by another onyx process ({holder}): wait for it to finish, "
                "then try again") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        handle.flush()
        yield
    finally:
        handle.close()


def run_status_ok(status: DagsterRunStatus) -> bool:
    return status == DagsterRunStatus.SUCCESS
