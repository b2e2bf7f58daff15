"""Adaptive density control on real Gaussians: the chair's SfM points, one rendered view's gradients."""

from __future__ import annotations

import math

import torch

from onyx_gsplat.config import GsplatConfig
from onyx_gsplat.dataset import load_scene
from onyx_gsplat.densify import DensifyStrategy
from onyx_gsplat.gaussians import init_gaussians, learning_rates, make_optimizers
from onyx_gsplat.render import rasterizer
from onyx_gsplat.train import render_view
from onyx_tools.layout import BatchLayout


def _one_step(chair_batch, **settings):
    scene = load_scene(BatchLayout(chair_batch), lambda width, height: 8, eval_every=0)
    config = GsplatConfig(refine_start=0.0, refine_stop=1.0, refine_every=1, opacity_reset_after=0, **settings)
    params = init_gaussians(scene.points, scene.colors, 1)
    optimizers = make_optimizers(params, learning_rates(config, scene.scene_scale))
    view = scene.train[0]
    image, _, info = render_view(params, view, 1, rasterizer("tiles-cpu"))
    info["means2d"].retain_grad()
    torch.abs(image - view.image).mean().backward()
    for optimizer in optimizers.values():
        optimizer.step()  # Adam state exists, as in training
    return scene, config, params, optimizers, info


def test_growth_stops_at_the_budget_and_keeps_adam_state_aligned(chair_batch):
    scene, config, params, optimizers, info = _one_step(chair_batch, grow_grad2d=1e-12, opacity_resets=0)
    n = len(params["means"])
    strategy = DensifyStrategy(config, scene.scene_scale, max_gaussians=n + 40)
    strategy.accumulate(info)
    visible = int((info["radii"] > 0).all(dim=-1).sum())
    assert visible > 40  # more candidates than room: the budget decides
    event = strategy.step(params, optimizers, step=1, progress=0.1)
    assert event["pruned"] == 0 and event["cloned"] + event["split"] == 40 and event["after"] == n + 40
    assert len(params["means"]) == n + 40
    for name, param in params.items():
        state = optimizers[name].state[param]
        assert state["exp_avg"].shape == param.shape and state["exp_avg_sq"].shape == param.shape, name
        assert optimizers[name].param_groups[0]["params"][0] is param, name
    # Full: the next refinement prunes nothing and grows nothing.
    image, _, info = render_view(params, scene.train[1], 1, rasterizer("tiles-cpu"))
    info["means2d"].retain_grad()
    torch.abs(image - scene.train[1].image).mean().backward()
    strategy.accumulate(info)
    event = strategy.step(params, optimizers, step=2, progress=0.2)
    assert (event["cloned"], event["split"], event["after"]) == (0, 0, n + 40)


def test_opacity_reset_then_pruning_of_the_faint_and_the_huge(chair_batch):
    scene, config, params, optimizers, info = _one_step(chair_batch, opacity_resets=1, grow_grad2d=1.0)
    n = len(params["means"])
    strategy = DensifyStrategy(config, scene.scene_scale, max_gaussians=n)
    assert strategy.reset_points() == [0.5]
    strategy.accumulate(info)
    assert strategy.step(params, optimizers, step=1, progress=0.4).get("opacity_reset") is None
    late = DensifyStrategy(config.model_copy(update={"refine_stop": 0.45}), scene.scene_scale, max_gaussians=n)
    assert late.step(params, optimizers, step=1, progress=0.5) is None  # past its window: no reset
    event = strategy.step(params, optimizers, step=1, progress=0.5)  # nothing accumulated: only the reset
    assert event["opacity_reset"] and event["after"] == n
    assert torch.sigmoid(params["opacities"]).max() <= 2 * config.prune_opacity + 1e-6
    assert optimizers["opacities"].state[params["opacities"]]["exp_avg"].abs().max() == 0
    # After the reset: one Gaussian faded under the threshold, one grew larger than 0.1 x the scene
    # (besides those the sparse points' spacing made that large to begin with).
    with torch.no_grad():
        params["opacities"][0] = math.log(0.001 / 0.999)
        params["scales"][1] = math.log(0.5 * scene.scene_scale)
        huge = torch.exp(params["scales"]).max(dim=-1).values > config.prune_scale3d * scene.scene_scale
        expected = int(huge.sum()) + int(not huge[0])
    strategy.accumulate(info)
    event = strategy.step(params, optimizers, step=2, progress=0.6)
    assert 2 <= event["pruned"] == expected and len(params["means"]) == n - expected
    assert event["cloned"] == event["split"] == 0  # grow_grad2d=1: nothing qualifies


def test_at_a_capped_budget_large_gaussians_are_kept_after_the_reset(chair_batch):
    """Where growth is capped, pruning a large Gaussian only leaves a hole: size pruning waits for room."""
    scene, config, params, optimizers, info = _one_step(chair_batch, opacity_resets=1, grow_grad2d=1e-12)
    n = len(params["means"])
    strategy = DensifyStrategy(config, scene.scene_scale, max_gaussians=n + 10)
    strategy.accumulate(info)
    event = strategy.step(params, optimizers, step=1, progress=0.4)
    assert event["after"] == n + 10 and strategy.capped  # more wanted to grow than there was room for
    assert strategy.step(params, optimizers, step=2, progress=0.5)["opacity_reset"]
    with torch.no_grad():
        params["scales"][1] = math.log(0.5 * scene.scene_scale)
    huge = int((torch.exp(params["scales"]).max(dim=-1).values > config.prune_scale3d * scene.scene_scale).sum())
    assert huge >= 1
    _accumulate(strategy, params, scene.train[1])
    event = strategy.step(params, optimizers, step=3, progress=0.6)
    assert event["pruned"] == 0 and len(params["means"]) == n + 10  # the large ones stay while capped
    # Once growth has room again (a larger budget), the next refinement prunes them by size.
    strategy.max_gaussians = 10 * n
    _accumulate(strategy, params, scene.train[2])
    strategy.step(params, optimizers, step=4, progress=0.7)
    assert not strategy.capped
    _accumulate(strategy, params, scene.train[3])
    huge = torch.exp(params["scales"]).max(dim=-1).values > config.prune_scale3d * scene.scene_scale
    assert huge.any()
    assert strategy.step(params, optimizers, step=5, progress=0.8)["pruned"] >= int(huge.sum())


def _accumulate(strategy, params, view):
    image, _, info = render_view(params, view, 1, rasterizer("tiles-cpu"))
    info["means2d"].retain_grad()
    torch.abs(image - view.image).mean().backward()
    strategy.accumulate(info)


def test_a_gaussian_whose_gradient_turns_non_finite_is_dropped_and_training_goes_on(chair_batch):
    """A NaN gradient on one Gaussian (as a degenerate covariance gives) costs that Gaussian, not the run."""
    from onyx_gsplat.plan import Plan
    from onyx_gsplat.train import train

    scene = load_scene(BatchLayout(chair_batch), lambda width, height: 8, eval_every=0)
    tiles = rasterizer("tiles-cpu")
    calls = {"n": 0}

    def poisoning(means, *args, **kwargs):  # the real rasterizer; on its 3rd call, Gaussian 7's gradient is NaN
        calls["n"] += 1
        if calls["n"] == 3 and means.requires_grad:
            def poison(grad):
                grad = grad.clone()
                grad[7] = float("nan")
                return grad
            means.register_hook(poison)
        return tiles(means, *args, **kwargs)

    plan = Plan(device="cpu", rasterizer="tiles-cpu", downscale=8, max_gaussians=len(scene.points) + 1000,
                iterations=6, budget_s=None, threads=1)
    result = train(scene, GsplatConfig(grow_grad2d=1e6, opacity_resets=0), plan, poisoning)  # no growth
    assert result.iterations == 6
    for name, value in result.params.items():
        assert torch.isfinite(value).all(), name
    dropped = [event for event in result.refinements if "non_finite_dropped" in event]
    assert [(event["step"], event["non_finite_dropped"]) for event in dropped] == [(2, 1)]
    assert len(result.params["means"]) == len(scene.points) - 1
