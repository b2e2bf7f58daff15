"""The drop folder: copy a video in, get a batch.

    <drop>/onyx.yaml                      defaults for everything below (optional)
    <drop>/outdoor/gaussian-proto/a.mp4   settings from the folder names it sits in
    <drop>/b.mp4 + <drop>/b.onyx.yaml     settings from a sidecar (wins over folders)

A file is taken once its size and modification time have stayed the same over two
ticks, so a copy in progress is never started, and once what its run needs is there
(``onyx_dagster.preflight``: a missing prerequisite is logged once, with its fix, and the
file is looked at again every tick). The batch key is a slug of the name
plus a short content hash: the same content dropped twice is one batch. A file that
is not a usable video is reported in the tick's log, once, and the sensor goes on.
"""

import json
import os
from dataclasses import dataclass
from pathlib import Path

import yaml
from dagster import (
    DefaultSensorStatus,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    sensor,
)
from onyx_tools.layout import slugify
from onyx_tools.manifest import file_sha256

from ..batches import BatchError, add_batch, parse_settings
from ..operations.state import reap_all_dead_runs
from ..partitions import batches
from ..preflight import check_run, describe, shape_for_batch
from ..resources import BatchStorage, DropFolder, runner_from_settings
from ..settings import OnyxSettings
from .ingest import frames, video
from .masks import masks
from .reconstruction import reconstruction
from .sfm import sparse_model

VIDEO_SUFFIXES = {".mp4", ".mov", ".m4v", ".mkv", ".avi", ".webm", ".insv", ".mts"}
SIDECAR_SUFFIX = ".onyx.yaml"
FOLDER_SETTINGS = "onyx.yaml"
# Folder names that set a setting: <drop>/outdoor/gaussian-proto/video.mp4
FOLDER_WORDS = {
    "indoor": {"scene": "indoor"}, "outdoor": {"scene": "outdoor"},
    "gaussian": {"mode": "gaussian"}, "photogrammetry": {"mode": "photogrammetry"},
    "proto": {"quality": "proto"}, "production": {"quality": "production"},
    "360": {"video": "360"}, "normal": {"video": "normal"},
}
BUILT_IN_DEFAULTS = {"scene": "outdoor", "mode": "gaussian", "quality": "proto", "video": "auto"}


@dataclass(frozen=True)
class Dropped:
    location: str   # absolute path of the file
    relative: str   # POSIX path below the drop folder: the cursor's key
    signature: str  # size, mtime and the sidecar's state: changes whenever the drop does


def scan(folder: Path) -> list[Dropped]:
    """Every candidate video below ``folder`` (hidden files and partial downloads skipped).

    One ``scandir`` and one ``stat`` per file: with thousands of files handled long ago, a
    tick costs a directory walk and a dictionary lookup per file, nothing more.
    """
    found = []
    pending_dirs = [(str(folder), "")]
    while pending_dirs:
        current, prefix = pending_dirs.pop()
        try:
            entries = sorted(os.scandir(current), key=lambda entry: entry.name)
        except FileNotFoundError:
            continue
        names = {entry.name for entry in entries}
        for entry in entries:
            if entry.name.startswith("."):
                continue
            if entry.is_dir(follow_symlinks=False):
                pending_dirs.append((entry.path, prefix + entry.name + "/"))
                continue
            stem, suffix = os.path.splitext(entry.name)
            if suffix.lower() not in VIDEO_SUFFIXES:
                continue
            try:
                stat = entry.stat()
                sidecar = stem + SIDECAR_SUFFIX
                side = os.stat(os.path.join(current, sidecar)).st_mtime_ns if sidecar in names else 0
            except FileNotFoundError:
                continue  # moved away between listing and stat
            found.append(Dropped(entry.path, prefix + entry.name, f"{stat.st_size}:{stat.st_mtime_ns}:{side}"))
    return found


def _load_yaml(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        raise BatchError(f"{path} is not valid YAML: {error}") from None
    if not isinstance(data, dict):
        raise BatchError(f"{path} must be a mapping of settings (scene: outdoor, ...), not {type(data).__name__}")
    return data


def settings_for(folder: Path, path: Path) -> dict:
    """Built-in defaults < onyx.yaml files from the drop root down < folder names < the sidecar."""
    raw = dict(BUILT_IN_DEFAULTS)
    relative_dirs = path.parent.relative_to(folder).parts
    current = folder
    for part in ("", *relative_dirs):
        current = current / part if part else current
        if (current / FOLDER_SETTINGS).is_file():
            raw.update(_load_yaml(current / FOLDER_SETTINGS))
    for part in relative_dirs:
        for word in part.lower().split("-"):
            raw.update(FOLDER_WORDS.get(word, {}))
    sidecar = path.with_name(path.stem + SIDECAR_SUFFIX)
    if sidecar.is_file():
        raw.update(_load_yaml(sidecar))
    raw["input"] = str(path)
    return raw


def batch_key_for(path: Path, content_sha256: str) -> str:
    return f"{slugify(path.stem, max_len=40)}-{content_sha256[:8]}"


def same_content_batch(existing: list[str], key: str) -> str | None:
    """The batch already made from this content (keys end in the content hash), if any."""
    suffix = "-" + key.rsplit("-", 1)[1]
    return next((other for other in existing if other.endswith(suffix)), None)


def _first_recipe_partition(key: str, recipe: str):
    from dagster import MultiPartitionKey

    return MultiPartitionKey({"batch": key, "recipe": recipe})


@sensor(
    name="drop_folder",
    minimum_interval_seconds=15,
    default_status=DefaultSensorStatus.STOPPED,
    asset_selection=[video, frames, sparse_model, reconstruction, masks],
    description="Turns each video copied into the drop folder into a batch and materialises it.",
)
def drop_folder_sensor(context: SensorEvaluationContext, drop: DropFolder, storage: BatchStorage):
    # A batch whose last run's onyx process died is not "running" for this sensor either.
    for line in reap_all_dead_runs(context.instance):
        context.log.warning(line)
    folder = Path(drop.folder)
    if not folder.is_dir():
        return SensorResult(skip_reason=f"drop folder {folder} does not exist: create it or set ONYX_DROP")
    cursor = json.loads(context.cursor) if context.cursor else {"pending": {}, "done": {}}
    pending, done, blocked = cursor["pending"], cursor["done"], cursor.get("blocked", {})
    settings_now = OnyxSettings.from_env()
    runner = runner_from_settings(settings_now)
    run_requests = []
    now_pending, now_blocked = {}, {}
    for item in scan(folder):
        rel = item.relative
        if done.get(rel) == item.signature:
            continue
        if pending.get(rel) != item.signature:
            now_pending[rel] = item.signature  # new or still changing: look again next tick
            continue
        path = Path(item.location)
        content = file_sha256(path)
        key = batch_key_for(path, content)
        twin = same_content_batch(context.instance.get_dynamic_partitions(batches.name), key)
        if twin:
            done[rel] = item.signature
            context.log.info(f"{rel}: same content as batch {twin}, not processed again")
            continue
        try:
            settings = parse_settings(settings_for(folder, path))
            recipe_steps = [reconstruction.key, masks.key] if settings_now.masks else [reconstruction.key]
            problems = check_run(shape_for_batch(
                ["video", "frames", "sparse_model", *(k.to_user_string() for k in recipe_steps)], storage.root,
                settings, [settings.recipe]), runner=runner, settings=settings_now)
            if problems:
                # Not taken yet: looked at again every tick, and taken once what it needs is there.
                message = describe(problems, f"{rel} (batch {key})")
                if blocked.get(rel) != message:
                    context.log.error(message)
                now_pending[rel], now_blocked[rel] = item.signature, message
                continue
            done[rel] = item.signature
            add_batch(context.instance, storage.root, key, settings)
        except BatchError as error:
            done[rel] = item.signature
            context.log.error(f"{rel} rejected: {error}")
            continue
        context.log.info(f"{rel}: new batch {key} ({settings.recipe})"
                         + ("" if settings_now.masks else ", masks off (ONYX_MASKS=off)"))
        tags = {"onyx/batch": key, "onyx/source": "drop-folder"}
        run_requests.append(RunRequest(run_key=f"{key}:batch", partition_key=key, tags=tags,
                                       asset_selection=[video.key, frames.key, sparse_model.key]))
        # Queued behind the first by the one-run-per-batch limit (onyx/batch tag).
        run_requests.append(RunRequest(run_key=f"{key}:{settings.recipe}", tags=tags,
                                       partition_key=_first_recipe_partition(key, settings.recipe),
                                       asset_selection=recipe_steps))
    cursor = {"pending": now_pending, "done": done, "blocked": now_blocked}
    return SensorResult(run_requests=run_requests, cursor=json.dumps(cursor, separators=(",", ":")))
