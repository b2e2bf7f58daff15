"""Batches: a video and its settings, validated once at the boundary.

Settings are input, not state: ``batch.json`` is written once when the batch is
added and never updated; what has run, failed or gone stale lives in Dagster's
event log.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Literal

from dagster import DagsterInstance
from onyx_tools.config import Quality, Scene, VideoKind, explain
from onyx_tools.layout import BATCH_KEY_RULE, BatchLayout, is_valid_batch_key
from onyx_tools.publish import write_text_atomic
from onyx_tools.video import VideoError, VideoInfo, check_decodable, probe_video
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .partitions import batches
from .recipes import recipe_name

SETTINGS_SCHEMA = 1


class BatchError(ValueError):
    """Bad input at the boundary: the message names each problem and its fix."""


class BatchSettings(BaseModel):
    """What a person chooses for one video. Defaults are Onyx 1.0's."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input: Path = Field(description="the video file")
    scene: Scene = Field(description="sets frame counts, masking and densification")
    video: VideoKind = Field("auto", description="360 is detected when auto")
    mode: Literal["gaussian", "photogrammetry"] = Field(description="splat or textured mesh")
    quality: Quality = Field(description="proto is fast, production is thorough")
    interval: float | None = Field(None, gt=0, le=3600, description="seconds between frames (override)")

    @field_validator("input")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return Path(os.path.abspath(os.path.expanduser(str(value))))

    @property
    def recipe(self) -> str:
        return recipe_name(self.mode, self.quality)


def parse_settings(raw: dict) -> BatchSettings:
    try:
        return BatchSettings.model_validate(raw)
    except ValidationError as error:
        raise BatchError(explain(error, "batch settings", BatchSettings.model_fields)) from None


def check_batch_key(key: str) -> str:
    if not is_valid_batch_key(key):
        raise BatchError(f"invalid batch key {key!r}: {BATCH_KEY_RULE}")
    return key


def data_root_from_env() -> Path:
    from .settings import OnyxSettings

    return OnyxSettings.from_env().data


def batch_layout(data_root: Path, key: str) -> BatchLayout:
    return BatchLayout(Path(data_root) / check_batch_key(key))


def read_settings(layout: BatchLayout) -> BatchSettings:
    if not layout.settings_file.is_file():
        raise BatchError(
            f"batch folder {layout.root} has no batch.json: add the batch first "
            f"(onyx run ..., or python -m onyx_dagster.add_batch KEY --input VIDEO ...)")
    try:
        raw = json.loads(layout.settings_file.read_text(encoding="utf-8"))
    except ValueError as error:
        raise BatchError(f"{layout.settings_file} is not valid JSON ({error}): restore it from an export, "
                         "or purge the batch and add it again") from None
    if not isinstance(raw, dict):
        raise BatchError(f"{layout.settings_file} is not a settings object: restore it from an export")
    raw.pop("schema", None)
    key = raw.pop("key", layout.root.name)  # batch.json of Onyx 0.1 carries no key
    if key != layout.root.name:
        raise BatchError(
            f"{layout.settings_file} belongs to batch {key!r}, not {layout.root.name!r} (a folder renamed or "
            "copied by hand): rename it back, or export and import it under the new key")
    return parse_settings(raw)


def settings_document(key: str, settings: BatchSettings) -> str:
    """batch.json: the settings and the batch's key, the marker that the folder is this batch's."""
    document = {"schema": SETTINGS_SCHEMA, "key": key, **json.loads(settings.model_dump_json())}
    return json.dumps(document, indent=2) + "\n"


def _check_writable(data_root: Path) -> None:
    probe_dir = Path(data_root)
    try:
        while not probe_dir.exists():
            probe_dir = probe_dir.parent
        usable = probe_dir.is_dir() and os.access(probe_dir, os.W_OK | os.X_OK)
    except PermissionError:
        usable = False
    if not usable:
        raise BatchError(f"data root {data_root} is not writable ({probe_dir} refuses writes): "
                         "choose another --output / ONYX_DATA or fix its permissions")


def validate_new_batch(instance: DagsterInstance, data_root: Path, key: str, settings: BatchSettings) -> VideoInfo:
    """Every check that can refuse a new batch, before anything is written."""
    check_batch_key(key)
    layout = batch_layout(data_root, key)
    _check_writable(Path(data_root))
    if instance.has_dynamic_partition(batches.name, key) or layout.root.exists():
        raise BatchError(f"batch {key!r} already exists: choose another key, resume it, or purge it first")
    try:
        info = probe_video(settings.input)
        check_decodable(settings.input)
    except VideoError as error:
        raise BatchError(str(error)) from None
    if settings.video == "360" and not info.looks_equirectangular:
        raise BatchError(
            f"--video 360 but {settings.input} is {info.width}x{info.height}, not 2:1 equirectangular "
            "and not tagged as spherical: use --video normal or auto")
    return info


def add_batch(instance: DagsterInstance, data_root: Path, key: str, settings: BatchSettings) -> BatchLayout:
    """Validate, write batch.json once, then register the partition."""
    validate_new_batch(instance, data_root, key, settings)
    layout = batch_layout(data_root, key)
    layout.root.mkdir(parents=True)
    write_text_atomic(layout.settings_file, settings_document(key, settings))
    instance.add_dynamic_partitions(batches.name, [key])
    return layout
