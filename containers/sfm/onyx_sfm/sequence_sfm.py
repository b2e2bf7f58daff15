"""SfM of an ordinary video: one SIMPLE_RADIAL camera, sequential matching, retry wider when it fails.

Features are extracted once into one database; a retry only adds pairs (COLMAP skips pairs
the database already holds), so falling back to exhaustive matching costs the new pairs only.
"""

from __future__ import annotations

from onyx_tools import native_order  # noqa: F401  (before pycolmap: see onyx_tools/native_order.py)

import time
from pathlib import Path

import pycolmap

from . import colmap_steps as steps
from .sfm_result import SfmResult
from .strategy import (Attempt, Progress, SfmConfig, best_attempt, is_good_enough, matching_plan,
                       no_progress)


def map_models(config: SfmConfig, database: Path, image_dir: Path, output: Path, *,
               fixed_intrinsics: bool = False, fixed_rig: bool = False) -> dict[int, pycolmap.Reconstruction]:
    if config.mapper == "global":
        return steps.map_global(database, image_dir, output, fixed_intrinsics=fixed_intrinsics,
                                fixed_rig=fixed_rig)
    options = steps.incremental_options(fixed_intrinsics=fixed_intrinsics, fixed_rig=fixed_rig)
    return steps.map_incremental(database, image_dir, output, options)


def summarise(attempt: Attempt, models: dict[int, pycolmap.Reconstruction]) -> pycolmap.Reconstruction | None:
    best = steps.largest_model(models)
    attempt.models = len(models)
    if best is not None:
        attempt.registered = best.num_reg_images()
        attempt.points3d = best.num_points3D()
        in_best = {image.name for image in best.images.values() if image.has_pose}
        elsewhere = {image.name for model in models.values() if model is not best
                     for image in model.images.values() if image.has_pose}
        attempt.stranded = len(elsewhere - in_best)
    return best


def run_sequence_sfm(image_dir: Path, names: list[str], work: Path, config: SfmConfig,
                     progress: Progress = no_progress, log=None, *, camera_model: str = "SIMPLE_RADIAL",
                     camera_params: str = "") -> SfmResult:
    """SfM of ``names`` (files in ``image_dir``, capture order by name); registered == 0 when nothing does."""
    work.mkdir(parents=True, exist_ok=True)
    database = work / "database.db"
    database.unlink(missing_ok=True)
    timings: dict[str, float] = {}
    matching = steps.MatchingConfig(config.overlap, config.quadratic_overlap, config.vocab_tree_path)

    progress("features", 0, len(names), "SIFT")
    started = time.monotonic()
    steps.extract_sift(database, image_dir, names, camera_model=camera_model, camera_params=camera_params,
                       camera_mode=pycolmap.CameraMode.SINGLE, max_num_features=config.max_features)
    timings["features"] = time.monotonic() - started
    progress("features", len(names), len(names), "SIFT done")

    plan, notes = matching_plan(config.matching, bool(steps.vocab_tree(matching)))
    for note in notes:
        if log:
            log.warning(note)
    attempts: list[Attempt] = []
    models_by_strategy: dict[str, tuple[pycolmap.Reconstruction | None, int]] = {}
    for number, matcher in enumerate(plan):
        attempt = Attempt(strategy=f"{matcher}+{config.mapper}", total=len(names))
        if number == 0 and notes:
            attempt.note = "; ".join(notes)
        progress("matching", number, len(plan), matcher)
        started = time.monotonic()
        if matcher == "exhaustive":
            steps.match_exhaustive(database)
        else:
            steps.match_sequential(database, matching, loop_detection=(matcher == "loop"))
        attempt.timings["matching"] = time.monotonic() - started
        progress("mapping", number, len(plan), attempt.strategy)
        started = time.monotonic()
        models = map_models(config, database, image_dir, work / f"models-{matcher}")
        attempt.timings["mapping"] = time.monotonic() - started
        attempt.seconds = sum(attempt.timings.values())
        best = summarise(attempt, models)
        attempts.append(attempt)
        models_by_strategy[attempt.strategy] = (best, len(models))
        for stage, seconds in attempt.timings.items():
            timings[f"{stage}_{matcher}"] = seconds
        if log:
            log.info("%s: %d/%d images registered in %d model(s), %d points, %.1f s", attempt.strategy,
                     attempt.registered, attempt.total, attempt.models, attempt.points3d, attempt.seconds)
        if is_good_enough(attempt, config.min_registered_ratio):
            break
        if log and number + 1 < len(plan):
            log.warning("%s registered %d/%d images in %d model(s), under %.0f%% in one model: retrying with %s",
                        attempt.strategy, attempt.registered, attempt.total, attempt.models,
                        100 * config.min_registered_ratio, plan[number + 1])
    winner = best_attempt(attempts)
    if winner is None:
        return SfmResult(pycolmap.Reconstruction(), "", attempts, len(names), 0, timings)
    best, count = models_by_strategy[winner.strategy]
    return SfmResult(best, winner.strategy, attempts, len(names), count, timings)
