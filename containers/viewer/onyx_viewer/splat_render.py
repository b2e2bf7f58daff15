"""Pictures of a splat from any camera, through the gsplat tool's one public render call.

gsplat's CUDA rasterizer on a GPU, the Onyx CPU tile rasterizer elsewhere: a fly-through frame
is rendered as the training views are, so it can be compared with them.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from onyx_gsplat.gaussians import gaussians_from_cloud
from onyx_gsplat.render import Camera, rasterizer, render
from onyx_tools.errors import ToolError
from onyx_tools.splat_ply import GaussianCloud

# (viewmat [4, 4] world->camera, K [3, 3], width, height) -> RGB uint8 [height, width, 3]
RenderFrame = Callable[[np.ndarray, np.ndarray, int, int], np.ndarray]


def pick_device(requested: str) -> str:
    available = torch.cuda.is_available()
    if requested == "cuda" and not available:
        raise ToolError("device=cuda was asked for but torch sees no CUDA device: run on a GPU host or set "
                        "device to auto or cpu")
    return ("cuda" if available else "cpu") if requested == "auto" else requested


def splat_renderer(cloud: GaussianCloud, device: str) -> tuple[str, RenderFrame]:
    """(rasterizer name, render function) for ``cloud`` on ``device`` ("cpu" or "cuda")."""
    name = "gsplat-cuda" if device == "cuda" else "tiles-cpu"
    rasterize = rasterizer(name)
    gaussians = gaussians_from_cloud(cloud, device)

    def tensor(array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)).to(device)

    @torch.no_grad()
    def frame(viewmat: np.ndarray, K: np.ndarray, width: int, height: int) -> np.ndarray:
        image, _, _ = render(gaussians, Camera(tensor(K), tensor(viewmat), width, height), rasterize=rasterize)
        return (image.clamp(0, 1) * 255.0 + 0.5).to(torch.uint8).cpu().numpy()

    return name, frame
