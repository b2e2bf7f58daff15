"""Mask generation with a FAKE tiny SegFormer on real frames, and the weights error."""

from __future__ import annotations

import shutil

import cv2
import numpy as np
import pytest
import torch

from onyx_segformer.config import ADE20K_OUTDOOR_EXCLUDE, WEIGHTS_ENV
from onyx_segformer.images import list_images, write_mask
from onyx_segformer.masks import exclusion_from_logits, predict_masks
from onyx_segformer.model import MissingWeightsError, Preprocessing, load_model


def test_masks_for_real_frames(fake_segformer_weights, chair_images, tmp_path):
    images_dir = tmp_path / "images"
    images_dir.mkdir()
    for path in chair_images[:5]:
        shutil.copy(path, images_dir / path.name)
    (images_dir / "index.json").write_text("{}")  # metadata beside the frames, not an image
    images = list_images(images_dir)
    assert [p.name for p in images] == [p.name for p in chair_images[:5]]

    model = load_model(fake_segformer_weights, "fake-tiny", torch.device("cpu"))
    prep = Preprocessing(size=(128, 160))
    progress = []
    out = tmp_path / "masks"
    out.mkdir()
    for path, mask in predict_masks(model, images, prep, list(ADE20K_OUTDOOR_EXCLUDE.values()), batch_size=2,
                                    on_batch=lambda done, total: progress.append((done, total))):
        write_mask(out, path.stem, mask)
    assert progress == [(2, 5), (4, 5), (5, 5)]
    assert sorted(p.stem for p in out.iterdir()) == [p.stem for p in images]
    for image_path in images:
        mask = cv2.imread(str(out / f"{image_path.stem}.png"), cv2.IMREAD_UNCHANGED)
        image = cv2.imread(str(image_path))
        assert mask.dtype == np.uint8 and mask.ndim == 2
        assert mask.shape == image.shape[:2] == (480, 640)
        assert set(np.unique(mask)) <= {0, 255}


def test_every_class_excluded_gives_all_zero(fake_segformer_weights, chair_images):
    model = load_model(fake_segformer_weights, "fake-tiny", torch.device("cpu"))
    (_, mask), = predict_masks(model, chair_images[:1], Preprocessing(size=(64, 64)), list(range(150)))
    assert mask.shape == (480, 640) and not mask.any()


def test_exclusion_follows_upsampled_argmax():
    """Known answer: class 2 (sky) wins the top half, class 5 the bottom; upsampling keeps the border."""
    logits = torch.zeros(150, 4, 6)
    logits[2, :2] = 5.0
    logits[5, 2:] = 5.0
    mask = exclusion_from_logits(logits, (40, 60), classes=[2, 21], chunk=7)  # chunk splits the classes
    assert mask.shape == (40, 60)
    assert (mask[:19] == 0).all() and (mask[21:] == 255).all()
    expected = torch.nn.functional.interpolate(logits[None], size=(40, 60), mode="bilinear",
                                               align_corners=False)[0].argmax(0)
    assert np.array_equal(mask == 0, np.isin(expected.numpy(), [2, 21]))


def test_missing_weights_say_how_to_provide_them(tmp_path):
    with pytest.raises(MissingWeightsError) as missing:
        load_model(tmp_path / "nowhere", "nvidia/segformer-b5-finetuned-ade-640-640", torch.device("cpu"))
    message = str(missing.value)
    assert "does not exist" in message
    assert "build the segformer image" in message and "fetch_weights.py" in message
    assert WEIGHTS_ENV in message and "model_dir" in message
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "config.json").write_text("{}")
    with pytest.raises(MissingWeightsError, match="no model.safetensors"):
        load_model(tmp_path / "empty", "x", torch.device("cpu"))


def test_image_listing_rejects_clashing_stems(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"")
    (tmp_path / "a.png").write_bytes(b"")
    with pytest.raises(Exception, match="share the stem"):
        list_images(tmp_path)


def test_weights_folder_names_its_checkpoint(tmp_path):
    from onyx_segformer.model import saved_model_id

    assert saved_model_id(tmp_path) is None
    (tmp_path / "onyx_model.json").write_text('{"model_id": "nvidia/segformer-b0-finetuned-ade-512-512"}')
    assert saved_model_id(tmp_path) == "nvidia/segformer-b0-finetuned-ade-512-512"
