"""Keep/exclude masks from SegFormer: 255 keep, 0 exclude (the predicted class is one of ``classes``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
from onyx_tools.errors import ToolError

from .images import EXCLUDE, KEEP
from .model import Preprocessing


def read_rgb(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ToolError(f"cannot read image {path}: the file is damaged; materialise the frames asset again")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def preprocess(images: Sequence[np.ndarray], prep: Preprocessing) -> torch.Tensor:
    """RGB uint8 images of any sizes -> a normalised (B, 3, H, W) float batch at the model's input size."""
    height, width = prep.size
    mean = np.asarray(prep.mean, np.float32) * 255.0
    std = np.asarray(prep.std, np.float32) * 255.0
    batch = np.stack([
        (cv2.resize(img, (width, height), interpolation=cv2.INTER_LINEAR).astype(np.float32) - mean) / std
        for img in images
    ])
    return torch.from_numpy(batch).permute(0, 3, 1, 2).contiguous()


def exclusion_from_logits(logits: torch.Tensor, size: tuple[int, int], classes: Sequence[int],
                          chunk: int = 16) -> np.ndarray:
    """(C, h, w) logits -> uint8 (H, W) mask: 0 where argmax (after bilinear upsampling) is in ``classes``.

    Upsamples ``chunk`` channels at a time and keeps a running argmax, so a 2048x2048 frame does not
    need 150 full-size logit planes at once. Same result as interpolate-then-argmax.
    """
    height, width = size
    best_value = torch.full((height, width), -torch.inf, device=logits.device)
    best_index = torch.zeros((height, width), dtype=torch.long, device=logits.device)
    for start in range(0, logits.shape[0], chunk):
        part = torch.nn.functional.interpolate(logits[None, start:start + chunk].float(), size=(height, width),
                                               mode="bilinear", align_corners=False)[0]
        value, index = part.max(dim=0)
        better = value > best_value
        best_value = torch.where(better, value, best_value)
        best_index = torch.where(better, index + start, best_index)
    excluded = torch.isin(best_index, torch.as_tensor(list(classes), device=logits.device, dtype=torch.long))
    return np.where(excluded.cpu().numpy(), EXCLUDE, KEEP).astype(np.uint8)


def _batches(items: Sequence[Path], size: int) -> Iterator[Sequence[Path]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


@torch.inference_mode()
def predict_masks(model, images: Sequence[Path], prep: Preprocessing, classes: Sequence[int], *,
                  batch_size: int = 4, device: torch.device | None = None,
                  on_batch: Callable[[int, int], None] | None = None) -> Iterator[tuple[Path, np.ndarray]]:
    """Yield (image path, mask) for every image, in order, running the model ``batch_size`` at a time."""
    device = device or next(model.parameters()).device
    num_labels = int(model.config.num_labels)
    bad = [c for c in classes if c >= num_labels]
    if bad:
        raise ToolError(f"classes {bad} do not exist in a model with {num_labels} labels: "
                        "use ADE20K ids (sky 2, person 12, water 21, sea 26, boat 76)")
    done = 0
    for group in _batches(images, batch_size):
        rgb = [read_rgb(path) for path in group]
        logits = model(pixel_values=preprocess(rgb, prep).to(device)).logits
        for path, img, lg in zip(group, rgb, logits):
            yield path, exclusion_from_logits(lg, img.shape[:2], classes)
        done += len(group)
        if on_batch:
            on_batch(done, len(images))
