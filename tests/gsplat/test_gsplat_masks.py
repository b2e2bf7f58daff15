"""Pixels the frames step masked (360: what moves with the camera) teach the splat nothing."""

from __future__ import annotations

import cv2
import numpy as np
import pycolmap
import torch

from onyx_gsplat.dataset import load_view
from onyx_tools.layout import OPERATOR_MASKS


def posed_image(name: str, width: int, height: int):
    camera = pycolmap.Camera(model="PINHOLE", width=width, height=height,
                             params=[50.0, 50.0, width / 2, height / 2])
    camera.camera_id = 1
    model = pycolmap.Reconstruction()
    model.add_camera_with_trivial_rig(camera)
    image = pycolmap.Image(name=name, camera_id=1)
    image.image_id = 1
    model.add_image_with_trivial_frame(image, pycolmap.Rigid3d())
    return model.images[1], model.cameras[1]


def test_masked_pixels_get_no_loss_and_no_gradient(tmp_path):
    rng = np.random.default_rng(0)
    cv2.imwrite(str(tmp_path / "frame_00001_v00.jpg"), rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
    keep = np.full((48, 64), 255, np.uint8)
    keep[30:, 10:40] = 0  # the operator's head at the bottom of the view
    (tmp_path / OPERATOR_MASKS).mkdir()
    cv2.imwrite(str(tmp_path / OPERATOR_MASKS / "frame_00001_v00.jpg.png"), keep)
    image, camera = posed_image("frame_00001_v00.jpg", 64, 48)

    view = load_view(image, camera, tmp_path, downscale=2)
    assert view.mask is not None and view.mask.shape == (24, 32, 1)
    assert not view.mask[20, 10, 0] and view.mask[5, 5, 0]

    rendered = torch.zeros_like(view.image, requires_grad=True)
    loss = torch.abs(view.masked(rendered) - view.image).mean()
    loss.backward()
    grad = rendered.grad.abs().sum(dim=2)
    assert (grad[~view.mask[:, :, 0]] == 0).all() and (grad[view.mask[:, :, 0]] > 0).all()

    # a mask that masks nothing is no mask: every pixel counts
    cv2.imwrite(str(tmp_path / OPERATOR_MASKS / "frame_00001_v00.jpg.png"), np.full((48, 64), 255, np.uint8))
    unmasked = load_view(image, camera, tmp_path, downscale=1)
    assert unmasked.mask is None and unmasked.masked(unmasked.image) is unmasked.image
