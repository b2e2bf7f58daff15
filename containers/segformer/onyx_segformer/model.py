"""Loading SegFormer from a local folder only: weights are baked into the image, never fetched at run time."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from onyx_tools.errors import ToolError
from onyx_tools.gpu import pick_device

from .config import WEIGHTS_ENV

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DEFAULT_INPUT_SIZE = (512, 512)
_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")


class MissingWeightsError(ToolError):
    pass


@dataclass(frozen=True)
class Preprocessing:
    """What the checkpoint's image processor does: resize (squash), scale to [0, 1], normalise."""

    size: tuple[int, int] = DEFAULT_INPUT_SIZE  # (height, width)
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    @classmethod
    def from_folder(cls, folder: Path) -> "Preprocessing":
        """Read ``preprocessor_config.json`` (written by fetch_weights.py) when the folder has one."""
        path = Path(folder) / "preprocessor_config.json"
        if not path.is_file():
            return cls()
        data = json.loads(path.read_text(encoding="utf-8"))
        size = data.get("size") or {}
        if isinstance(size, int):
            hw = (size, size)
        else:
            hw = (int(size.get("height", DEFAULT_INPUT_SIZE[0])), int(size.get("width", DEFAULT_INPUT_SIZE[1])))
        return cls(size=hw, mean=tuple(data.get("image_mean", IMAGENET_MEAN)),
                   std=tuple(data.get("image_std", IMAGENET_STD)))


def missing_weights_message(model_dir: Path, model_id: str, detail: str) -> str:
    return (
        f"SegFormer weights for {model_id} not found in {model_dir} ({detail}). Weights are never downloaded "
        f"at run time. Provide them one of two ways: build the segformer image, which downloads them at build "
        f"time (containers/segformer/Dockerfile runs fetch_weights.py); or, on the local runner, run "
        f"`python containers/segformer/fetch_weights.py --model-id {model_id} --out DIR` on a machine with "
        f"network access (it calls save_pretrained) and set {WEIGHTS_ENV}=DIR or the step's model_dir param to DIR."
    )


def saved_model_id(model_dir: str | os.PathLike) -> str | None:
    """The checkpoint id fetch_weights.py recorded in ``onyx_model.json``, if the folder has one."""
    path = Path(model_dir) / "onyx_model.json"
    try:
        return str(json.loads(path.read_text(encoding="utf-8"))["model_id"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def resolve_device(device: str) -> torch.device:
    return torch.device(pick_device(device, "segformer"))


def load_model(model_dir: str | os.PathLike, model_id: str, device: torch.device):
    """SegformerForSemanticSegmentation from ``model_dir`` (a save_pretrained folder), in eval mode."""
    from transformers import SegformerForSemanticSegmentation

    folder = Path(model_dir)
    if not folder.is_dir():
        raise MissingWeightsError(missing_weights_message(folder, model_id, "the folder does not exist"))
    if not (folder / "config.json").is_file():
        raise MissingWeightsError(missing_weights_message(folder, model_id, "no config.json"))
    if not any((folder / name).is_file() for name in _WEIGHT_FILES):
        raise MissingWeightsError(missing_weights_message(folder, model_id, "no model.safetensors"))
    try:
        model = SegformerForSemanticSegmentation.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError) as error:
        raise MissingWeightsError(missing_weights_message(folder, model_id, f"unreadable: {error}")) from error
    return model.to(device).eval()
