"""Cameras as plain arrays (K, R, t, size, distortion), read from a COLMAP sparse model with pycolmap."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from onyx_tools.errors import ToolError


@dataclass(frozen=True)
class Camera:
    """A pinhole view: x_cam = R @ x_world + t; pixel = K @ distort(x_cam / z).

    Pixel coordinates follow COLMAP: the centre of the top-left pixel is (0.5, 0.5), so a point
    at (u, v) falls in pixel (floor(u), floor(v)). ``dist`` is OpenCV's (k1, k2, p1, p2).
    """

    K: np.ndarray  # (3, 3)
    R: np.ndarray  # (3, 3) world -> camera rotation
    t: np.ndarray  # (3,)
    width: int
    height: int
    dist: np.ndarray = field(default_factory=lambda: np.zeros(4))
    name: str = ""


def _intrinsics(camera) -> tuple[np.ndarray, np.ndarray]:
    """K and (k1, k2, p1, p2) of a pycolmap camera; radial-tangential models only."""
    model = camera.model_name
    p = np.asarray(camera.params, dtype=np.float64)
    dist = np.zeros(4)
    if model == "SIMPLE_PINHOLE":
        f, cx, cy = p
        fx = fy = f
    elif model == "PINHOLE":
        fx, fy, cx, cy = p
    elif model == "SIMPLE_RADIAL":
        f, cx, cy, k1 = p
        fx = fy = f
        dist[0] = k1
    elif model == "RADIAL":
        f, cx, cy, k1, k2 = p
        fx = fy = f
        dist[:2] = k1, k2
    elif model == "OPENCV":
        fx, fy, cx, cy, k1, k2, p1, p2 = p
        dist[:] = k1, k2, p1, p2
    else:
        raise ToolError(
            f"camera model {model} is not supported by the Gaussian filter (it projects pinhole, SIMPLE_RADIAL, "
            "RADIAL and OPENCV cameras): undistort the images to PINHOLE in the sfm step")
    K = np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
    return K, dist


def read_cameras(sparse_dir: Path) -> list[Camera]:
    """Every registered image of the COLMAP model in ``sparse_dir``, sorted by image name."""
    sparse_dir = Path(sparse_dir)
    if not (sparse_dir / "images.bin").is_file() and not (sparse_dir / "images.txt").is_file():
        raise ToolError(f"no COLMAP model in {sparse_dir}: materialise the sparse_model asset of this batch first")
    import pycolmap

    try:
        reconstruction = pycolmap.Reconstruction(str(sparse_dir))
    except Exception as error:  # pycolmap raises plain RuntimeError/ValueError for damaged models
        raise ToolError(f"cannot read the COLMAP model in {sparse_dir} ({error}): "
                        "materialise the sparse_model asset again") from error
    cameras = []
    for image in reconstruction.images.values():
        if not image.has_pose:
            continue
        K, dist = _intrinsics(image.camera)
        pose = image.cam_from_world().matrix()
        cameras.append(Camera(K=K, R=pose[:, :3].copy(), t=pose[:, 3].copy(), width=int(image.camera.width),
                              height=int(image.camera.height), dist=dist, name=image.name))
    if not cameras:
        raise ToolError(f"the COLMAP model in {sparse_dir} has no registered images: run the sparse_model step again")
    return sorted(cameras, key=lambda c: c.name)
