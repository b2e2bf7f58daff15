"""The COLMAP stages as plain functions over a database path (pycolmap 4.2).

Every function here is one stage: SIFT extraction, one way of choosing image pairs to
match, one mapper. Which to run, and in what order, is decided in ``strategy.py``.
GPU SIFT and matching are used when the pycolmap build has CUDA (``Device.auto``).
"""

from __future__ import annotations

from onyx_tools import native_order  # noqa: F401  (before pycolmap: see onyx_tools/native_order.py)

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pycolmap

DEVICE = pycolmap.Device.auto


@dataclass(frozen=True)
class MatchingConfig:
    overlap: int = 10              # sequential: each frame is matched with the next `overlap` frames
    quadratic_overlap: bool = True  # ... and with frames 2^k further on, which closes small gaps
    vocab_tree_path: str = ""       # loop detection needs one; empty: look at $ONYX_VOCAB_TREE


def extract_sift(database: Path, image_dir: Path, image_names: list[str], *, camera_model: str,
                 camera_params: str = "", camera_mode: pycolmap.CameraMode = pycolmap.CameraMode.SINGLE,
                 max_image_size: int = 3200, max_num_features: int = 8192) -> None:
    """SIFT features of ``image_names`` (paths relative to ``image_dir``) into a new database."""
    reader = pycolmap.ImageReaderOptions(camera_model=camera_model)
    if camera_params:
        reader.camera_params = camera_params
    extraction = pycolmap.FeatureExtractionOptions()
    extraction.max_image_size = max_image_size
    extraction.sift.max_num_features = max_num_features
    pycolmap.extract_features(database, image_dir, image_names=list(image_names), camera_mode=camera_mode,
                              reader_options=reader, extraction_options=extraction, device=DEVICE)


def match_sequential(database: Path, config: MatchingConfig, *, loop_detection: bool = False) -> None:
    pairing = pycolmap.SequentialPairingOptions(overlap=config.overlap,
                                                quadratic_overlap=config.quadratic_overlap)
    if loop_detection:
        pairing.loop_detection = True
        pairing.vocab_tree_path = vocab_tree(config)
    pycolmap.match_sequential(database, pairing_options=pairing, device=DEVICE)


def match_exhaustive(database: Path) -> None:
    """Every pair; pairs already matched by an earlier attempt are kept, not matched again."""
    pycolmap.match_exhaustive(database, device=DEVICE)


def match_listed_pairs(database: Path, pairs: list[tuple[str, str]], pairs_file: Path, *,
                       rig_verification: bool = False) -> None:
    """Match exactly the given image-name pairs (360 views: only views that can see the same things)."""
    pairs_file.write_text("".join(f"{a} {b}\n" for a, b in pairs), encoding="utf-8")
    matching = pycolmap.FeatureMatchingOptions()
    matching.rig_verification = rig_verification
    pycolmap.match_image_pairs(database, matching_options=matching,
                               pairing_options=pycolmap.ImportedPairingOptions(match_list_path=str(pairs_file)),
                               device=DEVICE)


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


def largest_model(models: dict[int, pycolmap.Reconstruction]) -> pycolmap.Reconstruction | None:
    """The model with the most registered images (then the most points); None when there is none."""
    if not models:
        return None
    return max(models.values(), key=lambda rec: (rec.num_reg_images(), rec.num_points3D()))


def _fresh(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
