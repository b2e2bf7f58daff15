"""The tool's parameters (Pipes extras), validated once, with the recipe's defaults."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from onyx_tools.errors import ToolError

RECIPES = ("photogrammetry-proto", "photogrammetry-production")
BACKENDS = ("auto", "openmvs", "cpu")


@dataclass(frozen=True)
class OpenMVSParams:
    recipe: str = "photogrammetry-proto"
    scene: str = "indoor"
    backend: str = "auto"            # auto: OpenMVS when its binaries are on PATH, else the CPU path
    resolution_level: int | None = None   # None: chosen from the available memory
    max_resolution: int = 3200
    max_threads: int = 0
    cpu_max_image_size: int = 1280   # CPU path: SGBM and fusion work at most at this size
    poisson_depth: int | None = None # CPU path: None -> 9 proto, 10 production

    @property
    def proto(self) -> bool:
        return self.recipe.endswith("-proto")

    @property
    def decimate(self) -> float:
        return 0.2 if self.proto else 1.0   # the first version's proto setting

    @property
    def refine(self) -> bool:
        return not self.proto

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> "OpenMVSParams":
        known = {name: params[name] for name in cls.__dataclass_fields__ if name in params}
        values = cls(**known)
        if values.recipe not in RECIPES:
            raise ToolError(f"openmvs runs recipes {', '.join(RECIPES)}, not '{values.recipe}'")
        if values.scene not in ("indoor", "outdoor"):
            raise ToolError(f"scene must be 'indoor' or 'outdoor', not '{values.scene}'")
        if values.backend not in BACKENDS:
            raise ToolError(f"backend must be one of {', '.join(BACKENDS)}, not '{values.backend}'")
        return values
