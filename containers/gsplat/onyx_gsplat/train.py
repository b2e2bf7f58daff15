"""The training loop: 3DGS's recipe on any of the rasterizers.

Batch of one view, loss (1 - l) L1 + l D-SSIM, one Adam per parameter, the means'
learning rate decaying exponentially to 1 %, one more SH band every ``sh_degree_every``
of the run, adaptive density control (``densify.DensifyStrategy``). Schedules follow
``plan.Progress``: the fraction of the iterations, or of the time budget. Held-out views
are scored before training, at ``checkpoints`` of the run (the clock is paused while
scoring) and at the end.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from .config import GsplatConfig
from .dataset import Scene, View
from .densify import DensifyStrategy
from .gaussians import activated, describe, init_gaussians, learning_rates, make_optimizers
from .metrics import psnr, ssim
from .plan import Plan, Progress
from .render import Rasterize, render

StepReport = Callable[[int, float, str], None]  # step, fraction done, detail
CHECKPOINTS = (0.25, 0.5, 0.75)


def render_view(params: torch.nn.ParameterDict, view: View, sh_degree: int, rasterize: Rasterize):
    return render(activated(params, sh_degree), view.camera, sh_degree, rasterize=rasterize)


@torch.no_grad()
def evaluate(params, views: list[View], sh_degree: int, rasterize: Rasterize) -> dict:
    """Mean PSNR/SSIM over ``views`` and the per-view PSNRs (None without views)."""
    if not views:
        return {"psnr": None, "ssim": None, "per_view": {}}
    per_view, ssims = {}, []
    for view in views:
        image, _, _ = render_view(params, view, sh_degree, rasterize)
        image = view.masked(image)
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
    history: list[dict] = field(default_factory=list)      # loss and Gaussian count every 50 steps
    checkpoints: list[dict] = field(default_factory=list)  # held-out scores during the run, with seconds
    refinements: list[dict] = field(default_factory=list)  # densification events


def train(scene: Scene, config: GsplatConfig, plan: Plan, rasterize: Rasterize,
          report: StepReport | None = None, log: Callable[[str], None] | None = None,
          checkpoints: Sequence[float] = CHECKPOINTS) -> TrainResult:
    """Train from ``scene``'s points as ``plan`` says; score the held-out views along the way."""
    torch.manual_seed(config.seed)
    say = log or (lambda message: None)
    device = plan.device
    train_views = [v.to(device) for v in scene.train]
    test_views = [v.to(device) for v in scene.test]
    params = init_gaussians(scene.points, scene.colors, config.sh_degree, init_opacity=config.init_opacity,
                            init_scale=config.init_scale, max_count=plan.max_gaussians, seed=config.seed,
                            device=device)
    rates = learning_rates(config, scene.scene_scale)
    optimizers = make_optimizers(params, rates)
    strategy = DensifyStrategy(config, scene.scene_scale, plan.max_gaussians)
    gaussians_initial = len(params["means"])
    run = f"{plan.iterations} iterations" if plan.iterations else f"{plan.budget_s:.0f} s"
    say(f"start: {describe(params)}, {len(train_views)} training / {len(test_views)} held-out views at "
        f"{scene.resolution}, up to {plan.max_gaussians} Gaussians, {run}, scene scale {scene.scene_scale:.3f}")

    first_eval = evaluate(params, test_views, 0, rasterize)
    if test_views:
        say(f"held-out PSNR before training {first_eval['psnr']:.2f} dB")
    generator = torch.Generator().manual_seed(config.seed)
    order: list[int] = []
    history: list[dict] = []
    scores: list[dict] = []
    pending = sorted(c for c in checkpoints if 0 < c < 1)
    clock = Progress(plan)
    clock.start()
    step, sh_degree = 0, 0
    while not clock.done(step):
        fraction = clock.fraction(step)
        optimizers["means"].param_groups[0]["lr"] = rates["means"] * 0.01 ** fraction
        sh_degree = min(int(fraction / config.sh_degree_every), config.sh_degree)
        if not order:
            order = torch.randperm(len(train_views), generator=generator).tolist()
        view = train_views[order.pop()]

        image, _, info = render_view(params, view, sh_degree, rasterize)
        densifying = strategy.in_window(fraction)
        if densifying:
            info["means2d"].retain_grad()
        image = view.masked(image)
        l1 = torch.abs(image - view.image).mean()
        loss = (1.0 - config.ssim_lambda) * l1 + config.ssim_lambda * (1.0 - ssim(image, view.image))
        loss.backward()
        if densifying:
            strategy.accumulate(info)
        for optimizer in optimizers.values():
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        if strategy.drop_non_finite(params, optimizers, step):
            say(f"step {step}: dropped {strategy.events[-1]['non_finite_dropped']} Gaussian(s) with non-finite values")
        event = strategy.step(params, optimizers, step, fraction)
        if event and (event.get("opacity_reset") or event["after"] != event["before"]):
            say(f"step {step}: {event}")

        if step % 50 == 0:
            history.append({"step": step, "loss": round(loss.item(), 5), "gaussians": len(params["means"])})
        step += 1
        if pending and clock.fraction(step) >= pending[0] and test_views:
            pending.pop(0)
            clock.pause()
            score = evaluate(params, test_views, sh_degree, rasterize)
            scores.append({"step": step, "seconds": round(clock.seconds(), 2), "psnr": round(score["psnr"], 3),
                           "ssim": round(score["ssim"], 4), "gaussians": len(params["means"])})
            say(f"step {step} ({clock.seconds():.0f} s): held-out PSNR {score['psnr']:.2f} dB, "
                f"{len(params['means'])} Gaussians")
            clock.start()
        if report:
            report(step, clock.fraction(step), f"loss {loss.item():.4f}, {len(params['means'])} Gaussians")
    if device == "cuda":
        torch.cuda.synchronize()
    clock.pause()
    train_seconds = clock.seconds()
    history.append({"step": step - 1, "loss": round(loss.item(), 5), "gaussians": len(params["means"])})

    last_eval = evaluate(params, test_views, sh_degree, rasterize)
    if test_views:
        scores.append({"step": step, "seconds": round(train_seconds, 2), "psnr": round(last_eval["psnr"], 3),
                       "ssim": round(last_eval["ssim"], 4), "gaussians": len(params["means"])})
    summary = (f", held-out PSNR {first_eval['psnr']:.2f} -> {last_eval['psnr']:.2f} dB, "
               f"SSIM {last_eval['ssim']:.3f}" if test_views else "")
    say(f"done: {step} steps in {train_seconds:.1f} s, {describe(params)}{summary}")
    return TrainResult(params=params, sh_degree=sh_degree, first_eval=first_eval, last_eval=last_eval,
                       train_seconds=train_seconds, iterations=step, gaussians_initial=gaussians_initial,
                       history=history, checkpoints=scores, refinements=strategy.events)
