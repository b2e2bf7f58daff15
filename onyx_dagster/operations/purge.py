"""purge / purge-all: remove batches' files and their partitions, and nothing else.

Safety rules, whatever a batch.json or a symlink says:
- only ``<data root>/<valid batch key>`` folders are ever removed; the folder must be a
  real directory (not a symlink) whose real path is inside the real data root;
- a symlink anywhere inside a batch folder that points outside the data root makes the
  purge refuse (name it; remove that link by hand); links are never followed;
- refused while a run of the batch is in progress or another onyx process holds it.

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

from ..batches import check_batch_key
from ..partitions import batches
from ..recipes import RECIPES
from .context import BATCH_ASSETS, RECIPE_ASSETS, Onyx
from .errors import OperationError
from .state import LOCK_NAME, batch_lock, ensure_idle, latest_materialization, mark_purged, partition_for

KEEP_WITH_OUTPUT = {"output", "masks", "batch.json", LOCK_NAME}


def _inside(path: Path, root: Path) -> bool:
    try:
        Path(path).relative_to(root)
    except ValueError:
        return False
    return True


def check_purgeable(onyx: Onyx, key: str) -> Path:
    """The batch folder, once proven to be a real folder inside the data root."""
    check_batch_key(key)
    real_root = Path(os.path.realpath(onyx.data_root))
    folder = onyx.data_root / key
    if not os.path.lexists(folder):
        return folder
    if folder.is_symlink():
        raise OperationError(
            f"refusing to purge {folder}: it is a symlink (to {os.readlink(folder)}), not a batch folder; "
            "purge only removes real folders inside the data root: remove the link by hand")
    if not folder.is_dir():
        raise OperationError(f"refusing to purge {folder}: not a directory")
    real = Path(os.path.realpath(folder))
    if not _inside(real, real_root) or real == real_root:
        raise OperationError(f"refusing to purge {folder}: it resolves to {real}, outside the data root {real_root}")
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
    if not os.path.lexists(folder) and not registered:
        raise OperationError(f"batch {key!r} does not exist under {onyx.data_root} (onyx list shows the batches)")
    ensure_idle(instance, key)
    removed = []
    if folder.is_dir():
        with batch_lock(folder, key):
            ensure_idle(instance, key)
            if keep_output:
                for entry in sorted(os.listdir(folder)):
                    if entry in KEEP_WITH_OUTPUT:
                        continue
                    path = folder / entry
                    if path.is_dir() and not path.is_symlink():
                        shutil.rmtree(path)
                    else:
                        path.unlink()
                    removed.append(str(path))
            else:
                shutil.rmtree(folder)
                removed.append(str(folder))
    if keep_output:
        _wipe(onyx, key, BATCH_ASSETS[1:], "onyx purge --keep-output")  # outputs stay recorded
    else:
        _wipe(onyx, key, BATCH_ASSETS + RECIPE_ASSETS, "onyx purge")
        if registered:
            instance.delete_dynamic_partition(batches.name, key)
            removed.append(f"partition {key}")
    return removed


def purge_candidates(onyx: Onyx) -> list[str]:
    keys = set()
    if onyx.data_root.is_dir():
        for entry in os.scandir(onyx.data_root):
            if is_valid_batch_key(entry.name) and os.path.isfile(os.path.join(entry.path, "batch.json")):
                keys.add(entry.name)
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
            ensure_idle(instance, key)
        except OperationError as error:
            problems.append(str(error))
    if problems:
        raise OperationError("purge-all refused, nothing removed:\n  " + "\n  ".join(problems))
