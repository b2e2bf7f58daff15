"""The COLMAP stages as plain functions over a database path (pycolmap 4.2).

Every function here is one stage: SIFT extraction, one way of choosing image pairs to
match, one mapper. Which to run, and in what order, is decided in ``strategy.py``.
GPU SIFT and matching are used when the pycolmap build has CUDA (``Device.auto``).
"""

from __future__ import annotations

from onyx_tools import native_order  # noqa: F401  (before pycolmap: see onyx_tools/native_order.py)

import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pycolmap

from .register import register_frames

DEVICE = pycolmap.Device.auto


@dataclass(frozen=True)
class MatchingConfig:
    overlap: int = 10              # sequential: each frame is matched with the next `overlap` frames
    quadratic_overlap: bool = True  # ... and with frames 2^k further on, which closes small gaps
    vocab_tree_path: str = ""       # loop detection needs one; empty: look at $ONYX_VOCAB_TREE


def extract_sift(database: Path, image_dir: Path, image_names: list[str], *, camera_model: str,
                 camera_params: str = "", camera_mode: pycolmap.CameraMode = pycolmap.CameraMode.SINGLE,
                 max_image_size: int = 3200, max_num_features: int = 8192, default_hfov_deg: float = 0.0,
                 device: pycolmap.Device = DEVICE, mask_dir: Path | None = None) -> None:
    """SIFT features of ``image_names`` (paths relative to ``image_dir``) into a new database.

    ``mask_dir``: no features where ``<mask_dir>/<image name>.png`` is 0 (360: what moves with the camera).
    ``default_hfov_deg``: the focal length the mapper starts from when an image carries none in its
    EXIF (video frames never do), as a horizontal field of view; 0 keeps COLMAP's 1.2 x the larger side.
    """
    reader = pycolmap.ImageReaderOptions(camera_model=camera_model)
    if camera_params:
        reader.camera_params = camera_params
    if mask_dir is not None:
        reader.mask_path = str(mask_dir)
    if default_hfov_deg:
        reader.default_focal_length_factor = focal_factor(default_hfov_deg)
    extraction = pycolmap.FeatureExtractionOptions()
    extraction.max_image_size = max_image_size
    extraction.sift.max_num_features = max_num_features
    pycolmap.extract_features(database, image_dir, image_names=list(image_names), camera_mode=camera_mode,
                              reader_options=reader, extraction_options=extraction, device=device)


def focal_factor(hfov_deg: float) -> float:
    """Focal length over the larger image side for a horizontal field of view (landscape frames)."""
    return 0.5 / math.tan(math.radians(hfov_deg) / 2.0)


def match_sequential(database: Path, config: MatchingConfig, *, loop_detection: bool = False) -> None:
    pairing = pycolmap.SequentialPairingOptions(overlap=config.overlap,
                                                quadratic_overlap=config.quadratic_overlap)
    if loop_detection:
        pairing.loop_detection = True
        pairing.vocab_tree_path = vocab_tree(config)
    pycolmap.match_sequential(database, pairing_options=pairing, device=DEVICE)


def match_exhaustive(database: Path, device: pycolmap.Device = DEVICE) -> None:
    """Every pair; pairs already matched by an earlier attempt are kept, not matched again."""
    pycolmap.match_exhaustive(database, device=device)


def match_listed_pairs(database: Path, pairs: list[tuple[str, str]], pairs_file: Path, *,
                       rig_verification: bool = False) -> None:
    """Match exactly the given image-name pairs (360 views: only views that can see the same things)."""
    pairs_file.write_text("".join(f"{a} {b}\n" for a, b in pairs), encoding="utf-8")
    matching = pycolmap.FeatureMatchingOptions()
    matching.rig_verification = rig_verification
    pycolmap.match_image_pairs(database, matching_options=matching,
                               pairing_options=pycolmap.ImportedPairingOptions(match_list_path=str(pairs_file)),
                               device=DEVICE)


def read_descriptors(database: Path, names: list[str]) -> list[np.ndarray]:
    """The SIFT descriptors (N, 128 uint8) of each of ``names``, in that order."""
    db = pycolmap.Database.open(database)
    try:
        ids = {image.name: image.image_id for image in db.read_all_images()}
        return [np.asarray(db.read_descriptors(ids[name]).data, np.uint8).reshape(-1, 128) for name in names]
    finally:
        db.close()


def vocab_tree(config: MatchingConfig) -> str:
    """The vocabulary tree for loop detection, or "" when none is available offline.

    COLMAP would download one from the internet; these machines cannot, so only a file
    given in the config or in $ONYX_VOCAB_TREE counts.
    """
    path = config.vocab_tree_path or os.environ.get("ONYX_VOCAB_TREE", "")
    return path if path and Path(path).is_file() else ""


def incremental_options(*, fixed_intrinsics: bool = False, fixed_rig: bool = False,
                        min_model_size: int = 3) -> pycolmap.IncrementalPipelineOptions:
    options = pycolmap.IncrementalPipelineOptions()
    options.min_model_size = min_model_size
    if fixed_intrinsics:  # 360 views: the split defines them exactly
        options.ba_refine_focal_length = False
        options.ba_refine_principal_point = False
        options.ba_refine_extra_params = False
        options.mapper.abs_pose_refine_focal_length = False
        options.mapper.abs_pose_refine_extra_params = False
    if fixed_rig:  # the views' relative rotations are known exactly
        options.ba_refine_sensor_from_rig = False
    return options


def map_incremental(database: Path, image_dir: Path, output: Path,
                    options: pycolmap.IncrementalPipelineOptions | None = None) -> dict[int, pycolmap.Reconstruction]:
    _fresh(output)
    return pycolmap.incremental_mapping(database, image_dir, output, options or incremental_options())


def map_global(database: Path, image_dir: Path, output: Path, *, fixed_intrinsics: bool = False,
               fixed_rig: bool = False) -> dict[int, pycolmap.Reconstruction]:
    _fresh(output)
    options = pycolmap.GlobalPipelineOptions()
    if fixed_intrinsics:
        options.mapper.bundle_adjustment.refine_focal_length = False
        options.mapper.bundle_adjustment.refine_extra_params = False
        options.mapper.bundle_adjustment.refine_principal_point = False
    if fixed_rig:
        options.mapper.refine_sensor_from_rig = False
        options.mapper.bundle_adjustment.refine_sensor_from_rig = False
    return pycolmap.global_mapping(database, image_dir, output, options)


def map_from_keyframes(database: Path, image_dir: Path, output: Path, options: pycolmap.IncrementalPipelineOptions,
                       keyframes: list[str], sequence: list[str]) -> tuple[dict[int, pycolmap.Reconstruction], str]:
    """Incremental mapping of ``keyframes`` only, then the rest of ``sequence`` registered into the
    largest model by absolute pose (``register.py``; ``keyframes.py`` says why), and the incremental
    mapper continuing from that model for any frame still left out."""
    _fresh(output)
    on_keyframes = pycolmap.IncrementalPipelineOptions(options.todict())
    on_keyframes.image_names = list(keyframes)
    (output / "keyframes").mkdir()
    models = pycolmap.incremental_mapping(database, image_dir, output / "keyframes", on_keyframes)
    best = largest_model(models)
    if best is None:
        return models, f"none of the {len(keyframes)} keyframes mapped"
    placed = best.num_reg_images()
    by_pose = register_frames(database, best, sequence)
    if by_pose:
        best.update_point_3d_errors()
    note = f"{placed}/{len(keyframes)} keyframes mapped, {len(by_pose)} frames registered by pose"
    if best.num_reg_images() < len(sequence):
        # Frames whose matches reach too few of the keyframes' points (a keyframe the mapper could not
        # place, a stretch seen by no keyframe): the mapper itself continues from the model, which
        # triangulates what they see as it adds them.
        rest = pycolmap.IncrementalPipelineOptions(options.todict())
        rest.multiple_models = False
        extended = extend_model(database, image_dir, best, output / "continued", rest)
        if extended is not None and extended.num_reg_images() > best.num_reg_images():
            note += f", {extended.num_reg_images() - best.num_reg_images()} by the mapper continuing"
            return replace_model(models, best, extended), note
    return models, note


def relaxed_registration(options: pycolmap.IncrementalPipelineOptions) -> pycolmap.IncrementalPipelineOptions:
    """The same options with the thresholds that decide whether a frame can be added halved.

    COLMAP's defaults (30 inlier 2D-3D matches, 25% of them inliers, 3 trials) are made for
    photographs; a video frame that sees mostly sky or cobbles, or that moved straight ahead
    from its neighbours, can fall just short and is then left out for good. Only frames the
    first pass left out meet these, and bundle adjustment still has to accept them.
    """
    relaxed = pycolmap.IncrementalPipelineOptions(options.todict())
    relaxed.min_num_matches = 10
    relaxed.multiple_models = False  # only the model being extended
    relaxed.mapper.abs_pose_min_num_inliers = 15
    relaxed.mapper.abs_pose_min_inlier_ratio = 0.15
    relaxed.mapper.max_reg_trials = 6
    return relaxed


def extend_model(database: Path, image_dir: Path, model: pycolmap.Reconstruction, output: Path,
                 options: pycolmap.IncrementalPipelineOptions) -> pycolmap.Reconstruction | None:
    """``model`` continued by the incremental mapper with ``options``: it tries to register the images
    the model lacks; None when the mapper returns nothing."""
    _fresh(output)
    start = output / "start"
    start.mkdir()
    model.write_binary(start)
    models = pycolmap.incremental_mapping(database, image_dir, output / "models", options, input_path=start)
    return largest_model(models)


def reference_sfm(image_dir: Path, names: list[str], work: Path) -> dict[int, pycolmap.Reconstruction]:
    """SfM as plain pycolmap runs it with its defaults (SIFT, one shared camera, every pair matched,
    incremental mapper): the reference Onyx's strategy must never register fewer frames than."""
    _fresh(work)
    database = work / "database.db"
    pycolmap.extract_features(database, image_dir, image_names=list(names), camera_mode=pycolmap.CameraMode.SINGLE,
                              device=DEVICE)
    pycolmap.match_exhaustive(database, device=DEVICE)
    (work / "models").mkdir()
    return pycolmap.incremental_mapping(database, image_dir, work / "models")


def replace_model(models: dict[int, pycolmap.Reconstruction], old: pycolmap.Reconstruction,
                  new: pycolmap.Reconstruction) -> dict[int, pycolmap.Reconstruction]:
    """``models`` with ``new`` in the place of ``old`` (an extended model replaces the one it grew from)."""
    return {key: new if model is old else model for key, model in models.items()}


def largest_model(models: dict[int, pycolmap.Reconstruction]) -> pycolmap.Reconstruction | None:
    """The model with the most registered images (then the most points); None when there is none."""
    if not models:
        return None
    return max(models.values(), key=lambda rec: (rec.num_reg_images(), rec.num_points3D()))


def _fresh(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
