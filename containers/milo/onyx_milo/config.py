"""The milo tool's settings, with Onyx 1.0's (run_pipeline.py) MILo settings as defaults."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Literal

from pydantic import Field

from onyx_tools.config import RecipeName, Scene, ToolConfig

MeshConfig = Literal["verylowres", "lowres", "default", "highres", "veryhighres"]


class MiloOptions(ToolConfig):
    """What a recipe's preset or a run may choose."""

    iterations: int = Field(18_000, ge=1, description="MILo training iterations")
    rasterizer: Literal["radegs", "gof"] = Field("radegs", description="MILo's --rasterizer")
    mesh_config: MeshConfig = Field("default", description="MILo's mesh extraction config")
    dense_gaussians: bool | None = Field(None, description="MILo's --dense_gaussians; default: indoors only, "
                                                           "as Onyx 1.0 did")


class MiloConfig(MiloOptions):
    """Everything the milo tool is given."""

    recipe: RecipeName = "gaussian-production"
    scene: Scene = Field("indoor", description="MILo's --imp_metric")
    # MILo keeps train.py and mesh_extract_sdf.py in the repository's milo/ folder; the image sets it.
    milo_home: str = Field(default_factory=lambda: os.environ.get("ONYX_MILO_HOME", "/opt/milo/milo"))
    python: str = Field(default_factory=lambda: os.environ.get("ONYX_MILO_PYTHON", sys.executable))

    @property
    def dense(self) -> bool:
        return self.scene == "indoor" if self.dense_gaussians is None else self.dense_gaussians

    @property
    def home(self) -> Path:
        return Path(self.milo_home)


CONFIG = MiloConfig  # the tool's one settings model (onyx_dagster.recipes validates with it)
