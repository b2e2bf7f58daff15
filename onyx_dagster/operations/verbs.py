"""The batch verbs as plain functions over an ``Onyx`` (data root + Dagster instance).

The command line (``onyx_dagster.cli``) is argument parsing and drawing on top of these;
tests and a sensor can call them directly. Each verb validates everything before it
writes anything, and refuses with an ``OperationError`` (exit code 2) naming the fix.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from dagster import DagsterInstance

from onyx_tools.errors import ToolError
from onyx_tools.layout import is_valid_batch_key
from onyx_tools.manifest import file_sha256
from onyx_tools.video import probe_video

from ..batches import BatchError, BatchSettings, add_batch, check_batch_key, parse_settings, read_settings, validate_new_batch
from ..partitions import batches
from ..recipes import UnknownRecipeError, get_recipe, recipe_name
from .context import Onyx
from .errors import OperationError
from .execute import Plan, execute_plan, new_batch_plan, plan_batch
from .state import LOCK_NAME, batch_lock, batch_states, ensure_idle, known_recipes, last_run


def boundary(call, *args, **kwargs):
    """Run a validation from batches.py, turning its errors into OperationError."""
    try:
        return call(*args, **kwargs)
    except (BatchError, ToolError, UnknownRecipeError) as error:
        raise OperationError(str(error)) from None


def default_batch_key(video: Path) -> str:
    """The drop-folder sensor's rule: ``<slug of the video's name>-<first 8 hex of its sha256>``.
    The same video content gets the same key, so running it twice is caught."""
    from ..defs.drop_folder import batch_key_for

    return batch_key_for(Path(video), file_sha256(video))


def key_exists(onyx: Onyx, key: str) -> bool:
    instance = onyx.instance(create=False)
    registered = instance is not None and instance.has_dynamic_partition(batches.name, key)
    return registered or os.path.lexists(onyx.layout(key).root)


@dataclass
class NewBatch:
    key: str
    settings: BatchSettings
    plan: Plan
    video_info: object


def prepare_run(onyx: Onyx, raw_settings: dict, key: str | None, until: str | None = None) -> NewBatch:
    """Every check of ``onyx run``; writes nothing."""
    settings = boundary(parse_settings, raw_settings)
    boundary(get_recipe, settings.recipe)
    automatic = key is None
    if automatic:
        boundary(probe_video, settings.input)  # a clear message before hashing a missing file
        key = default_batch_key(settings.input)
    boundary(check_batch_key, key)
    if key_exists(onyx, key):
        # A run of it in progress is the clearer message (two `onyx run --batch K` at once).
        ensure_idle_readonly(onyx, key)
        if automatic:
            raise OperationError(
                f"this video is already batch {key!r} (same name and content): `onyx resume {key}` to finish it, "
                f"`onyx fork {key} --mode M --quality Q` for another recipe, or --batch NEWKEY for a separate batch")
    info = boundary(validate_new_batch, onyx.reader_instance(), onyx.data_root, key, settings)
    return NewBatch(key=key, settings=settings, plan=new_batch_plan(onyx, key, settings.recipe, until), video_info=info)


def ensure_idle_readonly(onyx: Onyx, key: str) -> None:
    instance = onyx.instance(create=False)
    if instance is not None:
        ensure_idle(instance, key)
    folder = onyx.layout(key).root
    if (folder / LOCK_NAME).is_file() and not folder.is_symlink():
        with batch_lock(folder, key):
            pass


def create_batch(onyx: Onyx, prepared: NewBatch):
    """batch.json once and the partition (batches.add_batch); no run."""
    instance = onyx.instance()
    try:
        return boundary(add_batch, instance, onyx.data_root, prepared.key, prepared.settings)
    except FileExistsError:
        raise OperationError(
            f"batch {prepared.key!r} was created by another onyx process a moment ago: "
            f"choose another --batch, or wait and `onyx resume {prepared.key}`") from None


def run_new(onyx: Onyx, prepared: NewBatch, **execute_kwargs):
    """Create the batch (batch.json once, the partition) and materialise its first recipe."""
    layout = create_batch(onyx, prepared)
    with batch_lock(layout.root, prepared.key):
        return execute_plan(onyx, prepared.plan, verb="run", **execute_kwargs)


def load_batch(onyx: Onyx, key: str) -> BatchSettings:
    boundary(check_batch_key, key)
    layout = onyx.layout(key)
    instance = onyx.instance(create=False)
    registered = instance is not None and instance.has_dynamic_partition(batches.name, key)
    if not layout.root.is_dir():
        where = "registered in Dagster but its folder is gone" if registered else "does not exist"
        raise OperationError(
            f"batch {key!r} {where} under {onyx.data_root}: check the key and --data-root/ONYX_DATA "
            "(onyx list shows the batches)")
    if not registered:
        raise OperationError(
            f"batch folder {layout.root} is not a batch of the Dagster instance at {onyx.home}: "
            "set DAGSTER_HOME to the instance that ran it, or `onyx import-batch` an export of it")
    return boundary(read_settings, layout)


def plan_resume(onyx: Onyx, key: str, from_step: str | None = None, until: str | None = None) -> Plan:
    settings = load_batch(onyx, key)
    instance = onyx.instance()
    ensure_idle(instance, key)
    recipes = known_recipes(onyx, instance, key, settings.recipe) if onyx.has_recipe_assets else []
    return plan_batch(onyx, instance, key, recipes, from_step=from_step, until=until)


def execute_locked(onyx: Onyx, key: str, plan: Plan, verb: str, **execute_kwargs):
    with batch_lock(onyx.layout(key).root, key):
        ensure_idle(onyx.instance(), key)  # again, under the lock
        return execute_plan(onyx, plan, verb=verb, **execute_kwargs)


def plan_fork(onyx: Onyx, key: str, mode: str, quality: str) -> Plan:
    settings = load_batch(onyx, key)
    recipe = recipe_name(mode, quality)
    errors = []
    if mode not in ("gaussian", "photogrammetry"):
        errors.append(f"mode: got {mode!r}, expected 'gaussian' or 'photogrammetry'")
    if quality not in ("proto", "production"):
        errors.append(f"quality: got {quality!r}, expected 'proto' or 'production'")
    if errors:
        raise OperationError("invalid fork settings:\n  " + "\n  ".join(errors))
    boundary(get_recipe, recipe)
    if not onyx.has_recipe_assets:
        raise OperationError("this code location has no reconstruction asset yet: fork needs it")
    instance = onyx.instance()
    ensure_idle(instance, key)
    plan = plan_batch(onyx, instance, key, [recipe], include_batch_assets=False)
    if plan.empty:
        states = batch_states(onyx, instance, key, [recipe])["recipes"][recipe]
        done = next(iter(states.values()))
        current = " (its first recipe)" if recipe == settings.recipe else ""
        raise OperationError(
            f"batch {key!r} already has recipe {recipe}{current} complete (materialised {done.time}, "
            f"run {done.run_id or 'imported'}): choose another --mode/--quality, or "
            f"`onyx resume {key} --from-step RECONSTRUCTION` to redo it")
    return plan


# -- list ----------------------------------------------------------------------------
def folder_size(folder: Path) -> int:
    total = 0
    for root, dirs, files in os.walk(folder, followlinks=False):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


def list_batches(onyx: Onyx) -> list[dict]:
    """Every batch of this data root: its settings, each asset's state per recipe, last run, size."""
    instance = onyx.instance(create=False)
    registered = set(instance.get_dynamic_partitions(batches.name)) if instance is not None else set()
    on_disk = set()
    if onyx.data_root.is_dir():
        for entry in os.scandir(onyx.data_root):
            if is_valid_batch_key(entry.name) and entry.is_dir(follow_symlinks=False) and \
                    os.path.isfile(os.path.join(entry.path, "batch.json")):
                on_disk.add(entry.name)
    keys = sorted(on_disk | (registered))
    rows = []
    for key in keys:
        layout = onyx.layout(key)
        row: dict = {"batch": key, "folder": str(layout.root), "registered": key in registered,
                     "on_disk": key in on_disk}
        settings = None
        if key in on_disk:
            try:
                settings = read_settings(layout)
                row["settings"] = {**settings.model_dump(mode="json"), "recipe": settings.recipe}
            except (BatchError, ValueError) as error:
                row["settings_error"] = str(error)
        reader = instance or DagsterInstance.ephemeral()
        recipes = known_recipes(onyx, reader, key, settings.recipe if settings else None)
        states = batch_states(onyx, reader, key, recipes)
        row["assets"] = {name: state.as_dict() for name, state in states["assets"].items()}
        row["recipes"] = {recipe: {name: state.as_dict() for name, state in assets.items()}
                          for recipe, assets in states["recipes"].items()}
        row["last_run"] = last_run(instance, key) if instance is not None else None
        row["size_bytes"] = folder_size(layout.root) if key in on_disk else 0
        rows.append(row)
    return rows
