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


def _gaussian(device, dtype) -> torch.Tensor:
    """The window's 1-D factor: the 11x11 Gaussian window is its outer product with itself."""
    x = torch.arange(WINDOW, device=device, dtype=dtype) - WINDOW // 2
    g = torch.exp(-(x ** 2) / (2 * SIGMA ** 2))
    return g / g.sum()


def ssim(rendered: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean SSIM of two [H, W, C] (or [B, H, W, C]) images; a differentiable scalar tensor."""
    if rendered.dim() == 3:
        rendered, target = rendered[None], target[None]
    x = rendered.permute(0, 3, 1, 2)
    y = target.permute(0, 3, 1, 2)
    channels = x.shape[1]
    # Images smaller than the window have no valid SSIM position; a similarity from the MSE stands in.
    if min(x.shape[-2:]) < WINDOW:
        return 1.0 - F.mse_loss(x, y)
    # The five local means in one separable blur (a row pass, then a column pass) over the five maps
    # stacked as channels: the same figures as five 11x11 convolutions, several times cheaper, and it
    # runs in every training step.
    stack = torch.cat([x, y, x * x, y * y, x * y], dim=1)
    n = stack.shape[1]
    g = _gaussian(x.device, x.dtype)
    blurred = F.conv2d(F.conv2d(stack, g.reshape(1, 1, 1, WINDOW).expand(n, 1, 1, WINDOW), groups=n),
                       g.reshape(1, 1, WINDOW, 1).expand(n, 1, WINDOW, 1), groups=n)
    mu_x, mu_y, xx, yy, xy = blurred.split(channels, dim=1)
    var_x = xx - mu_x ** 2
    var_y = yy - mu_y ** 2
    cov = xy - mu_x * mu_y
    numerator = (2 * mu_x * mu_y + C1) * (2 * cov + C2)
    denominator = (mu_x ** 2 + mu_y ** 2 + C1) * (var_x + var_y + C2)
    return (numerator / denominator).mean()
