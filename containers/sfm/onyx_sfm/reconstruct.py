"""From the frames step's images/ to one perspective COLMAP model: picks and runs the strategies.

Importable without Dagster Pipes: tests and notebooks call ``reconstruct`` directly.
"""

from __future__ import annotations

from onyx_tools import native_order  # noqa: F401  (before pycolmap: see onyx_tools/native_order.py)

import time
from pathlib import Path

import pycolmap

from onyx_tools.errors import ToolError

from .image_index import ImageIndex
from .rig_sfm import run_rig_sfm
from .sequence_sfm import run_sequence_sfm
from .sfm_result import SfmResult
from .spherical_sfm import run_spherical_sfm
from .config import SfmConfig
from .strategy import (Attempt, Progress, best_attempt, is_good_enough, no_progress,
                       registered_nothing_message, spherical_plan)


def reconstruct(images_dir: Path, index: ImageIndex, work: Path, config: SfmConfig, *,
                panoramas_dir: Path | None = None, progress: Progress = no_progress, log=None) -> SfmResult:
    """SfM of ``images_dir``; raises ``ToolError`` when no image registers."""
    if index.is_360:
        result = reconstruct_360(images_dir, index, work, config, panoramas_dir=panoramas_dir,
                                 progress=progress, log=log)
    else:
        result = run_sequence_sfm(images_dir, index.names, work / "sequence", config, progress, log)
    if result.registered == 0:
        raise ToolError(registered_nothing_message(result.total, result.attempts))
    return result


def reconstruct_360(images_dir: Path, index: ImageIndex, work: Path, config: SfmConfig, *,
                    panoramas_dir: Path | None = None, progress: Progress = no_progress, log=None) -> SfmResult:
    """360 views: spherical (SfM on the panoramas) and/or the views as a rig, as ``config.spherical`` says."""
    has_panoramas = bool(panoramas_dir and Path(panoramas_dir).is_dir() and any(Path(panoramas_dir).iterdir()))
    plan = spherical_plan(config.spherical, has_panoramas)
    attempts: list[Attempt] = []
    models: dict[str, pycolmap.Reconstruction] = {}
    timings: dict[str, float] = {}
    for number, strategy in enumerate(plan):
        started = time.monotonic()
        if strategy == "spherical":
            attempt, model, pano_attempts = run_spherical_sfm(images_dir, Path(panoramas_dir), index,
                                                              work / "spherical", config, progress, log)
            attempts.extend(pano_attempts)
        else:
            attempt, model = run_rig_sfm(images_dir, index, work / "rig", config, progress, log)
        attempt.seconds = time.monotonic() - started
        attempts.append(attempt)
        if model is not None:
            models[strategy] = model
        timings.update({f"{strategy}_{stage}": seconds for stage, seconds in attempt.timings.items()})
        if is_good_enough(attempt, config.min_registered_ratio):
            break
        if log and number + 1 < len(plan):
            log.warning("%s registered %d/%d views (%s): retrying with %s", strategy, attempt.registered,
                        attempt.total, attempt.note, plan[number + 1])
    candidates = [a for a in attempts if a.strategy in models]
    winner = best_attempt(candidates)
    if winner is None:
        return SfmResult(pycolmap.Reconstruction(), "", attempts, len(index.images), 0, timings)
    return SfmResult(models[winner.strategy], winner.strategy, attempts, len(index.images), winner.models,
                     timings)
