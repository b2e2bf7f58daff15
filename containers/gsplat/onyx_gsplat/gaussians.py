"""The Gaussians being trained: standard 3DGS parameters initialised from SfM points.

Parameterisation as in 3DGS and gsplat's simple_trainer, so ``gsplat.strategy`` can edit
them: means, log scales, quaternions (w, x, y, z, unnormalised), opacity logits, SH
DC ``sh0`` [N, 1, 3] and higher bands ``shN`` [N, K - 1, 3].
"""

from __future__ import annotations

import math

import numpy as np
import torch
from onyx_tools.splat_ply import GaussianCloud

SH_C0 = 0.28209479177387814  # Y_0^0: colour = SH_C0 * dc + 0.5


def rgb_to_sh(rgb: torch.Tensor) -> torch.Tensor:
    return (rgb - 0.5) / SH_C0


def knn_mean_distance(points: torch.Tensor, k: int = 3, chunk: int = 2048) -> torch.Tensor:
    """Root mean squared distance of each point to its ``k`` nearest others, in chunks to bound memory."""
    k = min(k, max(1, len(points) - 1))
    out = torch.empty(len(points), dtype=points.dtype, device=points.device)
    for start in range(0, len(points), chunk):
        d2 = torch.cdist(points[start:start + chunk], points).square()
        nearest = d2.topk(k + 1, dim=1, largest=False).values[:, 1:]  # drop the point itself
        out[start:start + chunk] = nearest.mean(dim=1).sqrt()
    return out


def init_gaussians(points: torch.Tensor, colors: torch.Tensor, sh_degree: int, *, init_opacity: float = 0.1,
                   init_scale: float = 1.0, max_count: int | None = None, seed: int = 0,
                   device: torch.device | str = "cpu") -> torch.nn.ParameterDict:
    """One Gaussian per SfM point (a random subset when there are more than ``max_count``)."""
    generator = torch.Generator().manual_seed(seed)
    if max_count is not None and len(points) > max_count:
        keep = torch.randperm(len(points), generator=generator)[:max_count]
        points, colors = points[keep], colors[keep]
    points, colors = points.float(), colors.float()
    n = len(points)
    # Isotropic start, as big as the gap to the neighbours, so the points cover the surface.
    distance = knn_mean_distance(points).clamp_min(1e-7)
    scales = torch.log(distance * init_scale)[:, None].repeat(1, 3)
    quats = torch.rand(n, 4, generator=generator)  # random orientations, as simple_trainer
    opacities = torch.logit(torch.full((n,), init_opacity))
    sh = torch.zeros(n, (sh_degree + 1) ** 2, 3)
    sh[:, 0, :] = rgb_to_sh(colors)
    params = {
        "means": points, "scales": scales, "quats": quats, "opacities": opacities,
        "sh0": sh[:, :1, :], "shN": sh[:, 1:, :],
    }
    return torch.nn.ParameterDict({k: torch.nn.Parameter(v.contiguous().to(device)) for k, v in params.items()})


def learning_rates(config, scene_scale: float) -> dict[str, float]:
    return {
        "means": config.means_lr * scene_scale, "scales": config.scales_lr, "quats": config.quats_lr,
        "opacities": config.opacities_lr, "sh0": config.sh0_lr, "shN": config.shN_lr,
    }


def make_optimizers(params: torch.nn.ParameterDict, lrs: dict[str, float]) -> dict[str, torch.optim.Optimizer]:
    """One Adam per parameter (what gsplat.strategy.ops expects), eps as in simple_trainer.

    On the CPU, PyTorch's fused Adam: one pass over each tensor instead of a dozen.
    """
    fused = all(p.device.type == "cpu" for p in params.values())
    return {name: torch.optim.Adam([{"params": params[name], "lr": lrs[name], "name": name}], eps=1e-15,
                                   fused=fused or None)
            for name in params}


def to_cloud(params: torch.nn.ParameterDict) -> GaussianCloud:
    """The trained parameters as the standard 3DGS PLY stores them (logits, log scales, unit w-x-y-z quats)."""
    with torch.no_grad():
        quats = torch.nn.functional.normalize(params["quats"], dim=-1)

        def arr(t: torch.Tensor) -> np.ndarray:
            return t.detach().float().cpu().numpy()

        return GaussianCloud(
            means=arr(params["means"]), sh_dc=arr(params["sh0"][:, 0, :]), sh_rest=arr(params["shN"]),
            opacities=arr(params["opacities"]), scales=arr(params["scales"]), quats=arr(quats),
        )


def gaussians_from_cloud(cloud: GaussianCloud, device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    """A splat PLY's Gaussians as ``render`` takes them (what ``activated`` gives for trained parameters)."""
    sh = np.concatenate([cloud.sh_dc[:, None, :], cloud.sh_rest.reshape(len(cloud), -1, 3)], axis=1)

    def tensor(array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)).to(device)

    return {"means": tensor(cloud.means), "quats": tensor(cloud.quats), "scales": tensor(np.exp(cloud.scales)),
            "opacities": tensor(1.0 / (1.0 + np.exp(-cloud.opacities))), "colors": tensor(sh)}


def activated(params: torch.nn.ParameterDict, sh_degree: int) -> dict[str, torch.Tensor]:
    """What a rasterizer takes: unit-free scales, opacities in [0, 1], SH up to the active degree."""
    bands = (sh_degree + 1) ** 2
    return {
        "means": params["means"], "quats": params["quats"], "scales": torch.exp(params["scales"]),
        "opacities": torch.sigmoid(params["opacities"]),
        "colors": torch.cat([params["sh0"], params["shN"]], dim=1)[:, :bands, :],
    }


def describe(params: torch.nn.ParameterDict) -> str:
    n = len(params["means"])
    opacity = torch.sigmoid(params["opacities"]).mean().item() if n else math.nan
    return f"{n} Gaussians, mean opacity {opacity:.2f}"
