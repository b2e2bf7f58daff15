"""What a person wants to see of a sparse model: figures for metadata and a camera-path picture."""

from __future__ import annotations

from onyx_tools import native_order  # noqa: F401  (before pycolmap: see onyx_tools/native_order.py)

import os
from pathlib import Path

import numpy as np
import pycolmap


def model_figures(reconstruction: pycolmap.Reconstruction, total: int) -> dict:
    registered = reconstruction.num_reg_images()
    has_points = reconstruction.num_points3D() > 0
    return {
        "registered": registered,
        "total": total,
        "registered_ratio": round(registered / total, 4) if total else 0.0,
        "points3d": reconstruction.num_points3D(),
        "mean_reprojection_error": round(float(reconstruction.compute_mean_reprojection_error()), 4)
        if has_points else 0.0,
        "mean_track_length": round(float(reconstruction.compute_mean_track_length()), 3) if has_points else 0.0,
    }


def camera_centres(reconstruction: pycolmap.Reconstruction) -> tuple[list[str], np.ndarray]:
    """Registered image names and their centres, in name (capture) order."""
    images = sorted((img for img in reconstruction.images.values() if img.has_pose), key=lambda img: img.name)
    return [img.name for img in images], np.array([np.array(img.projection_center(), dtype=float) for img in images]).reshape(-1, 3)


def model_poses(reconstruction: pycolmap.Reconstruction) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Registered image name -> (cam_from_world R, centre), the shape ``onyx_tools.pose_score`` scores."""
    poses = {}
    for image in reconstruction.images.values():
        if image.has_pose:
            pose = image.cam_from_world()  # kept alive while read (pycolmap hands out views)
            poses[image.name] = (np.array(pose.rotation.matrix(), dtype=float),
                                 np.array(image.projection_center(), dtype=float))
    return poses


def up_direction(reconstruction: pycolmap.Reconstruction) -> np.ndarray:
    """World 'up' as the mean of the cameras' up axes (-y): hand-held and 360 frames are mostly upright."""
    ups = []
    for img in reconstruction.images.values():
        if img.has_pose:
            # keep the pose object alive while reading it: pycolmap hands out views into temporaries
            pose = img.cam_from_world()
            ups.append(np.array(pose.rotation.matrix(), dtype=float).T @ np.array([0.0, -1.0, 0.0]))
    up = np.mean(ups, axis=0) if ups else np.array([0.0, -1.0, 0.0])
    norm = np.linalg.norm(up)
    return up / norm if norm > 1e-9 else np.array([0.0, -1.0, 0.0])


def plot_camera_path(reconstruction: pycolmap.Reconstruction, path: Path, title: str = "") -> None:
    """Top-down view (looking along -up) of the sparse points with the camera centres in order."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    up = up_direction(reconstruction)
    # an orthonormal basis of the ground plane
    helper = np.array([1.0, 0.0, 0.0]) if abs(up[0]) < 0.9 else np.array([0.0, 0.0, 1.0])
    axis_a = np.cross(up, helper)
    axis_a /= np.linalg.norm(axis_a)
    axis_b = np.cross(up, axis_a)
    _, centres = camera_centres(reconstruction)
    points = np.array([np.array(p.xyz, dtype=float) for p in reconstruction.points3D.values()]).reshape(-1, 3)
    fig, ax = plt.subplots(figsize=(7, 7), dpi=100)
    if len(points):
        # clip far outliers so the cameras stay visible
        lo, hi = np.percentile(points, 2, axis=0), np.percentile(points, 98, axis=0)
        inside = np.all((points >= lo) & (points <= hi), axis=1)
        shown = points[inside]
        ax.scatter(shown @ axis_a, shown @ axis_b, s=0.5, c="0.6", alpha=0.5, linewidths=0)
    if len(centres):
        ax.plot(centres @ axis_a, centres @ axis_b, "-", color="tab:blue", linewidth=1)
        ax.scatter(centres @ axis_a, centres @ axis_b, s=8, c=np.arange(len(centres)), cmap="viridis", zorder=3)
        ax.scatter([centres[0] @ axis_a], [centres[0] @ axis_b], s=60, marker="*", c="tab:red", zorder=4,
                   label="first frame")
        ax.legend(loc="upper right")
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_title(title or "camera path over sparse points (top-down)")
    ax.set_xticks([])
    ax.set_yticks([])
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{path.name}")
    fig.savefig(tmp, format="png")
    plt.close(fig)
    os.replace(tmp, path)
