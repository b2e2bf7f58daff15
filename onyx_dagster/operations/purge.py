"""purge / purge-all: remove batches' files and their partitions, and nothing else.

Safety rules, whatever a path, a batch.json or a symlink says:
- only a folder that ``batch_paths.checked_batch_folder`` proves to be the batch's own
  (``<data root>/<valid key>``, compared as real paths, holding batch.json with that key)
  is ever removed;
- a symlink anywhere inside a batch folder that points outside the data root makes the
  purge refuse (name it; remove that link by hand); links are never followed;
- refused while a run of the batch is in progress or another onyx process holds it.

Order, so that a purge killed at any point is finished by the next one: the folder is
first renamed to ``<data root>/.purging-<key>`` (atomic: from then on no reader sees the
batch), then Dagster's records go, then the renamed folder is deleted. A later purge of
the key (or purge-all) finds whichever of the three is left and completes it.

Dagster's SQL event logs cannot wipe one partition's history, so the partitions are
marked purged (a runless observation, state.PURGE_MARK) and the dynamic partition is
deleted: the history stays readable, and a batch created again under the same key
starts from nothing.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from onyx_tools.layout import is_valid_batch_key

from ..partitions import batches
from ..recipes import RECIPES
from .batch_paths import checked_batch_folder
from .context import BATCH_ASSETS, RECIPE_ASSETS, Onyx
from .errors import OperationError
from .state import (
    LOCK_NAME,
    batch_lock,
    ensure_idle,
    latest_materialization,
    mark_purged,
    partition_for,
)

KEEP_WITH_OUTPUT = {"output", "masks", "batch.json", LOCK_NAME}
TRASH_PREFIX = ".purging-"


def _inside(path: Path, root: Path) -> bool:
    try:
        Path(path).relative_to(root)
    except ValueError:
        return False
    return True


def check_purgeable(onyx: Onyx, key: str) -> Path | None:
    """The batch folder, once proven to be the batch's own (None when it is already gone)."""
    folder = checked_batch_folder(onyx.data_root, key, must_exist=False)
    if folder is None:
        return None
    real_root = Path(os.path.realpath(onyx.data_root))
    escaping = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            if path.is_symlink():
                target = Path(os.path.realpath(path))
                if not _inside(target, real_root):
                    escaping.append(f"{path} -> {target}")
    if escaping:
        raise OperationError(
            f"refusing to purge {folder}: it holds symlinks that point outside the data root "
            f"({'; '.join(escaping[:5])}{' ...' if len(escaping) > 5 else ''}); Onyx never writes links: "
            "remove them by hand, then purge again")
    return folder


def trash_folder(onyx: Onyx, key: str) -> Path:
    return onyx.data_root / f"{TRASH_PREFIX}{key}"


def _remove_trash(onyx: Onyx, key: str) -> bool:
    """Delete what an earlier purge of ``key`` renamed away; True when there was something."""
    trash = trash_folder(onyx, key)
    if not os.path.lexists(trash):
        return False
    real = Path(os.path.realpath(trash))
    if trash.is_symlink() or not real.is_dir() or real.parent != Path(os.path.realpath(onyx.data_root)):
        raise OperationError(f"refusing to delete {trash}: Onyx only made it as a real folder in the data root; "
                             "it is something else now: remove it by hand")
    shutil.rmtree(trash)
    return True


def _wipe(onyx: Onyx, key: str, names: tuple[str, ...], reason: str) -> None:
    """Mark the batch's asset partitions purged (see state.PURGE_MARK): their past
    materialisations stay in Dagster's history but no longer count for this key."""
    instance = onyx.instance(create=False)
    if instance is None:
        return
    for name in names:
        if not onyx.has_asset(name):
            continue
        partitions = [partition_for(name, key, recipe) for recipe in RECIPES] if name in RECIPE_ASSETS else [key]
        for partition in partitions:
            if latest_materialization(instance, name, partition) is not None:
                mark_purged(instance, name, partition, reason)


def purge(onyx: Onyx, key: str, keep_output: bool = False) -> list[str]:
    """Remove the batch's files and partition (``keep_output``: keep output/, masks/, batch.json).

    Returns what was removed. The asset partitions' materialisation history is wiped too, so
    a later batch with the same key never looks already materialised.
    """
    folder = check_purgeable(onyx, key)
    instance = onyx.instance(create=False)
    registered = instance is not None and instance.has_dynamic_partition(batches.name, key)
    pending = os.path.lexists(trash_folder(onyx, key))
    if folder is None and not registered and not pending:
        raise OperationError(f"batch {key!r} does not exist under {onyx.data_root} (onyx list shows the batches)")
    ensure_idle(instance, key, onyx.note)
    removed = []
    if keep_output:
        if folder is not None:
            with batch_lock(folder, key, onyx.note):
                ensure_idle(instance, key, onyx.note)
                for entry in sorted(os.listdir(folder)):
                    if entry in KEEP_WITH_OUTPUT:
                        continue
                    path = folder / entry
                    if path.is_dir() and not path.is_symlink():
                        shutil.rmtree(path)
                    else:
                        path.unlink()
                    removed.append(str(path))
        _wipe(onyx, key, BATCH_ASSETS[1:], "onyx purge --keep-output")  # outputs stay recorded
        return removed
    if folder is not None:
        with batch_lock(folder, key, onyx.note):
            ensure_idle(instance, key, onyx.note)
            _remove_trash(onyx, key)  # left by an interrupted purge of an earlier batch of this key
            os.rename(folder, trash_folder(onyx, key))
        removed.append(str(folder))
    _wipe(onyx, key, BATCH_ASSETS + RECIPE_ASSETS, "onyx purge")
    if registered:
        instance.delete_dynamic_partition(batches.name, key)
        removed.append(f"partition {key}")
    if _remove_trash(onyx, key) and folder is None:
        removed.append(f"{trash_folder(onyx, key)} (left by an interrupted purge)")
    return removed


def purge_candidates(onyx: Onyx) -> list[str]:
    keys = set()
    if onyx.data_root.is_dir():
        for entry in os.scandir(onyx.data_root):
            name = entry.name.removeprefix(TRASH_PREFIX)
            if not is_valid_batch_key(name):
                continue
            if name != entry.name or os.path.isfile(os.path.join(entry.path, "batch.json")):
                keys.add(name)  # a batch, or what an interrupted purge left of one
    # Only batches whose folder is in this data root: an instance may be shared by several
    # data roots (DAGSTER_HOME), and a partition without a folder here may be another root's.
    return sorted(keys)


def check_purge_all(onyx: Onyx, keys: list[str]) -> None:
    """Every check of every batch first: purge-all removes all of them or none."""
    problems = []
    instance = onyx.instance(create=False)
    for key in keys:
        try:
            check_purgeable(onyx, key)
            ensure_idle(instance, key, onyx.note)
        except OperationError as error:
            problems.append(str(error))
    if problems:
        raise OperationError("purge-all refused, nothing removed:\n  " + "\n  ".join(problems))
