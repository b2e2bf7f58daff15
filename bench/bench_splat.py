"""CPU splat training: the tile rasterizer against the plain-PyTorch one, on the demo scene.

    .venv/bin/python -m bench splat

Scene: the demo's synthetic room walk (onyx_sample, 48 frames 640x360) through the real ingest
and sfm tools (``python -m onyx_sample.demo --until SFM`` into bench/out/splat/, made once and
reused), trained at 320x180 (downscale 2), every 8th frame held out.

1. Step speed: training steps (render, L1 + D-SSIM, backward, Adam) per second with each
   rasterizer on the same views and the same Gaussians (every SfM point, no densification, SH
   degree 3), timed over ONYX_BENCH_SPLAT_STEPS steps (default 30) after 3 warm-up steps. Both
   run with the tool's thread settings (the tile kernels on every core, PyTorch's ops on one).
   Goal: >= 10x the steps per second.
2. PSNR per minute: the gaussian-proto recipe's training (``cpu_budget_s`` from
   ONYX_BENCH_SPLAT_BUDGET, default 120 s, the recipe's preset) with each rasterizer, held-out
   PSNR at each quarter of the budget; the tile rasterizer's final held-out PSNR against 25 dB.

The machine is shared: the load average is printed with the figures.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from .harness import OUT, REPO, Row

DATA = OUT / "splat"
DOWNSCALE = 2


def demo_batch() -> Path:
    """The demo's batch folder after SfM (made by the real pipeline the first time)."""
    root = DATA / "data"
    batches = sorted(p for p in root.glob("sample-walk-*") if (p / "sparse" / "0" / "images.bin").is_file())
    if not batches:
        print("bench splat: making the demo batch (render, ingest, SfM: a few minutes)", file=sys.stderr)
        env = {**os.environ, "DAGSTER_HOME": str(DATA / "dagster-home")}
        subprocess.run([sys.executable, "-m", "onyx_sample.demo", "--data-root", str(root),
                        "--samples", str(DATA / "samples"), "--until", "SFM"], check=True, cwd=REPO, env=env)
        batches = sorted(p for p in root.glob("sample-walk-*") if (p / "sparse" / "0" / "images.bin").is_file())
    return batches[-1]


def load() -> str:
    return "load average " + " ".join(f"{v:.1f}" for v in os.getloadavg())


def step_rate(scene, rasterizer_name: str, steps: int) -> float:
    """Training steps per second with every SfM point as a Gaussian, no densification."""
    import torch

    from onyx_gsplat.config import GsplatConfig
    from onyx_gsplat.gaussians import init_gaussians, learning_rates, make_optimizers
    from onyx_gsplat.metrics import ssim
    from onyx_gsplat.render import rasterizer
    from onyx_gsplat.train import render_view

    config = GsplatConfig()
    rasterize = rasterizer(rasterizer_name)
    params = init_gaussians(scene.points, scene.colors, 3, seed=0)
    optimizers = make_optimizers(params, learning_rates(config, scene.scene_scale))
    started = 0.0
    for step in range(steps + 3):
        if step == 3:
            started = time.perf_counter()
        view = scene.train[step % len(scene.train)]
        image, _, _ = render_view(params, view, 3, rasterize)
        loss = 0.8 * torch.abs(image - view.image).mean() + 0.2 * (1.0 - ssim(image, view.image))
        loss.backward()
        for optimizer in optimizers.values():
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
    return steps / (time.perf_counter() - started)


def budget_run(scene, rasterizer_name: str, budget: float) -> dict:
    from onyx_gsplat.config import GsplatConfig
    from onyx_gsplat.plan import make_plan
    from onyx_gsplat.render import rasterizer
    from onyx_gsplat.train import train

    config = GsplatConfig(device="cpu", cpu_budget_s=budget, downscale=DOWNSCALE,
                          rasterizer="torch" if rasterizer_name == "torch-cpu" else "tiles")
    plan = make_plan(config, "cpu", scene.source_width, scene.source_height)
    result = train(scene, config, plan, rasterizer(rasterizer_name))
    return {"plan": plan, "steps": result.iterations, "gaussians": len(result.params["means"]),
            "checkpoints": result.checkpoints, "first": result.first_eval["psnr"]}


def run() -> list[Row]:
    from onyx_gsplat.dataset import load_scene
    from onyx_gsplat.plan import available_threads
    from onyx_gsplat.tool import use_threads
    from onyx_tools.layout import BatchLayout

    threads = available_threads()
    use_threads(threads)  # before PyTorch's first operation (see use_threads)
    batch = demo_batch()
    scene = load_scene(BatchLayout(batch), lambda width, height: DOWNSCALE, eval_every=8)
    steps = int(os.environ.get("ONYX_BENCH_SPLAT_STEPS", 30))
    budget = float(os.environ.get("ONYX_BENCH_SPLAT_BUDGET", 120))
    n_points = len(scene.points)
    print(f"bench splat: {batch.name}, {len(scene.train)} training / {len(scene.test)} held-out views at "
          f"{scene.resolution}, {n_points} SfM points, {threads} thread(s); {load()}", file=sys.stderr, flush=True)

    rates = {}
    for name in ("tiles-cpu", "torch-cpu"):
        rates[name] = step_rate(scene, name, steps if name == "tiles-cpu" else max(5, steps // 6))
        print(f"  {name}: {rates[name]:.2f} steps/s; {load()}", file=sys.stderr, flush=True)
    rows = [Row(f"splat training step, demo scene {scene.resolution}, {n_points} Gaussians (tiles vs torch)",
                1.0 / rates["tiles-cpu"], 1.0 / rates["torch-cpu"], "s", "<= 0.1x",
                f"{rates['tiles-cpu']:.2f} vs {rates['torch-cpu']:.2f} steps/s = "
                f"{rates['tiles-cpu'] / rates['torch-cpu']:.1f}x; {threads} thread(s); {load()}")]

    runs = {}
    for name in ("tiles-cpu", "torch-cpu"):
        runs[name] = budget_run(scene, name, budget)
        marks = ", ".join(f"{c['seconds'] / 60:.1f} min {c['psnr']:.2f} dB" for c in runs[name]["checkpoints"])
        print(f"  {name} {budget:.0f} s: {runs[name]['steps']} steps, {runs[name]['gaussians']} Gaussians; "
              f"held-out PSNR {runs[name]['first']:.2f} dB at 0 -> {marks}; {load()}", file=sys.stderr, flush=True)
    new, old = runs["tiles-cpu"], runs["torch-cpu"]
    per_minute = "; ".join(
        f"{name}: " + ", ".join(f"{c['seconds'] / 60:.1f} min {c['psnr']:.1f} dB" for c in run["checkpoints"])
        for name, run in runs.items())
    rows.append(Row(f"splat held-out PSNR after {budget:.0f} s of training, demo scene {scene.resolution}",
                    new["checkpoints"][-1]["psnr"], old["checkpoints"][-1]["psnr"], "dB", ">= 25 dB",
                    f"PSNR per minute: {per_minute}; steps {new['steps']} vs {old['steps']}, Gaussians "
                    f"{new['gaussians']} vs {old['gaussians']} (budget {new['plan'].max_gaussians}); {load()}"))
    return rows
