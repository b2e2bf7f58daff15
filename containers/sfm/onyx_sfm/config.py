"""The sfm step's settings: one model, validated by the tool; the ``sparse_model`` asset's config is built on it."""

from __future__ import annotations

from typing import Literal

from onyx_tools.config import ToolConfig
from pydantic import Field

Matching = Literal["auto", "sequential", "retrieval", "loop", "exhaustive"]
Mapper = Literal["incremental", "global"]
Spherical = Literal["auto", "rig", "spherical"]


class SfmOptions(ToolConfig):
    """The ``sparse_model`` asset's configuration."""

    matching: Matching = Field("auto", description="auto: sequential, then sequential + retrieved pairs if it "
                                                   "registers too little; exhaustive (every pair, cost grows "
                                                   "with the square of the frames) only when chosen")
    mapper: Mapper = "incremental"
    spherical: Spherical = Field("auto", description="360 video: views as a camera rig, or SfM on the panoramas")
    min_registered_ratio: float = Field(0.9, gt=0, le=1,
                                        description="the share of images the model must register; below it "
                                                    "a wider matcher is tried, and the step fails unless "
                                                    "accept_partial_model")
    accept_partial_model: bool = Field(False, description="keep a model under min_registered_ratio (with a "
                                                          "warning) instead of failing the step")


class SfmConfig(SfmOptions):
    """Everything the sfm tool is given: the asset's options and the strategies' tuning."""

    overlap: int = Field(10, ge=1, description="sequential matching: each frame with the next N frames")
    quadratic_overlap: bool = Field(True, description="... and with frames 2^k further on")
    retrieval_top_k: int = Field(10, ge=0, description="retrieval matching: each frame also with the N frames "
                                                       "whose features look most alike (a vocabulary trained "
                                                       "on the batch itself)")
    # 0 by default: measured on the synthetic walk (24 frames, true field of view 70 degrees), a 60 degree
    # start gave a broken model (centre RMS 12% of the path) where COLMAP's own start gave 0.010%
    default_hfov_deg: float = Field(0.0, ge=0, lt=180, description="the horizontal field of view SfM starts "
                                                                   "from when a frame's EXIF gives no focal "
                                                                   "length (video frames); 0: COLMAP's ~45")
    keyframe_motion: float = Field(0.05, ge=0, lt=1, description="a densely sampled video is mapped from "
                                                                   "keyframes first, spaced so that the image "
                                                                   "content moves at most this fraction of the "
                                                                   "larger image side between them; the frames "
                                                                   "between are registered into that model "
                                                                   "after. 0: map every frame at once")
    vocab_tree_path: str = Field("", description="loop detection's vocabulary tree (else $ONYX_VOCAB_TREE)")
    max_features: int = Field(8192, ge=64, description="SIFT features per image")
    view_frame_overlap: int = Field(3, ge=1, description="360: how many neighbouring frames each frame's "
                                                        "views are matched with")
    view_max_angle_deg: float = Field(60.0, gt=0, le=180, description="360: views whose optical axes are at "
                                                                      "most this far apart are matched")


CONFIG = SfmConfig  # the tool's one settings model (onyx_dagster.recipes validates with it)
