"""The undistorted sparse model as plain arrays: the only place that touches pycolmap objects."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class View:
    name: str
    K: np.ndarray          # (3, 3) PINHOLE intrinsics
    R: np.ndarray          # (3, 3) camera-from-world rotation
    t: np.ndarray          # (3,)   camera-from-world translation
    width: int
    height: int
    point_ids: np.ndarray  # (P,) ids of the sparse points this view observes

    @property
    def center(self) -> np.ndarray:
        return -self.R.T @ self.t


@dataclass
class SparseScene:
    views: list[View]
    point_ids: np.ndarray   # (N,)
    points: np.ndarray      # (N, 3) world coordinates
    colors: np.ndarray      # (N, 3) uint8

    def points_of(self, view: View) -> np.ndarray:
        """World coordinates of the sparse points ``view`` observes."""
        index = np.searchsorted(self.point_ids, view.point_ids)
        return self.points[index]

    @property
    def extent(self) -> float:
        """Scene size: the diagonal of the 2-98th percentile box of the sparse points."""
        lo, hi = np.percentile(self.points, [2, 98], axis=0)
        return float(np.linalg.norm(hi - lo))


def load_sparse_scene(model: Path) -> SparseScene:
    import pycolmap

    rec = pycolmap.Reconstruction(str(model))
    ids = np.array(sorted(rec.points3D), dtype=np.int64)
    points = np.array([rec.points3D[i].xyz for i in ids], dtype=np.float64).reshape(-1, 3)
    colors = np.array([rec.points3D[i].color for i in ids], dtype=np.uint8).reshape(-1, 3)
    views = []
    for image_id in sorted(rec.images):
        image = rec.images[image_id]
        if not image.has_pose:
            continue
        camera = rec.cameras[image.camera_id]
        pose = image.cam_from_world()
        observed = np.array([p.point3D_id for p in image.points2D if p.has_point3D()], dtype=np.int64)
        views.append(View(name=image.name, K=np.asarray(camera.calibration_matrix(), dtype=np.float64),
                          R=np.asarray(pose.rotation.matrix(), dtype=np.float64),
                          t=np.asarray(pose.translation, dtype=np.float64),
                          width=int(camera.width), height=int(camera.height),
                          point_ids=np.unique(observed)))
    return SparseScene(views=views, point_ids=ids, points=points, colors=colors)
