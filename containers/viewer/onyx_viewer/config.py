"""The viewer step's settings: one model, validated by the tool; the asset's config is built on its options."""

from __future__ import annotations

from typing import Literal

from onyx_tools.config import RecipeName, ToolConfig
from pydantic import Field

# SOG's k-means over the SH palette is what a CPU pays for: on 34,517 Gaussians (2 cores), bands 0-3 take
# 340 s at 10 iterations and 46 s at 1; bands 0-1 take 5.6 s at 10.
CPU_SOG_SH_BANDS = 1
CPU_WIDTH = 320  # px: a fly-through frame the CPU rasterizer renders in well under a second on an idle core


class ViewerOptions(ToolConfig):
    """The ``viewer`` asset's configuration."""

    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="fly-through renderer: auto, cpu or cuda")
    fps: float = Field(24.0, gt=0, le=120, description="fly-through frames per second")
    width: int | None = Field(None, ge=16, le=7680,
                              description=f"fly-through width in px; empty: the capture's on a GPU, {CPU_WIDTH} on the CPU")
    smoothing_s: float = Field(0.5, ge=0, le=60,
                               description="sigma in seconds of the Gaussian window smoothing the captured path")
    sog_gpu: str = Field("cpu", pattern=r"^(cpu|[0-9]+)$",
                         description="splat-transform's device for SOG compression: cpu or a WebGPU adapter index")
    sh_iterations: int = Field(10, ge=1, le=100, description="splat-transform's SH palette k-means iterations")
    sog_sh_bands: int | None = Field(
        None, ge=0, le=3, description=f"spherical-harmonic bands the page and splat.sog keep (splat.ply and splat.spz "
                                      f"keep all); empty: 3 with a WebGPU adapter, {CPU_SOG_SH_BANDS} with sog_gpu=cpu")
    flythrough: bool = Field(True, description="render flythrough.mp4")

    def page_sh_bands(self) -> int:
        """SH bands of the page's SOG: the setting, else all three where SOG compression has a GPU."""
        if self.sog_sh_bands is not None:
            return self.sog_sh_bands
        return CPU_SOG_SH_BANDS if self.sog_gpu == "cpu" else 3


class ViewerConfig(ViewerOptions):
    """Everything the viewer tool is given: the options and whose output to show."""

    recipe: RecipeName = Field("gaussian-proto", description="whose output/<recipe>/ to show")


CONFIG = ViewerConfig  # the tool's one settings model
