"""360 strategy (b): SfM on the equirectangular frames, then a perspective model of the views.

1. The panoramas go through the ordinary video pipeline with COLMAP's EQUIRECTANGULAR camera
   (params w,h; longitude 0 along +z, +x to the right, -y up: the same axes as
   onyx_tools.spherical, so a panorama's camera frame is the split's panorama frame).
2. Each view's pose follows exactly: cam_from_world_view = R_view_from_pano * cam_from_world_pano.
3. Downstream steps want a perspective model of images/, with points observed in those views:
   SIFT on the views, matches between similar views of neighbouring frames, and COLMAP's point
   triangulation with the derived poses held fixed (no bundle adjustment moves them).
"""

from __future__ import annotations

from onyx_tools import native_order  # noqa: F401  (before pycolmap: see onyx_tools/native_order.py)

import time
from pathlib import Path

import cv2
import numpy as np
import pycolmap

from . import colmap_steps as steps
from .image_index import ImageIndex, operator_masks
from .poses import derive_view_pose
from .rig_sfm import view_camera_params
from .sequence_sfm import run_sequence_sfm
from .config import SfmConfig
from .strategy import Attempt, Progress, no_progress
from .view_pairs import cross_frame_view_pairs


def pano_name(frame: int) -> str:
    return f"pano_{frame:05d}.jpg"


def pano_frame(name: str) -> int:
    return int(Path(name).stem.split("_")[-1])


def derived_view_poses(pano_model: pycolmap.Reconstruction, index: ImageIndex) -> dict[str, pycolmap.Rigid3d]:
    """Image name in images/ -> cam_from_world, for every view of a registered panorama."""
    pano_poses = {}
    for image in pano_model.images.values():
        if image.has_pose:
            pose = image.cam_from_world()
            # copies: pycolmap's arrays may be views into the pose object
            pano_poses[pano_frame(image.name)] = (np.array(pose.rotation.matrix(), dtype=float),
                                                  np.array(pose.translation, dtype=float))
    views = {view.name: view for view in index.views}
    poses = {}
    for entry in index.images:
        if entry.frame in pano_poses and entry.view in views:
            R, t = derive_view_pose(*pano_poses[entry.frame], views[entry.view].yaw_deg,
                                    views[entry.view].pitch_deg)
            poses[entry.name] = pycolmap.Rigid3d(pycolmap.Rotation3d(R), t)
    return poses


def views_model(database: Path, poses: dict[str, pycolmap.Rigid3d]) -> pycolmap.Reconstruction:
    """A reconstruction of the database's cameras and the posed views (no points yet)."""
    reconstruction = pycolmap.Reconstruction()
    db = pycolmap.Database.open(database)
    try:
        for camera in db.read_all_cameras():
            reconstruction.add_camera_with_trivial_rig(camera)
        for image in db.read_all_images():
            if image.name in poses:
                keypoints = db.read_keypoints(image.image_id)
                image.points2D = pycolmap.Point2DList([pycolmap.Point2D(xy) for xy in keypoints[:, :2]])
                reconstruction.add_image_with_trivial_frame(image, poses[image.name])
    finally:
        db.close()
    return reconstruction


def run_spherical_sfm(images_dir: Path, panoramas_dir: Path, index: ImageIndex, work: Path, config: SfmConfig,
                      progress: Progress = no_progress, log=None
                      ) -> tuple[Attempt, pycolmap.Reconstruction | None, list[Attempt]]:
    """Returns the views attempt, the views model (None if no panorama registered) and the panorama attempts."""
    work.mkdir(parents=True, exist_ok=True)
    frames = index.frames()
    names = [pano_name(frame) for frame in frames]
    missing = [name for name in names if not (panoramas_dir / name).is_file()]
    attempt = Attempt(strategy="spherical", total=len(index.images))
    if missing:
        attempt.note = f"{len(missing)} panoramas missing (e.g. panoramas/{missing[0]})"
        return attempt, None, []
    height, width = cv2.imread(str(panoramas_dir / names[0]), cv2.IMREAD_GRAYSCALE).shape[:2]
    pano_masks = operator_masks(panoramas_dir, names)
    panos = run_sequence_sfm(panoramas_dir, names, work / "panoramas", config, progress, log,
                             camera_model="EQUIRECTANGULAR", camera_params=f"{width},{height}", mask_dir=pano_masks)
    for pano_attempt in panos.attempts:
        pano_attempt.strategy = f"spherical:{pano_attempt.strategy}"
    attempt.timings.update({f"panoramas_{k}": v for k, v in panos.timings.items()})
    attempt.note = f"panoramas: {panos.registered}/{len(names)} frames by {panos.strategy or 'nothing'}"
    if panos.registered == 0:
        attempt.seconds = sum(attempt.timings.values())
        return attempt, None, panos.attempts

    poses = derived_view_poses(panos.reconstruction, index)
    database = work / "views.db"
    database.unlink(missing_ok=True)
    _, params = view_camera_params(index, images_dir)
    progress("features", 0, len(index.images), "SIFT on views")
    started = time.monotonic()
    steps.extract_sift(database, images_dir, index.names, camera_model="PINHOLE", camera_params=params,
                       camera_mode=pycolmap.CameraMode.SINGLE, max_num_features=config.max_features,
                       mask_dir=operator_masks(images_dir, index.names))
    attempt.timings["views_features"] = time.monotonic() - started

    progress("matching", 0, 1, "views of neighbouring frames")
    started = time.monotonic()
    pairs = cross_frame_view_pairs(frames, index.views, config.view_frame_overlap, config.view_max_angle_deg)
    steps.match_listed_pairs(database, pairs, work / "view_pairs.txt")
    attempt.timings["views_matching"] = time.monotonic() - started

    progress("triangulation", 0, 1, f"{len(poses)} views with derived poses")
    started = time.monotonic()
    model = views_model(database, poses)
    options = steps.incremental_options(fixed_intrinsics=True)
    output = work / "views_model"
    output.mkdir(parents=True, exist_ok=True)
    model = pycolmap.triangulate_points(model, database, images_dir, output, clear_points=True,
                                        options=options, refine_intrinsics=False)
    attempt.timings["views_triangulation"] = time.monotonic() - started
    attempt.seconds = sum(attempt.timings.values())
    attempt.registered = model.num_reg_images()
    attempt.points3d = model.num_points3D()
    attempt.models = 1
    if log:
        log.info("spherical: %s; %d/%d views posed, %d points triangulated, %.1f s", attempt.note,
                 attempt.registered, attempt.total, attempt.points3d, attempt.seconds)
    return attempt, model, panos.attempts
