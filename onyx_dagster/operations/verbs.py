"""The batch verbs as plain functions over an ``Onyx`` (data root + Dagster instance).

The command line (``onyx_dagster.cli``) is argument parsing and drawing on top of these;
tests and a sensor can call them directly. Each verb validates everything before it
writes anything, and refuses with an ``OperationError`` (exit code 2) naming the fix.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from dagster import DagsterInstance
from onyx_tools.errors import ToolError
from onyx_tools.layout import is_valid_batch_key
from onyx_tools.manifest import file_sha256
from onyx_tools.video import probe_video

from ..batches import (
    BatchError,
    BatchSettings,
    add_batch,
    check_batch_key,
    parse_settings,
    read_settings,
    validate_new_batch,
)
from ..partitions import batches
from ..recipes import UnknownRecipeError, get_recipe, recipe_name
from .batch_paths import checked_batch_folder
from . import overrides
from .context import RECIPE_ASSETS, Onyx
from .errors import OperationError
from .execute import Plan, execute_plan, new_batch_plan, plan_batch
from .state import (
    batch_busy,
    batch_lock,
    batch_states,
    ensure_idle,
    known_recipes,
    last_run,
    lock_holder,
    reap_dead_runs,
)


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


def check_prerequisites(onyx: Onyx, plan: Plan, settings: BatchSettings, masks: bool | None = None) -> Plan:
    """Preflight of a plan, before anything is written: without masks where the user said so
    (``--masks off``, ONYX_MASKS=off; the plan says it), then every prerequisite of its steps
    (``onyx_dagster.preflight``). A missing one refuses the verb with the fix (exit 2)."""
    from ..preflight import check_run, describe, shape_for_batch
    from ..settings import OnyxSettings

    onyx_settings = OnyxSettings.from_env()
    if masks is None:
        masks = onyx_settings.masks
    if not masks:
        dropped = False
        for run in plan.runs:
            if "masks" in run.assets:
                run.assets.remove("masks")
                dropped = True
        if dropped:
            plan.notes.append(f"masks: off (--masks off or ONYX_MASKS=off): the sky and passers-by stay in the "
                              f"scene; `onyx resume {plan.batch}` adds the masks later")
    steps = [name for run in plan.runs for name in run.assets]
    recipes = [run.recipe for run in plan.runs if run.recipe and "reconstruction" in run.assets]
    frames_config = plan.overrides.by_asset.get("frames")
    masks_config = plan.overrides.by_asset.get("masks") or {}
    shape = shape_for_batch(steps, onyx.data_root, settings, recipes, frames_config=frames_config,
                            masks_model_dir=masks_config.get("model_dir"))
    problems = check_run(shape, runner=onyx.defs.resources.get("runner"), settings=onyx_settings)
    if problems:
        raise OperationError(describe(problems, f"batch {plan.batch}"))
    return plan


def prepare_run(onyx: Onyx, raw_settings: dict, key: str | None, until: str | None = None,
                sets: Sequence[str] = (), masks: bool | None = None, preflight: bool = True) -> NewBatch:
    """Every check of ``onyx run`` (``preflight=False``: of ``onyx add``, which runs nothing); writes nothing."""
    settings = boundary(parse_settings, raw_settings)
    boundary(get_recipe, settings.recipe)
    settings_overrides = overrides.parse(sets, recipes=[settings.recipe], scene=settings.scene)
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
    plan = new_batch_plan(onyx, key, settings.recipe, until)
    if settings_overrides:
        plan.apply(settings_overrides)
    if preflight:
        check_prerequisites(onyx, plan, settings, masks)
    return NewBatch(key=key, settings=settings, plan=plan, video_info=info)


def ensure_idle_readonly(onyx: Onyx, key: str) -> None:
    instance = onyx.instance(create=False)
    if instance is not None:
        ensure_idle(instance, key, onyx.note)
    folder = onyx.layout(key).root
    holder = None if folder.is_symlink() else lock_holder(folder, key)
    if holder is not None:
        raise batch_busy(key, holder)


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
    with batch_lock(layout.root, prepared.key, onyx.note):
        return execute_plan(onyx, prepared.plan, verb="run", **execute_kwargs)


def load_batch(onyx: Onyx, key: str) -> BatchSettings:
    boundary(check_batch_key, key)
    layout = onyx.layout(key)
    instance = onyx.instance(create=False)
    registered = instance is not None and instance.has_dynamic_partition(batches.name, key)
    if os.path.lexists(layout.root):
        checked_batch_folder(onyx.data_root, key)
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


VIEWER_PAGE = ("viewer", "viewer.html")  # output/<recipe>/viewer/viewer.html (onyx_viewer)


def viewer_page(onyx: Onyx, key: str, recipe: str | None = None) -> Path:
    """The batch's viewer page for ``recipe`` (default: the batch's own recipe), checked to exist."""
    settings = load_batch(onyx, key)
    recipe = recipe or settings.recipe
    boundary(get_recipe, recipe)
    page = onyx.layout(key).recipe_output(recipe).joinpath(*VIEWER_PAGE)
    if not page.is_file():
        raise OperationError(
            f"batch {key!r} has no viewer page for recipe {recipe} yet ({page} is missing): materialise it with "
            f"`onyx resume {key}` (the VIEWER step), or `onyx fork {key}` for another recipe first")
    return page


def plan_resume(onyx: Onyx, key: str, from_step: str | None = None, until: str | None = None,
                sets: Sequence[str] = (), masks: bool | None = None) -> Plan:
    settings = load_batch(onyx, key)
    instance = onyx.instance()
    ensure_idle(instance, key, onyx.note)
    recipes = known_recipes(onyx, instance, key, settings.recipe) if onyx.has_recipe_assets else []
    settings_overrides = overrides.parse(sets, recipes=recipes, scene=settings.scene, steps=onyx.asset_names)
    plan = plan_batch(onyx, instance, key, recipes, from_step=from_step, until=until, overrides=settings_overrides)
    return check_prerequisites(onyx, plan, settings, masks)


def execute_locked(onyx: Onyx, key: str, plan: Plan, verb: str, **execute_kwargs):
    with batch_lock(onyx.layout(key).root, key, onyx.note):
        ensure_idle(onyx.instance(), key, onyx.note)  # again, under the lock
        return execute_plan(onyx, plan, verb=verb, **execute_kwargs)


def plan_fork(onyx: Onyx, key: str, mode: str, quality: str, sets: Sequence[str] = (),
              masks: bool | None = None) -> Plan:
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
    settings_overrides = overrides.parse(sets, recipes=[recipe], scene=settings.scene,
                                         steps=[name for name in RECIPE_ASSETS if onyx.has_asset(name)])
    instance = onyx.instance()
    ensure_idle(instance, key, onyx.note)
    plan = plan_batch(onyx, instance, key, [recipe], include_batch_assets=False, overrides=settings_overrides)
    if plan.empty:
        states = batch_states(onyx, instance, key, [recipe])["recipes"][recipe]
        done = next(iter(states.values()))
        current = " (its first recipe)" if recipe == settings.recipe else ""
        raise OperationError(
            f"batch {key!r} already has recipe {recipe}{current} complete (materialised {done.time}, "
            f"run {done.run_id or 'imported'}): choose another --mode/--quality, or "
            f"`onyx resume {key} --from-step RECONSTRUCTION` to redo it")
    return check_prerequisites(onyx, plan, settings, masks)


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
        if instance is not None:
            reap_dead_runs(instance, key, onyx.note)  # a run whose process is gone is failed, in Dagster too
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
