"""A plain-PyTorch Gaussian rasterizer: the CPU stand-in for ``gsplat.rasterization``.

gsplat's CUDA rasterizer does not run without CUDA, but its PyTorch reference for the
projection (``gsplat.cuda._torch_impl``) does. This module keeps that projection and
replaces the tile rasterizer with one built from ordinary tensor ops, so autograd
gives the backward pass:

1. project every Gaussian (EWA splatting, gsplat's own torch code) -> 2D mean, conic,
   depth, pixel radius;
2. list every (Gaussian, pixel) pair inside each Gaussian's opacity-aware 3-sigma box, drop the
   pairs whose alpha is under 1/255 (the CUDA kernel skips those too);
3. sort the pairs by (pixel, depth) so each pixel's Gaussians are contiguous and front
   to back;
4. composite: transmittance is an exclusive cumulative product of (1 - alpha) within
   each pixel, computed as a cumulative sum of log(1 - alpha) in float64 (so long runs
   of pixels do not lose precision), and colours are scatter-added per pixel.

Same call, same conventions and the same ``info`` keys as ``gsplat.rasterization``
with ``packed=False`` (pixel centres at +0.5, conics as (a, b, c) with
sigma = 0.5 (a dx^2 + c dy^2) + b dx dy, alpha clamped to 0.999, SH colours + 0.5),
so the training loop and ``gsplat.strategy.DefaultStrategy`` cannot tell them apart.
Memory and time grow with the number of pairs: fine for ~160 px images and a few
thousand Gaussians, not a substitute for the CUDA kernel at full resolution.
"""

from __future__ import annotations

from typing import Any

import torch
from gsplat.cuda._torch_impl import (
    _fully_fused_projection,
    _quat_scale_to_covar_preci,
    _spherical_harmonics,
)
from torch import Tensor

ALPHA_MIN = 1.0 / 255.0   # pairs fainter than this contribute nothing (as in gsplat's kernel)
ALPHA_MAX = 0.999         # keeps 1 - alpha > 0 so the log-transmittance stays finite


def gaussian_pixel_pairs(means2d: Tensor, radii: Tensor, width: int, height: int,
                         opacities: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Every (gaussian id, pixel id) whose pixel lies in the Gaussian's clipped radius box.

    means2d: [N, 2] pixel coordinates; radii: [N, 2] half-sizes at 3.33 sigma (0 = not
    visible). With ``opacities`` the box shrinks to where alpha can still reach 1/255
    (sigma <= log(255 opacity)), as gsplat's CUDA projection does: a faint Gaussian
    needs a smaller box, which at the start of training (opacity 0.1) halves the pairs.
    Returns two int64 tensors [M]; pixel ids are row-major (y * width + x).
    """
    with torch.no_grad():
        r_all = radii.to(means2d.dtype)
        visible = (radii > 0).all(dim=-1)
        if opacities is not None:
            reach = torch.log(opacities.detach().to(means2d.dtype) / ALPHA_MIN)  # max useful sigma
            visible &= reach > 0
            extend = torch.sqrt(2.0 * reach.clamp_min(0.0)).clamp_max(3.33)
            r_all = r_all * (extend / 3.33)[:, None]
        ids = torch.nonzero(visible).squeeze(-1)
        centre = means2d[ids].detach()
        r = r_all[ids]
        # Pixel (x, y) covers [x, x + 1); its centre x + 0.5 is inside the box when
        # mean - r <= x + 0.5 <= mean + r.
        x0 = torch.ceil(centre[:, 0] - r[:, 0] - 0.5).clamp(0, width - 1).long()
        x1 = torch.floor(centre[:, 0] + r[:, 0] - 0.5).clamp(0, width - 1).long()
        y0 = torch.ceil(centre[:, 1] - r[:, 1] - 0.5).clamp(0, height - 1).long()
        y1 = torch.floor(centre[:, 1] + r[:, 1] - 0.5).clamp(0, height - 1).long()
        box_w = (x1 - x0 + 1).clamp_min(0)
        box_h = (y1 - y0 + 1).clamp_min(0)
        counts = box_w * box_h
        keep = counts > 0
        ids, x0, y0, box_w, counts = ids[keep], x0[keep], y0[keep], box_w[keep], counts[keep]
        total = int(counts.sum())
        if total == 0:
            empty = torch.zeros(0, dtype=torch.long, device=means2d.device)
            return empty, empty
        owner = torch.repeat_interleave(torch.arange(len(ids), device=ids.device), counts)
        start = torch.cumsum(counts, 0) - counts
        local = torch.arange(total, device=ids.device) - start[owner]
        px = x0[owner] + local % box_w[owner]
        py = y0[owner] + local // box_w[owner]
        return ids[owner], py * width + px


def composite(
    means2d: Tensor,    # [N, 2]
    conics: Tensor,     # [N, 3]
    opacities: Tensor,  # [N]
    colors: Tensor,     # [N, D]
    depths: Tensor,     # [N]
    radii: Tensor,      # [N, 2]
    width: int,
    height: int,
    background: Tensor | None = None,  # [D]
) -> tuple[Tensor, Tensor]:
    """Front-to-back alpha compositing of one image. Returns colours [H, W, D] and alpha [H, W, 1]."""
    n_pixels = width * height
    channels = colors.shape[-1]
    gauss, pixel = gaussian_pixel_pairs(means2d, radii, width, height, opacities)

    def pair_alpha(gauss: Tensor, pixel: Tensor) -> tuple[Tensor, Tensor]:
        dx = (pixel % width).to(means2d.dtype) + 0.5 - means2d[gauss, 0]
        dy = (pixel // width).to(means2d.dtype) + 0.5 - means2d[gauss, 1]
        a, b, c = conics[gauss].unbind(-1)
        sigma = 0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy
        return sigma, torch.clamp_max(opacities[gauss] * torch.exp(-sigma), ALPHA_MAX)

    # Find the pairs that matter without autograd, then redo only those with it: the box
    # corners of a tilted ellipse are mostly empty, and autograd would keep them all.
    with torch.no_grad():
        sigma, alpha = pair_alpha(gauss, pixel)
        keep = (sigma >= 0) & (alpha >= ALPHA_MIN)
        gauss, pixel = gauss[keep], pixel[keep]
    _, alpha = pair_alpha(gauss, pixel)

    # One sort on a combined key: pixel first, then depth rank (front to back).
    with torch.no_grad():
        depth_rank = torch.empty_like(depths, dtype=torch.long)
        depth_rank[torch.argsort(depths)] = torch.arange(len(depths), device=depths.device)
        key = pixel * len(depths) + depth_rank[gauss]
        if n_pixels * len(depths) < 2**31:
            key = key.int()  # sorting int32 keys takes half the time of int64 on the CPU
        order = torch.argsort(key)
    gauss, pixel, alpha = gauss[order], pixel[order], alpha[order]

    # Exclusive per-pixel cumulative sum of log(1 - alpha): the global running sum minus
    # the running sum at the start of this pixel's run.
    log_keep = torch.log1p(-alpha.double())
    running = torch.cumsum(log_keep, 0) - log_keep  # exclusive, over all pairs
    with torch.no_grad():
        run_start = torch.ones_like(pixel, dtype=torch.bool)
        run_start[1:] = pixel[1:] != pixel[:-1]
        start_index = torch.cummax(
            torch.where(run_start, torch.arange(len(pixel), device=pixel.device), 0), 0
        ).values
    transmittance = torch.exp(running - running[start_index]).to(alpha.dtype)
    weight = alpha * transmittance  # [M]

    image = torch.zeros(n_pixels, channels, dtype=colors.dtype, device=colors.device)
    image = image.index_add(0, pixel, weight[:, None] * colors[gauss])
    coverage = torch.zeros(n_pixels, dtype=alpha.dtype, device=alpha.device).index_add(0, pixel, weight)
    if background is not None:
        image = image + (1.0 - coverage)[:, None] * background
    return image.reshape(height, width, channels), coverage.reshape(height, width, 1)


def rasterization_torch(
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
    """``gsplat.rasterization(..., packed=False)`` in plain PyTorch: renders [C, H, W, D], alphas [C, H, W, 1], info."""
    covars, _ = _quat_scale_to_covar_preci(quats, scales, compute_covar=True, compute_preci=False)
    radii, means2d, depths, conics, _ = _fully_fused_projection(
        means, covars, viewmats, Ks, width, height, eps2d=eps2d, near_plane=near_plane, far_plane=far_plane,
    )  # [C, N, 2], [C, N, 2], [C, N], [C, N, 3]

    n_cameras = viewmats.shape[0]
    if sh_degree is not None:
        campos = torch.inverse(viewmats)[:, :3, 3]                       # [C, 3]
        dirs = means[None, :, :] - campos[:, None, :]                     # [C, N, 3]
        coeffs = colors.expand(n_cameras, *colors.shape)                  # [C, N, K, 3]
        view_colors = torch.clamp_min(_spherical_harmonics(sh_degree, dirs, coeffs) + 0.5, 0.0)
    else:
        view_colors = colors.expand(n_cameras, *colors.shape) if colors.dim() == 2 else colors
    return composite_views(composite, means2d, conics, opacities, view_colors, depths, radii, width, height,
                           backgrounds)


def composite_views(composite_one, means2d: Tensor, conics: Tensor, opacities: Tensor, colors: Tensor,
                    depths: Tensor, radii: Tensor, width: int, height: int, backgrounds: Tensor | None
                    ) -> tuple[Tensor, Tensor, dict[str, Any]]:
    """Composite each camera's projected Gaussians ([C, N, ...]) with ``composite_one``; gsplat's
    (renders [C, H, W, D], alphas [C, H, W, 1], info) with ``packed=False``."""
    n_cameras = means2d.shape[0]
    renders, alphas = [], []
    for cam in range(n_cameras):
        background = backgrounds[cam] if backgrounds is not None else None
        render, alpha = composite_one(means2d[cam], conics[cam], opacities, colors[cam], depths[cam],
                                      radii[cam], width, height, background)
        renders.append(render)
        alphas.append(alpha)
    info = {
        "camera_ids": None, "gaussian_ids": None, "radii": radii, "means2d": means2d, "depths": depths,
        "conics": conics, "opacities": opacities.expand(n_cameras, -1), "width": width, "height": height,
        "n_cameras": n_cameras, "n_batches": 1,
    }
    return torch.stack(renders), torch.stack(alphas), info
