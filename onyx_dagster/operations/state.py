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
import stat
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from dagster import (
    AssetKey,
    AssetRecordsFilter,
    DagsterInstance,
    DagsterRunStatus,
    MultiPartitionKey,
    RunsFilter,
)

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
# A run in one of these has not ended (Dagster's own list, spelled with the public enum).
IN_PROGRESS_RUN_STATUSES = (DagsterRunStatus.NOT_STARTED, DagsterRunStatus.QUEUED, DagsterRunStatus.STARTING,
                            DagsterRunStatus.STARTED, DagsterRunStatus.CANCELING)


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
        if used is not None and used.asset_materialization.partition != parent_partition:
            # For a dependency that is not an input, Dagster 1.13 points at the parent's latest
            # event of any partition (after a fork: another recipe's reconstruction). Then only
            # the order of this partition's own events tells whether the parent changed since.
            if upstream.storage_id > record.storage_id:
                state.state, state.reason = "stale", f"{parent} was materialised again since"
                return state
            continue
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


def _report_dead(instance: DagsterInstance, run) -> str:
    """Record in the instance that the run's onyx process is gone, so the UI, ``list`` and the
    run queue agree; frees the run's pool slots, which would be held forever otherwise."""
    tags = run.tags
    reason = (f"the onyx process (pid {tags[TAG_PID]} on {tags[TAG_HOST]}) that ran it is gone "
              "(killed or crashed); marked failed so the batch can be resumed")
    instance.report_run_failed(run, reason)
    storage = instance.event_log_storage
    if storage.supports_global_concurrency_limits:
        storage.free_concurrency_slots_for_run(run.run_id)
    return f"run {run.run_id} marked failed: {reason}"


def reap_dead_runs(instance: DagsterInstance, key: str, note: Callable[[str], None] | None = None) -> list[str]:
    """Mark failed the in-progress runs of the batch whose onyx process died (kill -9, crash)."""
    reaped = []
    for record in batch_runs(instance, key, statuses=list(IN_PROGRESS_RUN_STATUSES)):
        run = record.dagster_run
        if run_process_dead(run):
            said = _report_dead(instance, run)
            if note is not None:
                note(f"batch {key}: {said}")
            reaped.append(run.run_id)
    return reaped


def reap_all_dead_runs(instance: DagsterInstance) -> list[str]:
    """Every in-progress run started by an onyx process on this host that is gone, marked failed
    (what the ``dead_onyx_runs`` sensor does each tick where a daemon runs)."""
    filters = RunsFilter(tags={TAG_HOST: socket.gethostname()}, statuses=list(IN_PROGRESS_RUN_STATUSES))
    return [_report_dead(instance, record.dagster_run) for record in instance.get_run_records(filters)
            if run_process_dead(record.dagster_run)]


def in_progress_runs(instance: DagsterInstance, key: str) -> list:
    return [record.dagster_run for record in batch_runs(instance, key, statuses=list(IN_PROGRESS_RUN_STATUSES))]


def describe_run(run) -> str:
    tags = run.tags
    who = (f"onyx {tags.get(TAG_VERB, 'run')}, pid {tags[TAG_PID]} on {tags.get(TAG_HOST, '?')}"
           if TAG_PID in tags else "launched from Dagster (UI, sensor or backfill)")
    return f"run {run.run_id} ({run.status.value.lower()}, {who})"


def ensure_idle(instance: DagsterInstance | None, key: str, note: Callable[[str], None] | None = None) -> list[str]:
    """Refuse when a run of the batch is in progress; returns the dead runs it reaped."""
    if instance is None:
        return []
    reaped = reap_dead_runs(instance, key, note)
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
def _holder(text: str) -> tuple[int, str] | None:
    """(pid, host) from a lock file's ``pid N on HOST`` line."""
    parts = text.split()
    if len(parts) == 4 and parts[0] == "pid" and parts[1].isdigit() and parts[2] == "on":
        return int(parts[1]), parts[3]
    return None


LOCK_LINE_MAX = 200  # a "pid N on HOST" line; more is not a lock this code wrote


def _open_lock(path: Path, key: str, flags: int):
    """The lock file, never through a symlink (a link planted there would have the holder's line
    written into whatever it points at); a file object, or None when ``flags`` cannot create it."""
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    except FileNotFoundError:
        return None
    except OSError as error:
        raise BatchBusy(f"batch {key!r}: its lock file {path} cannot be used ({error.strerror}; a symlink or a "
                        "folder is refused): remove it, then try again") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise BatchBusy(f"batch {key!r}: its lock file {path} is not a regular file: remove it, then try again")
    return os.fdopen(fd, "r" if flags & os.O_ACCMODE == os.O_RDONLY else "r+", encoding="utf-8", errors="replace")


def lock_holder(folder: Path, key: str = "") -> str | None:
    """Who holds ``<batch>/.lock`` now (its ``pid N on HOST`` line), or None when nobody does.
    Reads only: a lock file left by a dead process is free, and is left for the next holder."""
    try:
        handle = _open_lock(Path(folder) / LOCK_NAME, key or Path(folder).name, os.O_RDONLY)
    except NotADirectoryError:
        return None
    if handle is None:
        return None
    with handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return next(iter(handle.read(LOCK_LINE_MAX).strip().splitlines()), "another process")
        return None


def batch_busy(key: str, holder: str) -> BatchBusy:
    return BatchBusy(f"batch {key!r} is in use by another onyx process ({holder}): wait for it to finish, "
                     "then try again")


@contextlib.contextmanager
def batch_lock(folder: Path, key: str, note: Callable[[str], None] | None = None) -> Iterator[None]:
    """An OS lock on ``<batch>/.lock`` for as long as this process writes the batch folder.

    Held by ``run``/``resume``/``fork``/``export``/``purge``; a second onyx process on the
    same batch is refused instead of writing the folder at the same time. The OS drops the
    lock of a process that dies, so a file left by one (kill -9) is taken over, with a note
    naming it; the holder removes the file when it is done.
    """
    path = Path(folder) / LOCK_NAME
    for _ in range(20):
        handle = _open_lock(path, key, os.O_RDWR | os.O_CREAT)  # held across the yield
        if handle is None:
            raise BatchBusy(f"batch {key!r}: its folder {folder} is gone: `onyx list` shows the batches")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = next(iter(handle.read(LOCK_LINE_MAX).strip().splitlines()), "another process")
            handle.close()
            raise batch_busy(key, holder) from None
        try:
            same_file = os.stat(path).st_ino == os.fstat(handle.fileno()).st_ino
        except FileNotFoundError:
            same_file = False
        if same_file:
            break
        handle.close()  # the previous holder removed the file between our open and our lock
    else:
        raise BatchBusy(f"batch {key!r}: its lock file {path} keeps changing hands: try again")
    try:
        handle.seek(0)
        left = next(iter(handle.read(LOCK_LINE_MAX).strip().splitlines()), "")
        if left and note is not None:
            holder = _holder(left)
            gone = (holder is not None and holder[1] == socket.gethostname() and not _pid_alive(holder[0]))
            note(f"batch {key}: took over the lock left by {left}"
                 + (" (that process is gone)" if gone else " (it no longer holds it)"))
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        handle.flush()
        yield
    finally:
        with contextlib.suppress(OSError):
            path.unlink()  # while still locked: a waiter that opened it retries on the new file
        handle.close()


def run_status_ok(status: DagsterRunStatus) -> bool:
    return status == DagsterRunStatus.SUCCESS
