"""360 strategy (a): SfM of the perspective views with each frame's views as a rigid camera rig.

PINHOLE intrinsics come from the split (90 degree FOV, known focal), one camera per view,
all kept fixed, as are the views' relative rotations: the mapper only estimates one pose
per frame. Views are matched across neighbouring frames only where they look the same way.
"""

from __future__ import annotations

from onyx_tools import native_order  # noqa: F401  (before pycolmap: see onyx_tools/native_order.py)

import os
import time
from pathlib import Path

import pycolmap

from . import colmap_steps as steps
from .image_index import ImageIndex, operator_masks
from .rig import build_rig_config, link_rig_layout, rename_images
from .sequence_sfm import map_models, summarise
from .config import SfmConfig
from .strategy import Attempt, Progress, no_progress
from .view_pairs import cross_frame_view_pairs


def view_camera_params(index: ImageIndex, images_dir: Path) -> tuple[int, str]:
    """(view size, "f,f,c,c") of the 360 views: from the index, else from an image's size."""
    size = index.view_size
    if not size:
        import cv2
        image = cv2.imread(str(images_dir / index.images[0].name), cv2.IMREAD_UNCHANGED)
        size = int(image.shape[1])
    from onyx_tools.spherical import pinhole_focal
    focal = index.focal_px or pinhole_focal(size)
    centre = size / 2.0  # COLMAP puts pixel centres at +0.5, as onyx_tools.spherical does
    return size, f"{focal!r},{focal!r},{centre!r},{centre!r}"


def link_rig_masks(images_dir: Path, mapping: dict[str, str], target: Path) -> Path | None:
    """The operator masks under the rig layout's names (``target/<view>/frame_NNNNN.jpg.png``), if any."""
    masks = operator_masks(images_dir, list(mapping.values()))
    if masks is None:
        return None
    for rig_name, name in mapping.items():
        link = target / f"{rig_name}.png"
        link.parent.mkdir(parents=True, exist_ok=True)
        link.unlink(missing_ok=True)
        os.symlink(os.path.relpath((masks / f"{name}.png").resolve(), link.parent.resolve()), link)
    return target


def run_rig_sfm(images_dir: Path, index: ImageIndex, work: Path, config: SfmConfig,
                progress: Progress = no_progress, log=None) -> tuple[Attempt, pycolmap.Reconstruction | None]:
    work.mkdir(parents=True, exist_ok=True)
    database = work / "database.db"
    database.unlink(missing_ok=True)
    layout_dir = work / "views"
    mapping = link_rig_layout(images_dir, index, layout_dir)
    attempt = Attempt(strategy="rig", total=len(index.images))
    _, params = view_camera_params(index, images_dir)

    progress("features", 0, len(mapping), "SIFT on views")
    started = time.monotonic()
    steps.extract_sift(database, layout_dir, sorted(mapping), camera_model="PINHOLE", camera_params=params,
                       camera_mode=pycolmap.CameraMode.PER_FOLDER, max_num_features=config.max_features,
                       mask_dir=link_rig_masks(images_dir, mapping, work / "view_masks"))
    db = pycolmap.Database.open(database)
    try:
        pycolmap.apply_rig_config([build_rig_config(index.views)], db)
    finally:
        db.close()
    attempt.timings["features"] = time.monotonic() - started

    progress("matching", 0, 1, "views of neighbouring frames")
    started = time.monotonic()
    frames = {frame: {view: _rig_name(view, frame) for view in names}
              for frame, names in index.frames().items()}
    pairs = cross_frame_view_pairs(frames, index.views, config.view_frame_overlap, config.view_max_angle_deg)
    steps.match_listed_pairs(database, pairs, work / "pairs.txt")
    attempt.timings["matching"] = time.monotonic() - started
    attempt.note = f"{len(pairs)} view pairs"

    progress("mapping", 0, 1, "rig")
    started = time.monotonic()
    models, _ = map_models(config, database, layout_dir, work / "models", fixed_intrinsics=True, fixed_rig=True)
    attempt.timings["mapping"] = time.monotonic() - started
    attempt.seconds = sum(attempt.timings.values())
    best = summarise(attempt, models)
    if best is not None:
        rename_images(best, mapping)
    if log:
        log.info("rig: %d/%d views registered in %d model(s), %d points, %.1f s", attempt.registered,
                 attempt.total, attempt.models, attempt.points3d, attempt.seconds)
    return attempt, best


def _rig_name(view: str, frame: int) -> str:
    from .rig import rig_image_name
    return rig_image_name(view, frame)
