"""The openmvs tool's settings: one pydantic model, what a recipe's preset and the asset pass in.

The two photogrammetry recipes differ only by their presets (onyx_dagster.recipes): proto
decimates the mesh to a fifth, skips RefineMesh and meshes the CPU path's cloud at Poisson
depth 9; production keeps the defaults below.
"""

from __future__ import annotations

from typing import Literal

from onyx_tools.config import Scene, ToolConfig
from pydantic import Field

RECIPES = ("photogrammetry-proto", "photogrammetry-production")


class OpenMVSConfig(ToolConfig):
    recipe: Literal["photogrammetry-proto", "photogrammetry-production"] = Field(
        "photogrammetry-proto", description="the recipe whose output folder this is (output/<recipe>/)")
    scene: Scene = "indoor"
    backend: Literal["auto", "openmvs", "cpu"] = Field(
        "auto", description="auto: OpenMVS when its binaries are on PATH (the onyx-openmvs image), else the "
                            "CPU path (plane sweep, COLMAP fusion, Poisson)")
    decimate: float = Field(1.0, gt=0, le=1, description="fraction of the mesh's faces kept")
    refine: bool = Field(True, description="OpenMVS: RefineMesh before texturing")
    resolution_level: int | None = Field(
        None, ge=0, le=8, description="DensifyPointCloud --resolution-level; empty: chosen from the memory")
    max_resolution: int = Field(3200, gt=0, description="OpenMVS's cap on the longer image side (px)")
    max_threads: int = Field(0, ge=0, description="OpenMVS threads; 0: every core")
    cpu_max_image_size: int = Field(768, ge=64, description="CPU path: longer image side (px) the depth "
                                                             "maps and fusion work at")
    poisson_depth: int = Field(10, ge=5, le=13, description="CPU path: Poisson octree depth")


CONFIG = OpenMVSConfig  # the tool's one settings model (onyx_dagster.recipes validates with it)
