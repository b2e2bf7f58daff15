"""The segformer step's parameters (Pipes extras), typed and checked once on entry."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from onyx_tools.errors import ToolError

DEFAULT_MODEL_ID = "nvidia/segformer-b5-finetuned-ade-640-640"
DEFAULT_WEIGHTS_DIR = "/opt/onyx/weights/segformer"
WEIGHTS_ENV = "ONYX_SEGFORMER_WEIGHTS"

# ADE20K (150 classes, 0-based as the nvidia checkpoints' id2label): what outdoor scenes mask out.
# The first version also listed "bird" with id 3, which is *floor* in ADE20K: not repeated here.
ADE20K_OUTDOOR_EXCLUDE: dict[str, int] = {"sky": 2, "person": 12, "water": 21, "sea": 26, "boat": 76}

SPLAT_NAMES = ("splat.ply", "point_cloud.ply")  # gsplat writes the first, MILo the second


@dataclass(frozen=True)
class FilterConfig:
    """Gaussian filtering, the first version's settings."""

    min_camera_kept_fraction: float = 0.05  # drop views whose mask keeps under 5% of pixels
    max_views: int = 50                     # evenly spaced views every Gaussian is projected into
    min_kept_views: int = 2                 # keep a Gaussian landing on a kept pixel in >= this many
    outlier_knn: int = 10                   # 0 turns the outlier step off
    knn_percentile: float = 95.0            # keep mean kNN distance <= this percentile
    centroid_percentile: float = 99.0       # keep distance to the centroid <= this percentile


@dataclass(frozen=True)
class SegformerParams:
    recipe: str
    scene: str = "outdoor"
    model_id: str = DEFAULT_MODEL_ID
    model_dir: str = field(default_factory=lambda: os.environ.get(WEIGHTS_ENV, DEFAULT_WEIGHTS_DIR))
    classes: tuple[int, ...] = tuple(ADE20K_OUTDOOR_EXCLUDE.values())
    batch_size: int = 4
    device: str = "auto"                  # "auto" (CUDA when present), "cpu", "cuda", "cuda:1"
    input_size: tuple[int, int] | None = None  # (height, width) fed to the model; None: the checkpoint's
    splat_name: str | None = None         # output/<recipe>/<splat_name>; None: the first of SPLAT_NAMES
    filter: FilterConfig = FilterConfig()

    @classmethod
    def from_extras(cls, extras: Mapping[str, Any]) -> "SegformerParams":
        recipe = extras.get("recipe")
        if not recipe or not isinstance(recipe, str):
            raise ToolError("segformer needs the 'recipe' parameter (e.g. 'gaussian-proto') to find the splat")
        scene = str(extras.get("scene", "outdoor")).lower()
        if scene not in ("indoor", "outdoor"):
            raise ToolError(f"scene must be 'indoor' or 'outdoor', got {scene!r}")
        classes = extras.get("classes")
        if classes is None:
            classes = tuple(ADE20K_OUTDOOR_EXCLUDE.values())
        elif isinstance(classes, Mapping):  # {"sky": 2, ...} reads better in run config
            classes = tuple(int(v) for v in classes.values())
        else:
            classes = tuple(int(v) for v in classes)
        if any(c < 0 for c in classes):
            raise ToolError(f"classes must be label ids >= 0, got {list(classes)}")
        batch_size = int(extras.get("batch_size") or 4)
        if batch_size < 1:
            raise ToolError(f"batch_size must be >= 1, got {batch_size}")
        input_size = extras.get("input_size")
        if input_size is not None:
            if isinstance(input_size, int):
                input_size = (input_size, input_size)
            input_size = (int(input_size[0]), int(input_size[1]))
        known = {f for f in FilterConfig.__dataclass_fields__}
        filter_overrides = {k: v for k, v in dict(extras.get("filter") or {}).items() if k in known}
        unknown = set(dict(extras.get("filter") or {})) - known
        if unknown:
            raise ToolError(f"unknown filter settings {sorted(unknown)}: use {sorted(known)}")
        return cls(
            recipe=recipe,
            scene=scene,
            model_id=str(extras.get("model_id") or DEFAULT_MODEL_ID),
            model_dir=str(extras.get("model_dir") or os.environ.get(WEIGHTS_ENV, DEFAULT_WEIGHTS_DIR)),
            classes=classes,
            batch_size=batch_size,
            device=str(extras.get("device") or "auto"),
            input_size=input_size,
            splat_name=extras.get("splat_name") or None,
            filter=FilterConfig(**filter_overrides),
        )
