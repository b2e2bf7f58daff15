"""The captured camera path: where the page opens, which way is up, where the fly-through goes.

Cameras come from the batch's sparse model, in capture order (``images/index.json``'s
timestamps; for a 360 video the forward view of each panorama). Conventions are COLMAP's:
``R``, ``t`` map world to camera (x right, y down, z forward), ``K`` is a pinhole.

Up: people hold a camera level, so the mean of the cameras' own up axes (-y) is gravity's
opposite; the roll of single frames averages out. ``viewer_rotation`` turns the
reconstruction so that up is +Y and the first camera looks along -Z, the frame the web
viewers (PlayCanvas, glTF/three.js) take as upright and forward.

Smoothing: camera centres and orientations are averaged over a Gaussian window in capture
time (``sigma_s``), then interpolated at the video's frame times (a cubic spline through the
centres, a rotation spline through the orientations), so hand shake and the jumps between
kept frames do not reach the video.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from onyx_tools.errors import ToolError
from onyx_tools.layout import BatchLayout

MIN_CAMERAS = 2
UNTIMED_INTERVAL_S = 0.5  # frames without an ingest index (images added by hand): this far apart
WIDE_360_ASPECT = 16 / 9  # a 360 capture has no frame of its own: its forward view, cropped to this


@dataclass(frozen=True)
class Camera:
    name: str
    time_s: float
    R: np.ndarray    # (3, 3) world -> camera
    t: np.ndarray    # (3,)
    K: np.ndarray    # (3, 3) pinhole at width x height
    width: int
    height: int

    @property
    def centre(self) -> np.ndarray:
        return -self.R.T @ self.t

    @property
    def viewmat(self) -> np.ndarray:
        view = np.eye(4)
        view[:3, :3], view[:3, 3] = self.R, self.t
        return view

    @property
    def vertical_fov_deg(self) -> float:
        return float(np.degrees(2.0 * np.arctan(self.height / (2.0 * self.K[1, 1]))))

    @property
    def long_side_fov_deg(self) -> float:
        """The field of view across the longer side of the frame (what the SuperSplat viewer's fov means)."""
        if self.height >= self.width:
            return self.vertical_fov_deg
        return float(np.degrees(2.0 * np.arctan(self.width / (2.0 * self.K[0, 0]))))

    def resized(self, width: int, height: int) -> "Camera":
        """The same camera seen at another resolution (pixel centres at +0.5, as COLMAP)."""
        K = self.K.copy()
        K[0] *= width / self.width
        K[1] *= height / self.height
        return Camera(self.name, self.time_s, self.R, self.t, K, width, height)


def _pinhole(camera) -> np.ndarray:
    fx, fy = camera.focal_length_x, camera.focal_length_y
    return np.array([[fx, 0.0, camera.principal_point_x], [0.0, fy, camera.principal_point_y], [0.0, 0.0, 1.0]])


def _forward_view(index: dict) -> str | None:
    """The 360 view that looks ahead: level (smallest pitch), then the smallest yaw."""
    views = index.get("views") or []
    if not views:
        return None
    return min(views, key=lambda v: (abs(v["pitch_deg"]), v["yaw_deg"] % 360))["name"]


def _capture_times(layout: BatchLayout) -> tuple[dict[str, float], str | None]:
    """Image name -> capture time (s), and the 360 forward view's name (None for an ordinary video)."""
    if not layout.image_index.is_file():
        return {}, None
    try:
        index = json.loads(layout.image_index.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ToolError(f"{layout.image_index} cannot be read ({error}): materialise frames again") from None
    forward = _forward_view(index)
    times = {entry["name"]: float(entry["timestamp_s"]) for entry in index.get("images", [])
             if "timestamp_s" in entry and (forward is None or entry.get("view") == forward)}
    return times, forward


def captured_path(layout: BatchLayout) -> list[Camera]:
    """The registered cameras in capture order; a ToolError says what is missing."""
    import pycolmap

    folder = layout.sparse_model
    if not (folder / "images.bin").is_file() and not (folder / "images.txt").is_file():
        raise ToolError(f"no sparse model at {folder}: materialise sparse_model for this batch first")
    try:
        model = pycolmap.Reconstruction(str(folder))
    except Exception as error:  # pycolmap raises plain RuntimeErrors for damaged files
        raise ToolError(f"the sparse model at {folder} cannot be read ({error}): materialise sparse_model again") from None
    times, forward = _capture_times(layout)
    registered = sorted((image for image in model.images.values() if image.has_pose), key=lambda im: im.name)
    if times:
        registered = [image for image in registered if image.name in times]
    cameras = []
    for order, image in enumerate(registered):
        camera = model.cameras[image.camera_id]
        pose = image.cam_from_world().matrix()
        cameras.append(Camera(
            name=image.name, time_s=times.get(image.name, order * UNTIMED_INTERVAL_S),
            R=np.asarray(pose[:, :3], dtype=np.float64), t=np.asarray(pose[:, 3], dtype=np.float64),
            K=_pinhole(camera), width=int(camera.width), height=int(camera.height)))
    cameras.sort(key=lambda c: (c.time_s, c.name))
    if len(cameras) < MIN_CAMERAS:
        raise ToolError(f"the sparse model at {folder} has {len(cameras)} registered camera(s) on the capture "
                        f"path; a fly-through needs at least {MIN_CAMERAS}: materialise sparse_model again")
    if forward is not None:  # a square 90-degree view: show it as a wide frame of the same focal length
        height = int(round(cameras[0].width / WIDE_360_ASPECT))
        cameras = [Camera(c.name, c.time_s, c.R, c.t, _recentred(c.K, c.height, height), c.width, height)
                   for c in cameras]
    return cameras


def _recentred(K: np.ndarray, old_height: int, new_height: int) -> np.ndarray:
    K = K.copy()
    K[1, 2] -= (old_height - new_height) / 2.0
    return K


def gravity_up(cameras: list[Camera]) -> np.ndarray:
    """Unit 'up' in reconstruction coordinates: the mean of the cameras' up axes (their -y)."""
    ups = np.stack([-c.R[1] for c in cameras])  # row 1 of world->camera = the camera's y axis in the world
    mean = ups.mean(axis=0)
    norm = np.linalg.norm(mean)
    if norm < 1e-6:
        raise ToolError("the cameras' up directions cancel out (a capture turned upside down half the time): "
                        "the scene's up direction cannot be told from the camera path")
    return mean / norm


def viewer_rotation(cameras: list[Camera]) -> np.ndarray:
    """Rotation from reconstruction to viewer coordinates: up is +Y, the first camera looks along -Z."""
    up = gravity_up(cameras)
    forward = cameras[0].R[2]  # the first camera's viewing direction in the world
    level = forward - np.dot(forward, up) * up
    if np.linalg.norm(level) < 1e-6:  # looking straight up or down: any horizontal direction will do
        level = np.cross(up, [1.0, 0.0, 0.0] if abs(up[0]) < 0.9 else [0.0, 0.0, 1.0])
    back = -level / np.linalg.norm(level)  # viewer +Z points back, towards the viewer
    right = np.cross(up, back)
    return np.stack([right, up, back])  # rows: the viewer's axes in reconstruction coordinates


def path_duration(cameras: list[Camera]) -> float:
    return float(cameras[-1].time_s - cameras[0].time_s)


def frame_times(cameras: list[Camera], fps: float) -> np.ndarray:
    """The fly-through's frame times: the captured path's span at ``fps``, both ends included."""
    count = int(np.floor(path_duration(cameras) * fps + 1e-6)) + 1
    return cameras[0].time_s + np.arange(count) / fps


def _reflected(keys: np.ndarray, centres: np.ndarray, rotations):
    """The path extended past both ends by its odd reflection, so that a smoothing window at an end
    is not pulled inwards: a steady motion stays steady up to its end."""
    from scipy.spatial.transform import Rotation

    head = np.arange(len(keys) - 1, 0, -1)
    tail = np.arange(len(keys) - 2, -1, -1)
    first, last = rotations[0], rotations[-1]
    parts = [(2 * keys[0] - keys[head], 2 * centres[0] - centres[head], first * rotations[head].inv() * first),
             (keys, centres, rotations),
             (2 * keys[-1] - keys[tail], 2 * centres[-1] - centres[tail], last * rotations[tail].inv() * last)]
    return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]),
            Rotation.concatenate([p[2] for p in parts]))


def smoothed_poses(cameras: list[Camera], times: np.ndarray, sigma_s: float) -> list[tuple[np.ndarray, np.ndarray]]:
    """(R, t) world->camera at ``times`` along the smoothed captured path."""
    from scipy.interpolate import CubicSpline
    from scipy.spatial.transform import Rotation, RotationSpline

    keys = np.array([c.time_s for c in cameras])
    keys, unique = np.unique(keys, return_index=True)  # two images at one instant: keep the first
    chosen = [cameras[i] for i in unique]
    centres = np.stack([c.centre for c in chosen])
    rotations = Rotation.from_matrix(np.stack([c.R.T for c in chosen]))  # camera -> world
    if len(chosen) == 1:
        return [(chosen[0].R, chosen[0].t)] * len(times)
    if sigma_s > 0 and len(chosen) > 2:
        all_keys, all_centres, all_rotations = _reflected(keys, centres, rotations)
        weights = np.exp(-0.5 * ((keys[:, None] - all_keys[None, :]) / sigma_s) ** 2)
        weights /= weights.sum(axis=1, keepdims=True)
        centres = weights @ all_centres
        rotations = Rotation.concatenate([all_rotations.mean(weights=row) for row in weights])
    clamped = np.clip(times, keys[0], keys[-1])
    if len(chosen) > 2:
        path = CubicSpline(keys, centres, bc_type="natural")(clamped)
    else:
        path = np.stack([np.interp(clamped, keys, centres[:, axis]) for axis in range(3)], axis=1)
    orientation = RotationSpline(keys, rotations)(clamped).as_matrix()  # camera -> world
    poses = []
    for R_wc, centre in zip(orientation, path):
        R = R_wc.T
        poses.append((R, -R @ centre))
    return poses


def look_target(camera: Camera, points: np.ndarray) -> np.ndarray:
    """A point straight ahead of ``camera`` at the median depth of the scene it sees (the orbit centre)."""
    depth = points @ camera.R[2] + camera.t[2]
    ahead = depth[depth > 0]
    distance = float(np.median(ahead)) if len(ahead) else 1.0
    return camera.centre + camera.R[2] * distance


def even(value: float) -> int:
    """H.264 in 4:2:0 needs even frame sizes."""
    return max(2, int(round(value / 2.0)) * 2)


def video_size(camera: Camera, width: int | None) -> tuple[int, int]:
    """The fly-through's frame size: the capture's aspect ratio at ``width`` (default: the capture's)."""
    target = width or camera.width
    return even(target), even(target * camera.height / camera.width)

