"""Training views and initial points from the batch's COLMAP sparse model.

Undistortion: gsplat's rasterizer and ours model a pinhole camera, while SfM on
ordinary video estimates radial distortion (SIMPLE_RADIAL). Rather than ignore it, any
non-pinhole model goes through ``pycolmap.undistort_images`` into the batch's scratch
space first (the standard COLMAP undistorter: about 0.4 s for 21 images of 640x480), and
training reads the undistorted PINHOLE model and images. Pinhole models are read as they
are.

Masks: where the frames step wrote ``images/operator_masks/<name>.png`` (360 video: the operator,
the stick, the nadir), those pixels are kept out of training and scoring (``View.masked``).

Hold-out: images sorted by name; every ``eval_every``-th one (index 0, 8, 16, ...) is a
test view, as gsplat's COLMAP parser does.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from onyx_tools.errors import ToolError
from onyx_tools.layout import OPERATOR_MASKS, BatchLayout

from .render import Camera

MIN_POINTS = 100
MIN_IMAGES = 2
PINHOLE_MODELS = ("PINHOLE", "SIMPLE_PINHOLE")
MODEL_FILES = ("cameras", "images", "points3D")


@dataclass
class View:
    name: str
    image: torch.Tensor    # [H, W, 3] float32 in [0, 1]
    K: torch.Tensor        # [3, 3] intrinsics at the training resolution
    viewmat: torch.Tensor  # [4, 4] world -> camera (OpenCV axes, as COLMAP)
    mask: torch.Tensor | None = None  # [H, W, 1] bool, True where the image shows the scene

    @property
    def width(self) -> int:
        return int(self.image.shape[1])

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def camera(self) -> Camera:
        return Camera(self.K, self.viewmat, self.width, self.height)

    def to(self, device: torch.device | str) -> "View":
        return View(self.name, self.image.to(device), self.K.to(device), self.viewmat.to(device),
                    None if self.mask is None else self.mask.to(device))

    def masked(self, rendered: torch.Tensor) -> torch.Tensor:
        """``rendered`` with the view's own pixels where it is masked: no loss and no gradient there."""
        return rendered if self.mask is None else torch.where(self.mask, rendered, self.image)


@dataclass
class Scene:
    train: list[View]
    test: list[View]
    points: torch.Tensor  # [P, 3] sparse model points (world)
    colors: torch.Tensor  # [P, 3] their colours in [0, 1]
    scene_scale: float    # how far the cameras spread, for the means learning rate and densification
    source_width: int     # the undownscaled size of the first view's camera
    source_height: int
    undistorted: bool

    @property
    def resolution(self) -> str:
        view = (self.train or self.test)[0]
        return f"{view.width}x{view.height}"


def _has_model(folder: Path) -> bool:
    return all((folder / f"{name}.bin").is_file() or (folder / f"{name}.txt").is_file() for name in MODEL_FILES)


def read_sparse_model(layout: BatchLayout):
    """The batch's sparse model, checked: a ToolError names what is missing and what to do."""
    import pycolmap

    folder = layout.sparse_model
    if not _has_model(folder):
        raise ToolError(
            f"no sparse model at {folder} (cameras/images/points3D .bin): materialise sparse_model first")
    try:
        model = pycolmap.Reconstruction(folder)
    except Exception as error:  # pycolmap raises plain RuntimeErrors for damaged files
        raise ToolError(f"the sparse model at {folder} cannot be read ({error}): materialise sparse_model again") from None
    registered = [image for image in model.images.values() if image.has_pose]
    if len(registered) < MIN_IMAGES:
        raise ToolError(
            f"the sparse model at {folder} has {len(registered)} registered image(s); splat training needs at "
            f"least {MIN_IMAGES}: check the frames and materialise sparse_model again")
    if model.num_points3D() < MIN_POINTS:
        raise ToolError(
            f"the sparse model at {folder} has only {model.num_points3D()} 3D points; splat training needs at "
            f"least {MIN_POINTS} to start from: use more or sharper frames, or another matcher, and materialise "
            "sparse_model again")
    if not layout.images.is_dir():
        raise ToolError(f"the images folder {layout.images} is missing: materialise frames first")
    missing = [image.name for image in registered if not (layout.images / image.name).is_file()]
    if missing:
        raise ToolError(
            f"{len(missing)} image(s) named in the sparse model are missing from {layout.images} "
            f"(e.g. {', '.join(missing[:3])}): materialise frames and sparse_model again")
    return model


@contextmanager
def pinhole_model(layout: BatchLayout, model) -> Iterator[tuple[object, Path, bool]]:
    """Yield (model, image folder, undistorted?) with pinhole cameras only; scratch is removed afterwards."""
    import pycolmap

    if all(camera.model.name in PINHOLE_MODELS for camera in model.cameras.values()):
        yield model, layout.images, False
        return
    scratch = layout.work / f"gsplat-undistorted-{uuid.uuid4().hex[:8]}"
    scratch.parent.mkdir(parents=True, exist_ok=True)
    try:
        pycolmap.undistort_images(scratch, layout.sparse_model, layout.images)
        yield pycolmap.Reconstruction(scratch / "sparse"), scratch / "images", True
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def intrinsics(camera) -> np.ndarray:
    fx, fy, cx, cy = camera.focal_length_x, camera.focal_length_y, camera.principal_point_x, camera.principal_point_y
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])


def load_view(image, camera, image_folder: Path, downscale: int) -> View:
    bgr = cv2.imread(str(image_folder / image.name), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ToolError(f"image {image.name} cannot be decoded: materialise frames again")
    height, width = bgr.shape[:2]
    new_w, new_h = max(1, round(width / downscale)), max(1, round(height / downscale))
    if (new_w, new_h) != (width, height):
        bgr = cv2.resize(bgr, (new_w, new_h), interpolation=cv2.INTER_AREA)
    K = intrinsics(camera)
    # COLMAP puts pixel centres at +0.5, so scaling the whole row by the size ratio is exact.
    K[0] *= new_w / camera.width
    K[1] *= new_h / camera.height
    viewmat = np.eye(4)
    viewmat[:3, :4] = image.cam_from_world().matrix()
    rgb = np.ascontiguousarray(bgr[:, :, ::-1]).astype(np.float32) / 255.0
    mask = None
    mask_file = image_folder / OPERATOR_MASKS / f"{image.name}.png"
    if mask_file.is_file():
        keep = cv2.imread(str(mask_file), cv2.IMREAD_GRAYSCALE)
        if keep is not None and keep.shape != (new_h, new_w):
            keep = cv2.resize(keep, (new_w, new_h), interpolation=cv2.INTER_NEAREST)
        if keep is not None and (keep < 128).any():
            mask = torch.from_numpy(keep >= 128)[:, :, None]
    return View(image.name, torch.from_numpy(rgb), torch.from_numpy(K).float(), torch.from_numpy(viewmat).float(),
                mask)


def camera_spread(viewmats: list[torch.Tensor]) -> float:
    """gsplat's scene scale: 1.1 x the largest camera distance from the cameras' mean centre."""
    centres = torch.stack([torch.linalg.inv(v.double())[:3, 3] for v in viewmats])
    spread = float(torch.linalg.norm(centres - centres.mean(0), dim=1).max()) * 1.1
    return spread if spread > 0 else 1.0


def load_scene(layout: BatchLayout, pick_downscale: Callable[[int, int], int], eval_every: int) -> Scene:
    """Read the sparse model, undistort if needed, load and downscale the images, split train/test.

    ``pick_downscale(width, height)`` chooses the integer factor from the first (undistorted) camera's size.
    """
    model = read_sparse_model(layout)
    with pinhole_model(layout, model) as (pinhole, image_folder, undistorted):
        images = sorted((im for im in pinhole.images.values() if im.has_pose), key=lambda im: im.name)
        first_camera = pinhole.cameras[images[0].camera_id]
        factor = pick_downscale(first_camera.width, first_camera.height)
        views = [load_view(im, pinhole.cameras[im.camera_id], image_folder, factor) for im in images]
        xyz = np.array([p.xyz for p in pinhole.points3D.values()], dtype=np.float32)
        rgb = np.array([p.color for p in pinhole.points3D.values()], dtype=np.float32) / 255.0
    is_test = [eval_every > 0 and i % eval_every == 0 for i in range(len(views))]
    train = [v for v, test in zip(views, is_test) if not test]
    test = [v for v, test in zip(views, is_test) if test]
    return Scene(train=train, test=test, points=torch.from_numpy(xyz), colors=torch.from_numpy(rgb),
                 scene_scale=camera_spread([v.viewmat for v in views]), source_width=int(first_camera.width),
                 source_height=int(first_camera.height),
                 undistorted=undistorted)
