"""The tile rasterizer: ``gsplat.rasterization``'s call on the CPU, fast enough to train with.

Two ``torch.autograd.Function``s around numba kernels with hand-written backward passes:
``ProjectGaussians`` (``project_kernels``: covariance, EWA projection, SH colour, one pass
per Gaussian) and ``TileComposite`` (``tile_kernels``: binning into 16x16 tiles and
front-to-back compositing, where the time goes). Same call, conventions and ``info`` keys as ``gsplat.rasterization``
with ``packed=False``, so the trainer and ``DensifyStrategy`` cannot tell the rasterizers
apart; ``info["means2d"]`` receives the view-space gradient densification reads.

Tensors on another device (PyTorch's MPS on Apple Silicon) are composited on the CPU and
the results moved back: the kernels are CPU code.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from . import project_kernels, tile_kernels
from .rasterize_torch import composite_views


def _array(tensor: Tensor) -> np.ndarray:
    return np.ascontiguousarray(tensor.detach().cpu().numpy())


class TileComposite(torch.autograd.Function):
    """Differentiable front-to-back compositing of one image (tile kernels on the CPU)."""

    @staticmethod
    def forward(ctx, means2d: Tensor, conics: Tensor, opacities: Tensor, colors: Tensor, depths: Tensor,
                visible: Tensor, width: int, height: int, background: Tensor) -> tuple[Tensor, Tensor]:
        dtype = colors.dtype
        arrays = [_array(t.to(dtype)) for t in (means2d, conics, opacities, colors, background)]
        boxes, offsets, ids = tile_kernels.bin_gaussians(
            arrays[0], arrays[1], arrays[2], _array(depths), _array(visible), width, height)
        image, transmittance, last = tile_kernels.composite_tiles(*arrays, boxes, offsets, ids, width, height)
        ctx.width, ctx.height = width, height
        ctx.arrays = (*arrays, boxes, offsets, ids, transmittance, last)
        ctx.device = colors.device
        image = torch.from_numpy(image).to(colors.device)
        alpha = (1.0 - torch.from_numpy(transmittance)).to(colors.device)[..., None]
        return image, alpha

    @staticmethod
    def backward(ctx, grad_image: Tensor, grad_alpha: Tensor):
        means2d, conics, opacities, colors, background, boxes, offsets, ids, transmittance, last = ctx.arrays
        dtype = colors.dtype
        grad_image = np.ascontiguousarray(grad_image.detach().cpu().numpy().astype(dtype, copy=False))
        grad_alpha = np.ascontiguousarray(grad_alpha.detach().cpu().numpy()[..., 0].astype(dtype, copy=False))
        grads = tile_kernels.composite_tiles_backward(
            means2d, conics, opacities, colors, background, boxes, offsets, ids, ctx.width, ctx.height,
            transmittance, last, grad_image, grad_alpha)
        grads = torch.from_numpy(grads).to(ctx.device)
        columns = tile_kernels.GRAD_COLUMNS
        return (grads[:, 0:2], grads[:, 2:5], grads[:, 5], grads[:, columns:], None, None, None, None, None)


def composite_tiles(means2d: Tensor, conics: Tensor, opacities: Tensor, colors: Tensor, depths: Tensor,
                    radii: Tensor, width: int, height: int,
                    background: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """One image: colours [H, W, D] and alpha [H, W, 1]; Gaussians with any radius 0 are not drawn."""
    visible = (radii > 0).all(dim=-1)
    if background is None:
        background = torch.zeros(colors.shape[-1], dtype=colors.dtype, device=colors.device)
    return TileComposite.apply(means2d, conics, opacities, colors, depths, visible, width, height, background)


class ProjectGaussians(torch.autograd.Function):
    """Differentiable projection and SH colour of every Gaussian for one camera (numba kernels on the CPU)."""

    @staticmethod
    def forward(ctx, means: Tensor, quats: Tensor, scales: Tensor, sh: Tensor, viewmat: Tensor, K: Tensor,
                width: int, height: int, sh_degree: int, eps2d: float, near: float, far: float):
        dtype = means.dtype
        arrays = tuple(_array(t.to(dtype)) for t in (means, quats, scales, sh, viewmat, K))
        means2d, conics, depths, radii, colors = project_kernels.project_gaussians(
            *arrays[:4], sh_degree, *arrays[4:], width, height, eps2d, near, far)
        ctx.arrays, ctx.settings, ctx.device = arrays, (sh_degree, width, height, eps2d), means.device
        out = [torch.from_numpy(a).to(means.device) for a in (means2d, conics, depths, radii, colors)]
        ctx.mark_non_differentiable(out[2], out[3])
        return tuple(out)

    @staticmethod
    def backward(ctx, v_means2d: Tensor, v_conics: Tensor, _v_depths, _v_radii, v_colors: Tensor):
        means, quats, scales, sh, viewmat, K = ctx.arrays
        sh_degree, width, height, eps2d = ctx.settings
        dtype = means.dtype
        grads = [np.ascontiguousarray(g.detach().cpu().numpy().astype(dtype, copy=False))
                 for g in (v_means2d, v_conics, v_colors)]
        g_means, g_quats, g_scales, g_sh = project_kernels.project_gaussians_backward(
            means, quats, scales, sh, sh_degree, viewmat, K, width, height, eps2d, *grads)
        out = [torch.from_numpy(g).to(ctx.device) for g in (g_means, g_quats, g_scales, g_sh)]
        return (*out, None, None, None, None, None, None, None, None)


def project(means: Tensor, quats: Tensor, scales: Tensor, colors: Tensor, viewmat: Tensor, K: Tensor,
            width: int, height: int, sh_degree: int | None, eps2d: float = 0.3, near_plane: float = 0.01,
            far_plane: float = 1e10) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """One camera: means2d [N, 2], conics [N, 3], depths [N], radii [N, 2] and per-view colours [N, D].

    ``colors`` are SH coefficients [N, K, 3] when ``sh_degree`` is given, else the colours themselves.
    """
    if sh_degree is None:
        sh = colors.new_zeros((len(means), 0, 3))
    else:
        sh = colors
    means2d, conics, depths, radii, sh_colors = ProjectGaussians.apply(
        means, quats, scales, sh, viewmat, K, width, height, sh_degree or 0, eps2d, near_plane, far_plane)
    return means2d, conics, depths, radii, (colors if sh_degree is None else sh_colors)


def rasterization_tiles(
    means: Tensor,      # [N, 3]
    quats: Tensor,      # [N, 4] (w, x, y, z), need not be normalised
    scales: Tensor,     # [N, 3] (activated, not log)
    opacities: Tensor,  # [N] (activated, in [0, 1])
    colors: Tensor,     # [N, K, 3] SH coefficients when sh_degree is given, else [N, D]
    viewmats: Tensor,   # [C, 4, 4] world -> camera
    Ks: Tensor,         # [C, 3, 3]
    width: int,
    height: int,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    eps2d: float = 0.3,
    sh_degree: int | None = None,
    backgrounds: Tensor | None = None,  # [C, D]
    **_ignored: Any,
) -> tuple[Tensor, Tensor, dict[str, Any]]:
    """``gsplat.rasterization(..., packed=False)`` on the CPU: renders [C, H, W, D], alphas [C, H, W, 1], info."""
    n_cameras = viewmats.shape[0]
    projected = [project(means, quats, scales, colors, viewmats[cam], Ks[cam], width, height, sh_degree,
                         eps2d, near_plane, far_plane) for cam in range(n_cameras)]
    means2d, conics, depths, radii, view_colors = (torch.stack(parts) for parts in zip(*projected))

    return composite_views(composite_tiles, means2d, conics, opacities, view_colors, depths, radii, width, height,
                           backgrounds)


def warm_up() -> float:
    """Compile (or load from numba's cache) every kernel for float32 images; returns the seconds it took.

    The first run on a machine compiles for about half a minute; a time-budgeted run calls
    this before its clock starts, and image builds call it so containers start compiled.
    """
    import time

    started = time.perf_counter()
    means = torch.tensor([[0.0, 0.0, 3.0], [0.1, 0.0, 4.0]], requires_grad=True)
    quats = torch.tensor([[1.0, 0.0, 0.0, 0.0]] * 2, requires_grad=True)
    scales = torch.full((2, 3), 0.2, requires_grad=True)
    opacities = torch.full((2,), 0.5, requires_grad=True)
    sh = torch.zeros(2, 16, 3, requires_grad=True)
    K = torch.tensor([[[20.0, 0.0, 8.0], [0.0, 20.0, 8.0], [0.0, 0.0, 1.0]]])
    image, alpha, _ = rasterization_tiles(means, quats, scales, opacities, sh, torch.eye(4)[None], K, 16, 16,
                                          sh_degree=3)
    (image.sum() + alpha.sum()).backward()
    return time.perf_counter() - started
