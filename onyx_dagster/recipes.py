"""Recipes: the ways a batch becomes a scene, one registry entry each.

A recipe is ``{mode}-{quality}`` and names the tool that runs it and the preset of that
tool's settings it fixes, the way nerfstudio registers its methods: adding a recipe is one
entry below. The tool's own settings model (``onyx_<tool>.config``) validates the preset
and any override given in the asset's config, before the tool starts.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal


@dataclass(frozen=True)
class Recipe:
    name: str                               # "gaussian-proto": {mode}-{quality}
    tool: str                               # the container in containers/<tool>/
    produces: Literal["splat", "mesh"]
    gpu: bool                               # whether the tool wants a GPU when one is there
    description: str
    preset: Mapping[str, Any] = field(default_factory=dict)  # the tool's settings this recipe fixes
    gpu_only: bool = False                  # no CPU path: refused up front where no GPU is visible

    def __post_init__(self) -> None:
        object.__setattr__(self, "preset", MappingProxyType(dict(self.preset)))

    @property
    def mode(self) -> str:
        return self.name.split("-", 1)[0]

    @property
    def quality(self) -> str:
        return self.name.split("-", 1)[1]

    def tool_settings(self, scene: str, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """What the tool is given: the batch's choices, the preset, then the run's overrides."""
        return {"recipe": self.name, "scene": scene, **self.preset, **(overrides or {})}

    def validate(self, settings: Mapping[str, Any]):
        """The tool's settings model checks them (a ``ToolError`` names every bad one)."""
        config_module = importlib.import_module(f"onyx_{self.tool}.config")
        return config_module.CONFIG.from_params(settings)


def _registry(*recipes: Recipe) -> Mapping[str, Recipe]:
    return MappingProxyType({recipe.name: recipe for recipe in recipes})


RECIPES: Mapping[str, Recipe] = _registry(
    Recipe("gaussian-production", tool="milo", produces="splat", gpu=True, gpu_only=True,
           description="MILo: Gaussians and a mesh from them (GPU only)"),
    # Without CUDA: 120 s of CPU training, from which the tool picks the image size and the
    # Gaussian budget (the demo's room: 320x180, 34,560); on CUDA the budget is not used.
    Recipe("gaussian-proto", tool="gsplat", produces="splat", gpu=True,
           description="gsplat: Gaussian splat (CUDA, or the CPU tile rasterizer)", preset={"cpu_budget_s": 120}),
    Recipe("photogrammetry-production", tool="openmvs", produces="mesh", gpu=True,
           description="OpenMVS: dense cloud, refined textured mesh",
           preset={"decimate": 1.0, "refine": True, "poisson_depth": 10}),
    # Onyx 1.0's proto: a fifth of the faces, no RefineMesh (the CPU path: a coarser Poisson octree)
    Recipe("photogrammetry-proto", tool="openmvs", produces="mesh", gpu=True,
           description="OpenMVS: dense cloud, decimated textured mesh",
           preset={"decimate": 0.2, "refine": False, "poisson_depth": 9}),
)
MODES = tuple(dict.fromkeys(recipe.mode for recipe in RECIPES.values()))
QUALITIES = tuple(dict.fromkeys(recipe.quality for recipe in RECIPES.values()))
RECONSTRUCTION_TOOLS = tuple(dict.fromkeys(recipe.tool for recipe in RECIPES.values()))


class UnknownRecipeError(ValueError):
    pass


def recipe_name(mode: str, quality: str) -> str:
    return f"{mode}-{quality}"


def get_recipe(name: str) -> Recipe:
    try:
        return RECIPES[name]
    except KeyError:
        raise UnknownRecipeError(
            f"recipe '{name}' does not exist: choose one of {', '.join(RECIPES)} "
            f"(mode {'|'.join(MODES)}, quality {'|'.join(QUALITIES)})") from None
