"""The gsplat step: sparse model + images -> output/<recipe>/{splat.ply, preview.png, metrics.json}.

``build_splat`` is the whole step as a function of the batch folder (the GPU check and
the tests call it too); ``main`` adapts it to the tool contract (Pipes params in, one
materialisation report out).
"""

from __future__ import annotations

import logging
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
from .train import select_rasterizer, train


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


def _rounded(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(float(value), digits)  # None: no held-out views


def build_splat(layout: BatchLayout, config: GsplatConfig, log: logging.Logger,
                progress: Callable[[str, int, int, str], None] | None = None) -> dict[str, Any]:
    """Train and publish ``output/<recipe>/``; return the materialisation metadata."""
    started = time.perf_counter()
    device = pick_device(config.device)
    scene = load_scene(layout, lambda width: config.resolved(device, width).downscale, config.eval_every)
    config = config.resolved(device, scene.source_width)
    rasterizer, rasterize = select_rasterizer(device)
    log.info("gsplat on %s (%s): %d iterations at %s (downscale %d%s), up to %d Gaussians",
             device, rasterizer, config.iterations, scene.resolution, config.downscale,
             ", undistorted" if scene.undistorted else "", config.max_gaussians)
    if not scene.test:
        log.warning("no held-out views (eval_every=%d): PSNR is not measured", config.eval_every)

    def on_step(done: int, total: int, detail: str) -> None:
        if progress:
            progress("train", done, total, detail)

    result = train(scene, config, rasterize, device, progress=on_step, log=log.info)

    target = layout.recipe_output(config.recipe)
    preview_view = (scene.test or scene.train)[0].to(device)
    with publishing(target) as staged:
        gaussians = write_splat(staged, result.params)
        if gaussians == 0:
            raise ToolError("training ended with 0 Gaussians (all pruned): check the images and the sparse model")
        write_preview(staged / PREVIEW_FILE, result.params, preview_view, result.sh_degree, rasterize)
        metrics = {
            "gaussians": gaussians, "gaussians_initial": result.gaussians_initial,
            "iterations": result.iterations, "device": device, "rasterizer": rasterizer,
            "train_seconds": round(result.train_seconds, 2), "resolution": scene.resolution,
            "downscale": config.downscale, "undistorted": scene.undistorted, "sh_degree": result.sh_degree,
            "train_views": [v.name for v in scene.train], "test_views": [v.name for v in scene.test],
            "first_eval": result.first_eval, "last_eval": result.last_eval, "history": result.history,
            "refinements": result.refinements,
            "preview_view": preview_view.name, "config": config.as_dict(),
        }
        write_metrics(staged / METRICS_FILE, metrics)
    preview_copy = layout.previews / f"{config.recipe}.png"
    copy_atomic(target / PREVIEW_FILE, preview_copy)

    root = layout.root
    metadata: dict[str, Any] = {
        "gaussians": gaussians,
        "iterations": result.iterations,
        "device": device,
        "rasterizer": rasterizer,
        "train_seconds": round(result.train_seconds, 1),
        "psnr_first_eval": _rounded(result.first_eval["psnr"], 2),
        "psnr_last_eval": _rounded(result.last_eval["psnr"], 2),
        "ssim_last_eval": _rounded(result.last_eval["ssim"], 4),
        "resolution": scene.resolution,
        "held_out_views": len(scene.test),
        "splat_path": (target / SPLAT_FILE).relative_to(root).as_posix(),
        "preview_path": preview_copy.relative_to(root).as_posix(),
        "metrics_path": (target / METRICS_FILE).relative_to(root).as_posix(),
        "total_seconds": round(time.perf_counter() - started, 1),
    }
    return {key: value for key, value in metadata.items() if value is not None}


def main(run: ToolRun) -> None:
    config = GsplatConfig.from_params(run.params)
    metadata = build_splat(run.layout, config, run.log, run.progress)
    target = run.layout.recipe_output(config.recipe)
    run.report(metadata, data_version=data_version(target))
