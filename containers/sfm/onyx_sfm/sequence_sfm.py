"""SfM of an ordinary video: one SIMPLE_RADIAL camera, sequential matching, retry wider when it fails.

Features are extracted once into one database; a retry only adds pairs (COLMAP skips pairs
the database already holds), so falling back to exhaustive matching costs the new pairs only.
"""

from __future__ import annotations

from onyx_tools import native_order  # noqa: F401  (before pycolmap: see onyx_tools/native_order.py)

import time
from pathlib import Path

import numpy as np
import pycolmap

from . import colmap_steps as steps
from .retrieval import retrieval_pairs
from .sfm_result import SfmResult
from .config import SfmConfig
from .keyframes import keyframe_step, pair_motion, select_keyframes
from .model_stats import camera_centres
from .strategy import (Attempt, Progress, best_attempt, is_good_enough, matching_plan, no_progress,
                       poor_global_model)


def map_models(config: SfmConfig, database: Path, image_dir: Path, output: Path, *,
               fixed_intrinsics: bool = False, fixed_rig: bool = False,
               sequence: list[str] | None = None) -> tuple[dict[int, pycolmap.Reconstruction], str]:
    """The mapper's models and a note on how they were made; ``sequence``: the images in capture order
    when they are a video's frames, which the incremental mapper then maps from keyframes where the
    frames are dense (``keyframes.py``)."""
    if config.mapper == "global":
        return steps.map_global(database, image_dir, output, fixed_intrinsics=fixed_intrinsics,
                                fixed_rig=fixed_rig), ""
    options = steps.incremental_options(fixed_intrinsics=fixed_intrinsics, fixed_rig=fixed_rig)
    if sequence and config.keyframe_motion > 0:
        motion, side = pair_motion(database, sequence)
        step = keyframe_step(motion, config.keyframe_motion * side)
        if step > 1:
            chosen = select_keyframes(len(sequence), step, motion, config.keyframe_motion * side)
            keyframes = [sequence[i] for i in chosen]
            models, detail = steps.map_from_keyframes(database, image_dir, output / "keyframes", options,
                                                      keyframes, sequence)
            how = f"mapped from keyframes, every {step} frames where the chain holds: {detail}"
            best = steps.largest_model(models)
            registered = best.num_reg_images() if best is not None else 0
            if registered >= config.min_registered_ratio * len(sequence):
                return models, how
            # Too few: the keyframes lost the chain somewhere; every frame at once is the mapper's own way.
            how = f"{how}: {registered}/{len(sequence)}, so mapped every frame"
            return steps.map_incremental(database, image_dir, output / "every-frame", options), how
    return steps.map_incremental(database, image_dir, output, options), ""


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


def match(matcher: str, database: Path, names: list[str], config: SfmConfig, work: Path) -> str:
    """Match the pairs ``matcher`` chooses (pairs already in the database are not matched again); a note."""
    if matcher == "exhaustive":
        steps.match_exhaustive(database)
        return f"{len(names) * (len(names) - 1) // 2} pairs"
    if matcher == "retrieval":
        pairs, retrieved = retrieval_pairs(names, steps.read_descriptors(database, names), overlap=config.overlap,
                                           quadratic_overlap=config.quadratic_overlap, top_k=config.retrieval_top_k)
        steps.match_listed_pairs(database, pairs, work / "pairs-retrieval.txt")
        return f"{len(pairs)} pairs, {retrieved} of them found by retrieval"
    steps.match_sequential(database, steps.MatchingConfig(config.overlap, config.quadratic_overlap,
                                                          config.vocab_tree_path),
                           loop_detection=(matcher == "loop"))
    return ""


def reregister(attempt: Attempt, models: dict[int, pycolmap.Reconstruction], database: Path, image_dir: Path,
               output: Path, log=None) -> dict[int, pycolmap.Reconstruction]:
    """One more pass over the frames the largest model left out, with relaxed registration thresholds
    (see ``colmap_steps.relaxed_registration``); the models with the largest one extended when that
    registered more."""
    best = steps.largest_model(models)
    if best is None or best.num_reg_images() >= attempt.total:
        return models
    before = best.num_reg_images()
    extended = steps.extend_model(database, image_dir, best, output,
                                  steps.relaxed_registration(steps.incremental_options()))
    after = extended.num_reg_images() if extended is not None else 0
    if log:
        log.info("re-registration of the %d frames left out: %d -> %d registered", attempt.total - before,
                 before, max(before, after))
    if after <= before:
        return models
    attempt.note = "; ".join(filter(None, [attempt.note, f"re-registration +{after - before} frames"]))
    return steps.replace_model(models, best, extended)


def incremental_if_poor(attempt: Attempt, models: dict[int, pycolmap.Reconstruction], config: SfmConfig,
                        database: Path, image_dir: Path, output: Path, log=None) -> dict[int, pycolmap.Reconstruction]:
    """The global mapper's models, or the incremental mapper's where the global model is poor
    (``strategy.poor_global_model``); the attempt's note says which and why."""
    best = steps.largest_model(models)
    registered = best.num_reg_images() if best is not None else 0
    reason = poor_global_model(camera_centres(best)[1] if best is not None else np.zeros((0, 3)), registered,
                               attempt.total, config.min_registered_ratio)
    if not reason:
        return models
    if log:
        log.warning("global mapping is poor (%s): mapping incrementally", reason)
    attempt.note = "; ".join(filter(None, [attempt.note, f"global mapping poor ({reason}): incremental"]))
    return steps.map_incremental(database, image_dir, output)


def run_sequence_sfm(image_dir: Path, names: list[str], work: Path, config: SfmConfig,
                     progress: Progress = no_progress, log=None, *, camera_model: str = "SIMPLE_RADIAL",
                     camera_params: str = "", mask_dir: Path | None = None) -> SfmResult:
    """SfM of ``names`` (files in ``image_dir``, capture order by name); registered == 0 when nothing does."""
    work.mkdir(parents=True, exist_ok=True)
    database = work / "database.db"
    database.unlink(missing_ok=True)
    timings: dict[str, float] = {}

    progress("features", 0, len(names), "SIFT")
    started = time.monotonic()
    steps.extract_sift(database, image_dir, names, camera_model=camera_model, camera_params=camera_params,
                       camera_mode=pycolmap.CameraMode.SINGLE, max_num_features=config.max_features,
                       default_hfov_deg=config.default_hfov_deg, mask_dir=mask_dir)
    timings["features"] = time.monotonic() - started
    progress("features", len(names), len(names), "SIFT done")

    plan, notes = matching_plan(config.matching, bool(steps.vocab_tree(steps.MatchingConfig(
        vocab_tree_path=config.vocab_tree_path))))
    for note in notes:
        if log:
            log.warning(note)
    attempts: list[Attempt] = []
    models_by_strategy: dict[str, tuple[pycolmap.Reconstruction | None, int]] = {}
    for number, matcher in enumerate(plan):
        attempt = Attempt(strategy=f"{matcher}+{config.mapper}", total=len(names))
        progress("matching", number, len(plan), matcher)
        started = time.monotonic()
        attempt.note = "; ".join(filter(None, [*(notes if number == 0 else []),
                                               match(matcher, database, names, config, work)]))
        attempt.timings["matching"] = time.monotonic() - started
        progress("mapping", number, len(plan), attempt.strategy)
        started = time.monotonic()
        # Keyframes on perspective frames only: 360 panoramas are already chosen a frame per 8 degrees
        # of parallax, and registration by pose has not been measured on equirectangular cameras.
        models, how = map_models(config, database, image_dir, work / f"models-{matcher}",
                                 sequence=names if camera_model != "EQUIRECTANGULAR" else None)
        attempt.note = "; ".join(filter(None, [attempt.note, how]))
        if config.mapper == "global":
            models = incremental_if_poor(attempt, models, config, database, image_dir,
                                         work / f"models-{matcher}-incremental", log)
        attempt.timings["mapping"] = time.monotonic() - started
        started = time.monotonic()
        models = reregister(attempt, models, database, image_dir, work / f"reregister-{matcher}", log)
        attempt.timings["reregistration"] = time.monotonic() - started
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
