"""The tool's parameters, with the first version's MILo settings as defaults."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from onyx_tools.errors import ToolError

MESH_CONFIGS = ("verylowres", "lowres", "default", "highres", "veryhighres")


@dataclass(frozen=True)
class MiloParams:
    recipe: str = "gaussian-production"
    scene: str = "indoor"             # MILo's --imp_metric is the scene type
    iterations: int = 18_000
    rasterizer: str = "radegs"
    mesh_config: str = "default"
    dense_gaussians: bool | None = None   # None: dense indoors, as the first version did
    # MILo keeps train.py and mesh_extract_sdf.py in the repository's milo/ folder
    milo_home: str = field(default_factory=lambda: os.environ.get("ONYX_MILO_HOME", "/opt/milo/milo"))
    python: str = field(default_factory=lambda: os.environ.get("ONYX_MILO_PYTHON", sys.executable))

    @property
    def dense(self) -> bool:
        return self.scene == "indoor" if self.dense_gaussians is None else bool(self.dense_gaussians)

    @property
    def home(self) -> Path:
        return Path(self.milo_home)

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> "MiloParams":
        values = cls(**{name: params[name] for name in cls.__dataclass_fields__ if name in params})
        if values.scene not in ("indoor", "outdoor"):
            raise ToolError(f"scene must be 'indoor' or 'outdoor', not '{values.scene}'")
        if values.mesh_config not in MESH_CONFIGS:
            raise ToolError(f"mesh_config must be one of {', '.join(MESH_CONFIGS)}, not '{values.mesh_config}'")
        if int(values.iterations) < 1:
            raise ToolError(f"iterations must be positive, not {values.iterations}")
        return values
