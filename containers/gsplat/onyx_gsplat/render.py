"""One public render call: (Gaussians, camera) -> image, for training, previews and fly-throughs.

    from onyx_gsplat.render import Camera, render
    from onyx_gsplat.gaussians import gaussians_from_cloud
    gaussians = gaussians_from_cloud(read_splat_ply(path))        # or activated(params, sh_degree)
    image, alpha, info = render(gaussians, Camera(K, viewmat, width, height))
    # image [H, W, 3] float in [0, 1] (not clamped above), alpha [H, W, 1]

The rasterizer is the CPU tile rasterizer unless another is passed (``rasterizer(name)``:
"tiles-cpu", "torch-cpu", "gsplat-cuda"); all take gsplat's call and return its ``info``.
Differentiable; wrap in ``torch.no_grad()`` when only the picture is wanted.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from torch import Tensor

from .rasterize_tiles import rasterization_tiles
from .rasterize_torch import rasterization_torch

Rasterize = Callable[..., tuple[Tensor, Tensor, dict]]
RASTERIZERS = ("tiles-cpu", "torch-cpu", "gsplat-cuda")


@dataclass(frozen=True)
class Camera:
    """A pinhole camera as COLMAP has it (pixel centres at +0.5; OpenCV axes: x right, y down, z forward)."""

    K: Tensor        # [3, 3] intrinsics in pixels at this width and height
    viewmat: Tensor  # [4, 4] world -> camera
    width: int
    height: int


def cuda_rasterization() -> Rasterize:
    """gsplat's CUDA rasterizer, called as the CPU ones are (unpacked, so info is [C, N, ...])."""
    from gsplat import rasterization

    def rasterize(*args, **kwargs):
        return rasterization(*args, packed=False, **kwargs)

    return rasterize


def rasterizer(name: str) -> Rasterize:
    if name == "gsplat-cuda":
        return cuda_rasterization()
    if name == "torch-cpu":
        return rasterization_torch
    if name == "tiles-cpu":
        return rasterization_tiles
    raise ValueError(f"unknown rasterizer {name!r}: one of {', '.join(RASTERIZERS)}")


def sh_degree_of(colors: Tensor) -> int:
    """The SH degree that [N, K, 3] coefficients hold (K = 1, 4, 9, 16)."""
    degree = round(colors.shape[1] ** 0.5) - 1
    if (degree + 1) ** 2 != colors.shape[1]:
        raise ValueError(f"{colors.shape[1]} SH coefficients per channel is not a square (1, 4, 9 or 16)")
    return degree


def render(gaussians: Mapping[str, Tensor], camera: Camera, sh_degree: int | None = None,
           background: Tensor | None = None, rasterize: Rasterize = rasterization_tiles
           ) -> tuple[Tensor, Tensor, dict]:
    """Render one view: image [H, W, 3], alpha [H, W, 1] and the rasterizer's info.

    ``gaussians``: activated parameters, as ``gaussians.activated`` or ``gaussians_from_cloud``
    give them: means [N, 3], quats [N, 4] (w, x, y, z), scales [N, 3] (not log), opacities [N]
    (not logits), colors [N, K, 3] SH coefficients. ``sh_degree``: the bands to use (default:
    all that ``colors`` holds). ``background``: [3] colour behind the Gaussians (default black).
    """
    if sh_degree is None:
        sh_degree = sh_degree_of(gaussians["colors"])
    backgrounds = None if background is None else background.reshape(1, -1).to(gaussians["means"])
    images, alphas, info = rasterize(
        gaussians["means"], gaussians["quats"], gaussians["scales"], gaussians["opacities"], gaussians["colors"],
        camera.viewmat[None].to(gaussians["means"]), camera.K[None].to(gaussians["means"]),
        camera.width, camera.height, sh_degree=sh_degree, backgrounds=backgrounds,
    )
    return images[0], alphas[0], info

