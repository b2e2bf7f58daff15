"""The gsplat tool's settings: one pydantic model, what a recipe's preset and the asset pass in.

Fields left at None are chosen per run by ``plan.make_plan``: on CUDA the first
version's splatfacto settings (7,000 iterations at downscale 4 outdoors / 2 indoors), on
the CPU from ``cpu_budget_s``, the seconds of training the recipe allows (resolution and
Gaussian budget from a cost model, iterations as many as fit).
"""

from __future__ import annotations

from typing import Literal

from onyx_tools.config import ToolConfig
from pydantic import Field, model_validator


class GsplatConfig(ToolConfig):
    recipe: str = Field("gaussian-proto", pattern=r"^[a-z0-9][a-z0-9-]{0,63}$",
                        description="the recipe whose output folder this is (output/<recipe>/)")
    scene: Literal["indoor", "outdoor"] = "outdoor"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    rasterizer: Literal["auto", "tiles", "torch"] = Field(
        "auto", description="CPU rasterizer: tiles (compiled, the default) or torch (the plain-PyTorch reference)")

    # What the run may spend and at what size; None = chosen by the plan.
    cpu_budget_s: float = Field(120.0, gt=0, description="CPU: seconds of training (the recipe's preset sets it)")
    iterations: int | None = Field(None, gt=0, description="None: CUDA 7,000; CPU as many as the budget allows")
    downscale: int | None = Field(None, gt=0, description="image downscale factor; None: from the device/budget")
    max_gaussians: int | None = Field(None, gt=0, description="Gaussian budget; None: from the device/budget")
    threads: int | None = Field(None, gt=0, description="CPU threads; None: every core this process may use")

    sh_degree: int = Field(3, ge=0, le=3)
    eval_every: int = Field(8, ge=0, description="every n-th image (by name) is held out; 0 = none")
    seed: int = 0

    # Optimisation (3DGS / gsplat simple_trainer values).
    ssim_lambda: float = Field(0.2, ge=0, le=1, description="loss = (1 - l) L1 + l (1 - SSIM)")
    init_opacity: float = Field(0.1, gt=0, lt=1)
    init_scale: float = Field(1.0, gt=0, description="times the RMS distance to the 3 nearest points")
    means_lr: float = Field(1.6e-4, gt=0, description="times the scene scale; decays to 1 % by the end")
    scales_lr: float = Field(5e-3, gt=0)
    quats_lr: float = Field(1e-3, gt=0)
    opacities_lr: float = Field(5e-2, gt=0)
    sh0_lr: float = Field(2.5e-3, gt=0)
    shN_lr: float = Field(2.5e-3 / 20, gt=0)

    # Schedules, as fractions of the run (of the iterations, or of the time budget).
    sh_degree_every: float = Field(0.1, gt=0, le=1, description="one more SH band every this fraction")
    refine_start: float = Field(0.04, ge=0, lt=1, description="densification starts at this fraction")
    refine_stop: float = Field(0.6, gt=0, le=1, description="and stops at this one")
    refine_every: int = Field(100, gt=0, description="steps between densifications")
    refine_every_fraction: float = Field(
        0.05, gt=0, le=1, description="or this fraction of the run, if that comes first (short or busy runs)")
    opacity_resets: int = Field(1, ge=0, description="opacity resets, evenly spaced in the densification window")
    opacity_reset_after: int = Field(
        500, ge=0, description="steps done before a reset may happen (3DGS's first is at 3,000; earlier the "
                               "splat has not formed and a reset only sets it back)")

    # Densification thresholds (3DGS).
    grow_grad2d: float = Field(0.0002, gt=0, description="mean view-space gradient that clones or splits")
    grow_scale3d: float = Field(0.01, gt=0, description="below this x scene scale clone, above split")
    prune_opacity: float = Field(0.005, gt=0, lt=1)
    prune_scale3d: float = Field(0.1, gt=0, description="after the first reset, larger x scene scale is pruned")

    @model_validator(mode="after")
    def _consistent(self) -> "GsplatConfig":
        if self.eval_every == 1:
            raise ValueError("eval_every must be 0 (no hold-out) or at least 2, not 1 (every image held out)")
        if self.refine_stop <= self.refine_start:
            raise ValueError(f"refine_stop ({self.refine_stop}) must come after refine_start ({self.refine_start})")
        return self


CONFIG = GsplatConfig  # the tool's one settings model (onyx_dagster.recipes validates with it)
