"""Training settings: the knobs a recipe passes in, and what "auto" means on each device.

Two schedules share one training loop:
- CUDA (gsplat's rasterizer): the first version's splatfacto settings, 7,000 iterations at
  downscale 4 outdoors / 2 indoors, learning rates and densification as gsplat's
  simple_trainer.
- CPU (the plain-PyTorch rasterizer): small enough to finish in about a minute on two
  cores: images about 160 px wide, a few thousand Gaussians, 300 iterations. The issue
  measured 160x90 px, 3,000 Gaussians, 300 iterations in 67 s with 17.1 -> 23.6 dB.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from onyx_tools.errors import ToolError

SCENES = ("indoor", "outdoor")
DEVICES = ("auto", "cpu", "cuda")
CPU_TARGET_WIDTH = 160  # px; the width the CPU path trains at unless downscale is given


@dataclass(frozen=True)
class GsplatConfig:
    # The knobs of the gaussian-proto recipe (Pipes extras). None = pick for the device.
    recipe: str = "gaussian-proto"
    scene: str = "outdoor"
    iterations: int | None = None        # CUDA 7,000; CPU 300
    downscale: int | None = None         # CUDA 4 outdoor / 2 indoor; CPU: images ~160 px wide
    max_gaussians: int | None = None     # CUDA 3,000,000; CPU 4,000
    sh_degree: int = 3
    eval_every: int = 8                  # every 8th image (by name) is held out; 0 = none
    device: str = "auto"
    seed: int = 0

    # Optimisation (gsplat simple_trainer's values).
    ssim_lambda: float = 0.2             # loss = (1 - l) L1 + l (1 - SSIM)
    init_opacity: float = 0.1
    init_scale: float = 1.0              # times the mean distance to the 3 nearest points
    means_lr: float = 1.6e-4             # times the scene scale; decays to 1 % by the end
    scales_lr: float = 5e-3
    quats_lr: float = 1e-3
    opacities_lr: float = 5e-2
    sh0_lr: float = 2.5e-3
    shN_lr: float = 2.5e-3 / 20
    sh_degree_interval: int | None = None  # raise the SH degree every this many steps

    # Densification (gsplat.strategy.DefaultStrategy); None = per device.
    refine_start_iter: int | None = None
    refine_stop_iter: int | None = None
    refine_every: int | None = None
    reset_every: int = 3000
    grow_grad2d: float = 0.0002

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> "GsplatConfig":
        """Build from the Pipes extras; unknown keys are ignored, bad values are a ToolError."""
        known = {f.name: f for f in dataclasses.fields(cls)}
        values: dict[str, Any] = {}
        for key, value in params.items():
            if key not in known or value is None:
                continue
            default = known[key].default
            kind = type(default) if default is not None else int
            try:
                if kind is bool:
                    raise TypeError
                values[key] = kind(value) if kind in (int, float) else str(value)
                if kind is int and float(value) != int(value):
                    raise ValueError
            except (TypeError, ValueError):
                raise ToolError(f"gsplat parameter {key}={value!r} is not a {kind.__name__}") from None
        config = cls(**values)
        config.validate()
        return config

    def validate(self) -> None:
        if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,63}", self.recipe):
            raise ToolError(f"recipe {self.recipe!r} is not a recipe name like 'gaussian-proto'")
        if self.scene not in SCENES:
            raise ToolError(f"scene {self.scene!r} is not one of {', '.join(SCENES)}")
        if self.device not in DEVICES:
            raise ToolError(f"device {self.device!r} is not one of {', '.join(DEVICES)}")
        for name in ("iterations", "downscale", "max_gaussians"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ToolError(f"gsplat parameter {name} must be at least 1 (got {value}); leave it empty for auto")
        if not 0 <= self.sh_degree <= 3:
            raise ToolError(f"sh_degree must be 0-3 (got {self.sh_degree})")
        if self.eval_every < 0 or self.eval_every == 1:
            raise ToolError(f"eval_every must be 0 (no hold-out) or at least 2 (got {self.eval_every})")

    def resolved(self, device: str, image_width: int) -> "GsplatConfig":
        """Every None replaced by the value for ``device`` ("cuda"/"cpu") and images ``image_width`` px wide."""
        cuda = device == "cuda"
        iterations = self.iterations or (7000 if cuda else 300)
        if self.downscale:
            downscale = self.downscale
        elif cuda:
            downscale = 2 if self.scene == "indoor" else 4
        else:
            downscale = max(1, round(image_width / CPU_TARGET_WIDTH))
        if cuda:
            # simple_trainer densifies from step 500 every 100 steps until half-way through a
            # 30k run; for a 7k run stop at 3/4 so the last Gaussians still get trained.
            start, every, stop = 500, 100, int(iterations * 0.75)
        else:
            # 300 steps: grow twice or thrice, early enough for the new Gaussians to settle.
            start, every, stop = iterations // 3, max(1, iterations // 6), int(iterations * 0.75)
        return dataclasses.replace(
            self,
            device=device,
            iterations=iterations,
            downscale=downscale,
            max_gaussians=self.max_gaussians or (3_000_000 if cuda else 4000),
            sh_degree_interval=self.sh_degree_interval or max(1, iterations // 7),
            refine_start_iter=self.refine_start_iter if self.refine_start_iter is not None else start,
            refine_every=self.refine_every or every,
            refine_stop_iter=self.refine_stop_iter if self.refine_stop_iter is not None else stop,
        )

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
