"""The training loop: one loop, two rasterizers.

As gsplat's simple_trainer (batch of one view, L1 + 0.2 D-SSIM, per-parameter Adam, means
learning rate decaying to 1 %, SH degree raised step by step, densification by
``gsplat.strategy.DefaultStrategy``). The rasterizer is ``gsplat.rasterization`` on CUDA
and ``rasterize_torch.rasterization_torch`` elsewhere; both take the same call and return
the same ``info``, which is all DefaultStrategy reads (means2d and its gradient, radii,
width, height, n_cameras).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from gsplat.strategy import DefaultStrategy
from gsplat.strategy.ops import remove

from .config import GsplatConfig
from .dataset import Scene, View
from .gaussians import activated, describe, init_gaussians, learning_rates, make_optimizers, means_decay
from .metrics import psnr, ssim
from .rasterize_torch import rasterization_torch

Rasterize = Callable[..., tuple[torch.Tensor, torch.Tensor, dict]]
Progress = Callable[[int, int, str], None]


def cuda_rasterization() -> Rasterize:
    """gsplat's CUDA rasterizer, called as the torch one is (unpacked, so info is [C, N, ...])."""
    from gsplat import rasterization

    def rasterize(*args, **kwargs):
        return rasterization(*args, packed=False, **kwargs)

    return rasterize


def select_rasterizer(device: str) -> tuple[str, Rasterize]:
    if device == "cuda":
        return "gsplat-cuda", cuda_rasterization()
    return "torch-cpu", rasterization_torch


def render(params: torch.nn.ParameterDict, view: View, sh_degree: int, rasterize: Rasterize):
    g = activated(params, sh_degree)
    images, alphas, info = rasterize(
        g["means"], g["quats"], g["scales"], g["opacities"], g["colors"],
        view.viewmat[None], view.K[None], view.width, view.height, sh_degree=sh_degree,
    )
    return images[0], alphas[0], info


@torch.no_grad()
def evaluate(params, views: list[View], sh_degree: int, rasterize: Rasterize) -> dict:
    """Mean PSNR/SSIM over ``views`` and the per-view PSNRs (None without views)."""
    if not views:
        return {"psnr": None, "ssim": None, "per_view": {}}
    per_view, ssims = {}, []
    for view in views:
        image, _, _ = render(params, view, sh_degree, rasterize)
        per_view[view.name] = round(psnr(image, view.image), 3)
        ssims.append(ssim(image.clamp(0, 1), view.image).item())
    return {"psnr": sum(per_view.values()) / len(per_view), "ssim": sum(ssims) / len(ssims), "per_view": per_view}


@dataclass
class TrainResult:
    params: torch.nn.ParameterDict
    sh_degree: int
    first_eval: dict
    last_eval: dict
    train_seconds: float
    iterations: int
    gaussians_initial: int
    history: list[dict] = field(default_factory=list)
    refinements: list[dict] = field(default_factory=list)


def cap_gaussians(params, optimizers, state, max_gaussians: int) -> int:
    """Drop the least opaque Gaussians beyond ``max_gaussians`` (DefaultStrategy has no cap)."""
    surplus = len(params["means"]) - max_gaussians
    if surplus <= 0:
        return 0
    drop = torch.zeros(len(params["means"]), dtype=torch.bool, device=params["means"].device)
    drop[torch.argsort(params["opacities"].detach())[:surplus]] = True
    remove(params=params, optimizers=optimizers, state=state, mask=drop)
    return surplus


def train(scene: Scene, config: GsplatConfig, rasterize: Rasterize, device: str,
          progress: Progress | None = None, log: Callable[[str], None] | None = None) -> TrainResult:
    """Train from ``scene``'s points with a resolved ``config``; evaluate on the held-out views first and last."""
    torch.manual_seed(config.seed)
    say = log or (lambda message: None)
    iterations = int(config.iterations)
    train_views = [v.to(device) for v in scene.train]
    test_views = [v.to(device) for v in scene.test]
    params = init_gaussians(scene.points, scene.colors, config.sh_degree, init_opacity=config.init_opacity,
                            init_scale=config.init_scale, max_count=config.max_gaussians, seed=config.seed,
                            device=device)
    optimizers = make_optimizers(params, learning_rates(config, scene.scene_scale))
    means_schedule = torch.optim.lr_scheduler.ExponentialLR(optimizers["means"], gamma=means_decay(iterations))
    strategy = DefaultStrategy(
        refine_start_iter=config.refine_start_iter, refine_stop_iter=config.refine_stop_iter,
        refine_every=config.refine_every, reset_every=config.reset_every, grow_grad2d=config.grow_grad2d,
    )
    strategy.check_sanity(params, optimizers)
    state = strategy.initialize_state(scene_scale=scene.scene_scale)
    gaussians_initial = len(params["means"])
    say(f"start: {describe(params)}, {len(train_views)} training / {len(test_views)} held-out views "
        f"at {scene.resolution}, scene scale {scene.scene_scale:.3f}")

    first_eval = evaluate(params, test_views, 0, rasterize)
    if test_views:
        say(f"held-out PSNR before training {first_eval['psnr']:.2f} dB")
    generator = torch.Generator().manual_seed(config.seed)
    order: list[int] = []
    history: list[dict] = []
    refinements: list[dict] = []  # Gaussian counts around each densification that changed them
    started = time.perf_counter()
    sh_degree = 0
    for step in range(iterations):
        if not order:
            order = torch.randperm(len(train_views), generator=generator).tolist()
        view = train_views[order.pop()]
        sh_degree = min(step // config.sh_degree_interval, config.sh_degree)

        image, _, info = render(params, view, sh_degree, rasterize)
        strategy.step_pre_backward(params, optimizers, state, step, info)
        l1 = torch.abs(image - view.image).mean()
        loss = (1.0 - config.ssim_lambda) * l1 + config.ssim_lambda * (1.0 - ssim(image, view.image))
        loss.backward()
        for optimizer in optimizers.values():
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        means_schedule.step()
        # After the optimiser step (as simple_trainer): the strategy edits parameters in place.
        before = len(params["means"])
        strategy.step_post_backward(params, optimizers, state, step, info, packed=False)
        after_strategy = len(params["means"])
        capped = cap_gaussians(params, optimizers, state, config.max_gaussians)
        if after_strategy != before or capped:
            refinements.append({"step": step, "before": before, "densified": after_strategy,
                                "capped": len(params["means"])})
        if capped:
            say(f"step {step}: densified {before} -> {after_strategy}, dropped the {capped} least opaque "
                f"to stay at {config.max_gaussians}")

        if step % 50 == 0 or step == iterations - 1:
            history.append({"step": step, "loss": round(loss.item(), 5), "gaussians": len(params["means"])})
        if progress:
            progress(step + 1, iterations, f"loss {loss.item():.4f}, {len(params['means'])} Gaussians")
    if device == "cuda":
        torch.cuda.synchronize()
    train_seconds = time.perf_counter() - started

    last_eval = evaluate(params, test_views, sh_degree, rasterize)
    scores = (f", held-out PSNR {first_eval['psnr']:.2f} -> {last_eval['psnr']:.2f} dB, SSIM {last_eval['ssim']:.3f}"
              if test_views else "")
    say(f"done in {train_seconds:.1f} s: {describe(params)}{scores}")
    return TrainResult(params=params, sh_degree=sh_degree, first_eval=first_eval, last_eval=last_eval,
                       train_seconds=train_seconds, iterations=iterations, gaussians_initial=gaussians_initial,
                       history=history, refinements=refinements)
