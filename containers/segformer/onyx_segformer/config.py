"""The segformer tool's settings (Pipes extras), typed and checked once on entry."""

from __future__ import annotations

import os
from collections.abc import Mapping

from onyx_tools.config import RecipeName, Scene, ToolConfig
from pydantic import Field, field_validator

DEFAULT_MODEL_ID = "nvidia/segformer-b5-finetuned-ade-640-640"
DEFAULT_WEIGHTS_DIR = "/opt/onyx/weights/segformer"
WEIGHTS_ENV = "ONYX_SEGFORMER_WEIGHTS"

# ADE20K (150 classes, 0-based as the nvidia checkpoints' id2label): what outdoor scenes mask out.
# Onyx 1.0 (run_pipeline.py) also listed "bird" with id 3, which is *floor* in ADE20K: not repeated.
ADE20K_OUTDOOR_EXCLUDE: dict[str, int] = {"sky": 2, "person": 12, "water": 21, "sea": 26, "boat": 76}

SPLAT_NAMES = ("splat.ply", "point_cloud.ply")  # gsplat writes the first, MILo the second


class FilterConfig(ToolConfig):
    """Gaussian filtering, Onyx 1.0's (run_pipeline.py) settings."""

    min_camera_kept_fraction: float = Field(0.05, ge=0, le=1,
                                            description="drop views whose mask keeps under this share of pixels")
    max_views: int = Field(50, ge=1, description="evenly spaced views every Gaussian is projected into")
    min_kept_views: int = Field(2, ge=1, description="keep a Gaussian landing on a kept pixel in this many views")
    outlier_knn: int = Field(10, ge=0, description="neighbours of the outlier step; 0 turns it off")
    knn_percentile: float = Field(95.0, gt=0, le=100, description="keep mean kNN distance <= this percentile")
    centroid_percentile: float = Field(99.0, gt=0, le=100,
                                       description="keep distance to the centroid <= this percentile")


class MasksOptions(ToolConfig):
    """The ``masks`` asset's configuration."""

    model_id: str = Field(DEFAULT_MODEL_ID, description="SegFormer (ADE20K) checkpoint")
    model_dir: str | None = Field(None, description="folder with the weights; default: ONYX_SEGFORMER_WEIGHTS "
                                                    "(baked into the image)")
    batch_size: int = Field(4, ge=1, description="images per forward pass")
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:[0-9]+)?)$",
                        description="auto (CUDA when present), cpu, cuda or cuda:N")


class SegformerConfig(MasksOptions):
    """Everything the segformer tool is given: the options, the batch's choices, the filter."""

    recipe: RecipeName
    scene: Scene = "outdoor"
    classes: tuple[int, ...] = Field(tuple(ADE20K_OUTDOOR_EXCLUDE.values()),
                                     description="ADE20K label ids to mask out")
    input_size: tuple[int, int] | None = Field(None, description="(height, width) fed to the model; "
                                                                 "default: the checkpoint's")
    splat_name: str | None = Field(None, description="output/<recipe>/<splat_name>; default: the first of "
                                                     + ", ".join(SPLAT_NAMES))
    filter: FilterConfig = FilterConfig()

    @field_validator("classes", mode="before")
    @classmethod
    def _label_ids(cls, value):
        if isinstance(value, Mapping):  # {"sky": 2, ...} reads better in run config
            value = tuple(value.values())
        return value

    @field_validator("classes")
    @classmethod
    def _non_negative(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if any(label < 0 for label in value):
            raise ValueError(f"label ids are >= 0, got {list(value)}")
        return value

    @field_validator("input_size", mode="before")
    @classmethod
    def _square(cls, value):
        return (value, value) if isinstance(value, int) else value

    @property
    def weights_dir(self) -> str:
        return self.model_dir or os.environ.get(WEIGHTS_ENV, DEFAULT_WEIGHTS_DIR)


CONFIG = SegformerConfig  # the tool's one settings model (onyx_dagster.recipes validates with it)
