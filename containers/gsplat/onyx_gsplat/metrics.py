"""Image metrics on [H, W, 3] tensors in [0, 1]: PSNR, and SSIM (also the training loss's D-SSIM term).

SSIM is the standard one (Wang et al. 2004): 11x11 Gaussian window, sigma 1.5,
K1 = 0.01, K2 = 0.03, "valid" border handling as in pytorch-msssim / fused-ssim's default
training use, differentiable so the loss can use it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

WINDOW = 11
SIGMA = 1.5
C1 = 0.01 ** 2
C2 = 0.03 ** 2


def psnr(rendered: torch.Tensor, target: torch.Tensor) -> float:
    """Peak signal-to-noise ratio in dB for images in [0, 1]."""
    mse = torch.mean((rendered.clamp(0, 1) - target) ** 2).item()
    return float("inf") if mse == 0 else -10.0 * torch.log10(torch.tensor(mse)).item()


def _window(channels: int, device, dtype) -> torch.Tensor:
    x = torch.arange(WINDOW, device=device, dtype=dtype) - WINDOW // 2
    g = torch.exp(-(x ** 2) / (2 * SIGMA ** 2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).expand(channels, 1, WINDOW, WINDOW).contiguous()


def ssim(rendered: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean SSIM of two [H, W, C] (or [B, H, W, C]) images; a differentiable scalar tensor."""
    if rendered.dim() == 3:
        rendered, target = rendered[None], target[None]
    x = rendered.permute(0, 3, 1, 2)
    y = target.permute(0, 3, 1, 2)
    channels = x.shape[1]
    w = _window(channels, x.device, x.dtype)
    # Images smaller than the window have no valid SSIM position; a similarity from the MSE stands in.
    if min(x.shape[-2:]) < WINDOW:
        return 1.0 - F.mse_loss(x, y)

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(t, w, groups=channels)

    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x ** 2
    var_y = blur(y * y) - mu_y ** 2
    cov = blur(x * y) - mu_x * mu_y
    numerator = (2 * mu_x * mu_y + C1) * (2 * cov + C2)
    denominator = (mu_x ** 2 + mu_y ** 2 + C1) * (var_x + var_y + C2)
    return (numerator / denominator).mean()
