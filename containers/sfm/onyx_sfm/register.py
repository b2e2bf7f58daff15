"""Frames registered into a finished model by absolute pose against its points, without remapping.

Used for the frames between keyframes (``keyframes.py``): the keyframes' model is already
adjusted, and a frame between two of them sees its points from nearly the same place, so its pose
is fixed well by the 2D-3D matches alone (LO-RANSAC P3P and a pose-only refinement, COLMAP's own
registration step without the local bundle adjustment that follows it in the mapper). The cost is
linear in the frames; the incremental mapper's per-frame adjustment grows with the length of the
tracks, and tracks grow with the frame rate.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pycolmap

# COLMAP's own thresholds for registering a frame (IncrementalMapper: abs_pose_min_num_inliers,
# abs_pose_min_inlier_ratio).
MIN_INLIERS = 30
MIN_INLIER_RATIO = 0.25


def register_frames(database: Path, model: pycolmap.Reconstruction, names: list[str]) -> list[str]:
    """Register the ``names`` the model lacks, in the given (capture) order, into ``model`` (in place).

    A frame's 2D-3D matches come from its verified pairs with frames already in the model, the ones
    registered here included, so a frame matched only with its neighbours still finds the points.
    Each registered frame observes the points it matched as inliers (it adds no new points), so
    dense steps later see it as a view of them. Returns the names registered.
    """
    db = pycolmap.Database.open(database)
    try:
        images = {image.name: image for image in db.read_all_images()}
        partners: dict[int, list[int]] = {}
        pair_ids, _ = db.read_two_view_geometry_num_inliers()
        for pair_id in pair_ids:
            first, second = pycolmap.pair_id_to_image_pair(pair_id)
            partners.setdefault(first, []).append(second)
            partners.setdefault(second, []).append(first)
        registered: list[str] = []
        for name in names:
            image = images.get(name)
            if image is None or (model.exists_image(image.image_id) and model.image(image.image_id).has_pose):
                continue
            if _register(db, model, image, partners.get(image.image_id, [])):
                registered.append(name)
        return registered
    finally:
        db.close()


def _register(db: pycolmap.Database, model: pycolmap.Reconstruction, image: pycolmap.Image,
              partners: list[int]) -> bool:
    keypoints = np.asarray(db.read_keypoints(image.image_id))[:, :2].astype(np.float64)
    point_of: dict[int, int] = {}  # keypoint index -> point3D id
    for other_id in partners:
        if not (model.exists_image(other_id) and model.image(other_id).has_pose):
            continue
        matches = np.asarray(db.read_two_view_geometry(image.image_id, other_id).inlier_matches)
        other = model.image(other_id)
        for mine, theirs in matches:
            observed = other.points2D[int(theirs)]
            if observed.has_point3D() and int(mine) not in point_of:
                point_of[int(mine)] = observed.point3D_id
    if len(point_of) < MIN_INLIERS:
        return False
    indices = np.fromiter(point_of.keys(), dtype=np.int64)
    points3D = np.array([model.point3D(point_of[int(i)]).xyz for i in indices])
    camera = model.camera(image.camera_id)
    estimate = pycolmap.estimate_and_refine_absolute_pose(keypoints[indices], points3D, camera)
    if estimate is None:
        return False
    inliers = np.asarray(estimate["inlier_mask"], bool)
    if inliers.sum() < MIN_INLIERS or inliers.mean() < MIN_INLIER_RATIO:
        return False
    frame = db.read_frame(image.frame_id)
    frame.rig_from_world = estimate["cam_from_world"]  # single-camera rig: the camera is the rig
    model.add_frame(frame)
    new = pycolmap.Image(name=image.name, keypoints=keypoints, camera_id=image.camera_id, image_id=image.image_id)
    new.frame_id = image.frame_id
    model.add_image(new)
    model.register_frame(image.frame_id)
    for index in indices[inliers]:
        model.add_observation(point_of[int(index)], pycolmap.TrackElement(image.image_id, int(index)))
    return True
