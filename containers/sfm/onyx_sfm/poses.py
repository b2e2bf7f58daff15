"""Pose algebra of 360 views: pure numpy, exact, independent of COLMAP.

Conventions: a pose ``cam_from_world`` is (R, t) with x_cam = R @ x_world + t (COLMAP's).
A perspective view cut from a panorama has R_pano_from_view = spherical.view_rotation(yaw, pitch)
and shares the panorama's centre, so

    cam_from_world_view = R_view_from_pano * cam_from_world_pano
                        = (R_v^T @ R_pano, R_v^T @ t_pano)

The same rotation is the view's ``cam_from_rig`` when a frame's views form a rig whose
frame is the panorama (or, relative to a reference view ref, R_v^T @ R_ref).
"""

from __future__ import annotations

import numpy as np

from onyx_tools.spherical import view_rotation


def view_from_pano(yaw_deg: float, pitch_deg: float) -> np.ndarray:
    """R_view_from_pano of a view turned ``yaw`` right and ``pitch`` up."""
    return view_rotation(yaw_deg, pitch_deg).T


def derive_view_pose(pano_R: np.ndarray, pano_t: np.ndarray, yaw_deg: float,
                     pitch_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """cam_from_world of a view, from its panorama's cam_from_world (same centre, turned axes)."""
    r_vp = view_from_pano(yaw_deg, pitch_deg)
    return r_vp @ np.asarray(pano_R, float), r_vp @ np.asarray(pano_t, float).reshape(3)


def view_from_ref(yaw_deg: float, pitch_deg: float, ref_yaw_deg: float, ref_pitch_deg: float) -> np.ndarray:
    """R_view_from_ref: a view's fixed rotation in a rig whose frame is the reference view's camera."""
    return view_from_pano(yaw_deg, pitch_deg) @ view_rotation(ref_yaw_deg, ref_pitch_deg)


def camera_centre(R: np.ndarray, t: np.ndarray) -> np.ndarray:
    return -np.asarray(R).T @ np.asarray(t).reshape(3)
