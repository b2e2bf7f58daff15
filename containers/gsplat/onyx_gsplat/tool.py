"""The gsplat step: sparse model + images -> output/<recipe>/{splat.ply, preview.png, metrics.json}.

``build_splat`` is the whole step as a function of the batch folder (the GPU check and
the tests call it too); ``main`` adapts it to the tool contract (Pipes params in, one
materialisation report out).
"""

from __future__ import annotations

import logging
import resource
import time
from collections.abc import Callable
from typing import Any

import torch
from onyx_tools.errors import ToolError
from onyx_tools.layout import BatchLayout
from onyx_tools.manifest import data_version
from onyx_tools.publish import publishing
from onyx_tools.tool import ToolRun

from .config import GsplatConfig
from .dataset import load_scene
from .export import METRICS_FILE, PREVIEW_FILE, SPLAT_FILE, copy_atomic, write_metrics, write_preview, write_splat
from .plan import available_threads, make_plan
from .rasterize_tiles import warm_up
from .render import rasterizer
from .train import train


def gsplat_kernels_loaded() -> bool:
    """Whether gsplat's CUDA extension loads (a prebuilt one, or a JIT build: minutes the first time, needs nvcc)."""
    from gsplat.cuda._backend import _C

    return _C is not None


def pick_device(requested: str) -> str:
    available = torch.cuda.is_available()
    if requested == "cuda" and not available:
        raise ToolError("device=cuda was asked for but torch sees no CUDA device: run on a GPU host "
                        "(the docker runner with a GPU) or set device to auto or cpu")
    device = ("cuda" if available else "cpu") if requested == "auto" else requested
    if device == "cuda" and not gsplat_kernels_loaded():
        raise ToolError("CUDA is present but gsplat's CUDA kernels did not load: build the gsplat image on a "
                        "CUDA -devel base (nvcc) or install gsplat's prebuilt wheel; or set device=cpu")
    return device


def use_threads(threads: int) -> None:
    """The compiled CPU kernels take ``threads``; PyTorch's own ops one.

    PyTorch's ops here are small (loss, SSIM, Adam) and its OpenMP threads wait on each
    other when the cores are shared: measured on 2 busy cores, 2 torch threads ran a step
    several times slower than 1. numba's kernels split whole tiles and Gaussians instead.
    Call it before PyTorch's first operation: measured here, SSIM's convolutions took 5x the
    CPU time when the thread count was lowered after a 2-thread pool had started.
    """
    import numba

    torch.set_num_threads(1)
    numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))


def _rounded(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(float(value), digits)  # None: no held-out views


def build_splat(layout: BatchLayout, config: GsplatConfig, log: logging.Logger,
                progress: Callable[[str, int, int, str], None] | None = None) -> dict[str, Any]:
    """Train and publish ``output/<recipe>/``; return the materialisation metadata."""
    started = time.perf_counter()
    device = pick_device(config.device)
    if device == "cpu":  # before any PyTorch work: set later, a thread pool already started stays busy
        use_threads(config.threads or available_threads())
    scene = load_scene(layout, lambda width, height: make_plan(config, device, width, height).downscale,
                       config.eval_every)
    plan = make_plan(config, device, scene.source_width, scene.source_height)
    if plan.rasterizer == "tiles-cpu":
        log.info("tile rasterizer kernels ready in %.1f s", warm_up())
    rasterize = rasterizer(plan.rasterizer)
    run = (f"{plan.iterations} iterations" if plan.iterations
           else f"{plan.budget_s:.0f} s of training (about {plan.estimated_steps} steps expected)")
    log.info("gsplat on %s (%s, %d thread(s)): %s at %s (downscale %d%s), up to %d Gaussians",
             device, plan.rasterizer, plan.threads, run, scene.resolution, plan.downscale,
             ", undistorted" if scene.undistorted else "", plan.max_gaussians)
    if not scene.test:
        log.warning("no held-out views (eval_every=%d): PSNR is not measured", config.eval_every)

    def on_step(done: int, fraction: float, detail: str) -> None:
        if progress:
            progress("train", round(1000 * fraction), 1000, f"step {done}: {detail}")

    result = train(scene, config, plan, rasterize, report=on_step, log=log.info)

    target = layout.recipe_output(config.recipe)
    preview_view = (scene.test or scene.train)[0].to(device)
    with publishing(target) as staged:
        gaussians = write_splat(staged, result.params)
        if gaussians == 0:
            raise ToolError("training ended with 0 Gaussians (all pruned): check the images and the sparse model")
        write_preview(staged / PREVIEW_FILE, result.params, preview_view, result.sh_degree, rasterize)
        metrics = {
            "gaussians": gaussians, "gaussians_initial": result.gaussians_initial,
            "iterations": result.iterations, "device": device, "rasterizer": plan.rasterizer,
            "train_seconds": round(result.train_seconds, 2), "resolution": scene.resolution,
            "downscale": plan.downscale, "undistorted": scene.undistorted, "sh_degree": result.sh_degree,
            "train_views": [v.name for v in scene.train], "test_views": [v.name for v in scene.test],
            "first_eval": result.first_eval, "last_eval": result.last_eval, "history": result.history,
            "checkpoints": result.checkpoints, "refinements": result.refinements,
            "preview_view": preview_view.name, "plan": plan.as_dict(), "config": config.model_dump(),
        }
        write_metrics(staged / METRICS_FILE, metrics)
    preview_copy = layout.previews / f"{config.recipe}.png"
    copy_atomic(target / PREVIEW_FILE, preview_copy)

    root = layout.root
    metadata: dict[str, Any] = {
        "gaussians": gaussians,
        "iterations": result.iterations,
        "device": device,
        "rasterizer": plan.rasterizer,
        "threads": plan.threads if device == "cpu" else None,
        "cpu_budget_s": plan.budget_s,
        "max_gaussians": plan.max_gaussians,
        "train_seconds": round(result.train_seconds, 1),
        "psnr_first_eval": _rounded(result.first_eval["psnr"], 2),
        "psnr_last_eval": _rounded(result.last_eval["psnr"], 2),
        "ssim_last_eval": _rounded(result.last_eval["ssim"], 4),
        "resolution": scene.resolution,
        "downscale": plan.downscale,
        "held_out_views": len(scene.test),
        "splat_path": (target / SPLAT_FILE).relative_to(root).as_posix(),
        "preview_path": preview_copy.relative_to(root).as_posix(),
        "metrics_path": (target / METRICS_FILE).relative_to(root).as_posix(),
        "total_seconds": round(time.perf_counter() - started, 1),
        "peak_gpu_mb": round(torch.cuda.max_memory_allocated() / 2**20) if device == "cuda" else None,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }
    return {key: value for key, value in metadata.items() if value is not None}


def main(run: ToolRun) -> None:
    config = GsplatConfig.from_params(run.params)
    metadata = build_splat(run.layout, config, run.log, run.progress)
    target = run.layout.recipe_output(config.recipe)
    run.report(metadata, data_version=data_version(target))
