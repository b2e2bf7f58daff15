"""What a run will do: resolution, Gaussian budget, iterations or time, rasterizer, threads.

On CUDA: Onyx 1.0's (run_pipeline.py) splatfacto settings (7,000 iterations; downscale 2 indoors,
4 outdoors; up to 3,000,000 Gaussians). On the CPU the recipe gives a time,
``cpu_budget_s``, and the plan picks the largest image (an integer downscale of the
photographs, with its Gaussian budget) whose steps are cheap enough for ``MIN_STEPS`` steps
in that time (``CPU_COST``, measured on the tile rasterizer), then trains until the time
is spent: the schedules (learning rate, SH bands, densification, opacity resets) follow the
fraction of the time used, so a slower or busier machine does fewer steps of the same
schedule rather than overrunning.
Given ``iterations``, the schedules follow the step count instead and the time is not
watched. Every choice is reported in the step's metadata.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass

from .config import GsplatConfig

CUDA_ITERATIONS = 7000
CUDA_MAX_GAUSSIANS = 3_000_000

# CPU seconds per training step on one core of the 2-core development machine (Xeon,
# tile rasterizer, SH degree 3, L1 + D-SSIM, fused Adam): a fixed part, a part per pixel
# (compositing forward and backward, the losses) and one per Gaussian (projection, binning,
# Adam, and the deeper compositing more Gaussians bring). Measured on the demo scene at
# 320x180: 118 ms a step with its 10,073 initial Gaussians (one thread), 0.21 CPU-seconds a
# step (two threads) between 15,000 and 40,000 Gaussians.
CPU_COST = {"step": 0.01, "pixel": 1.2e-6, "gaussian": 4.0e-6}
MIN_WIDTH = 128           # px: the plan never trains on smaller images (unless the photographs are)
# A budget run should get at least this many steps: the demo scene's held-out PSNR was 28.6 dB
# after 500 steps at 320x180 (40,000 Gaussians), and 3DGS's schedule wants room after the
# densification window.
MIN_STEPS = 1000
GAUSSIANS_PER_PIXEL = 0.6  # the budget grows with the image, as detail does: 320x180 -> 34,560
MIN_GAUSSIANS = 5000


@dataclass(frozen=True)
class Plan:
    device: str
    rasterizer: str             # "gsplat-cuda", "tiles-cpu" or "torch-cpu"
    downscale: int
    max_gaussians: int
    iterations: int | None      # fixed step count; None: train until budget_s is spent
    budget_s: float | None      # seconds of training; None when iterations are fixed
    threads: int
    estimated_steps: int | None = None  # what the cost model expects from the budget

    def as_dict(self) -> dict:
        return asdict(self)


def available_threads() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS
        return os.cpu_count() or 1


def cpu_step_seconds(width: int, height: int, gaussians: int, threads: int) -> float:
    """The cost model's seconds per step (two threads do the compiled parts about 1.6x faster than one)."""
    one_core = CPU_COST["step"] + CPU_COST["pixel"] * width * height + CPU_COST["gaussian"] * gaussians
    return one_core / min(1.0 + 0.6 * (threads - 1), float(threads))


def make_plan(config: GsplatConfig, device: str, source_width: int, source_height: int) -> Plan:
    threads = config.threads or available_threads()
    if device == "cuda":
        downscale = config.downscale or (2 if config.scene == "indoor" else 4)
        return Plan(device=device, rasterizer="gsplat-cuda", downscale=downscale,
                    max_gaussians=config.max_gaussians or CUDA_MAX_GAUSSIANS,
                    iterations=config.iterations or CUDA_ITERATIONS, budget_s=None, threads=threads)
    rasterizer = "torch-cpu" if config.rasterizer == "torch" else "tiles-cpu"
    aspect = source_height / source_width
    budget = config.cpu_budget_s

    def gaussians_for(width: int) -> int:
        return config.max_gaussians or max(MIN_GAUSSIANS, int(GAUSSIANS_PER_PIXEL * width * width * aspect))

    def steps_for(width: int) -> int:
        # Gaussians grow from the sparse points to the budget over the first part of the run: on
        # average about 3/4 of the budget is there.
        height = max(1, round(width * aspect))
        return int(budget / cpu_step_seconds(width, height, int(0.75 * gaussians_for(width)), threads))

    downscale = config.downscale or 1
    while (not config.downscale and steps_for(round(source_width / downscale)) < MIN_STEPS
           and round(source_width / (downscale + 1)) >= MIN_WIDTH):
        downscale += 1  # the largest image (smallest integer factor) that gets MIN_STEPS steps
    width = max(1, round(source_width / downscale))
    return Plan(device=device, rasterizer=rasterizer, downscale=downscale, max_gaussians=gaussians_for(width),
                iterations=config.iterations, budget_s=None if config.iterations else budget,
                threads=threads, estimated_steps=None if config.iterations else steps_for(width))


class Progress:
    """The fraction of the run done: of the iterations, or of the time budget (pauses not counted)."""

    def __init__(self, plan: Plan):
        self.plan = plan
        self.elapsed = 0.0
        self._started: float | None = None

    def start(self) -> None:
        self._started = time.perf_counter()

    def pause(self) -> None:
        if self._started is not None:
            self.elapsed += time.perf_counter() - self._started
            self._started = None

    def seconds(self) -> float:
        running = time.perf_counter() - self._started if self._started is not None else 0.0
        return self.elapsed + running

    def fraction(self, step: int) -> float:
        if self.plan.iterations:
            return step / self.plan.iterations
        return min(1.0, self.seconds() / self.plan.budget_s)

    def done(self, step: int) -> bool:
        if self.plan.iterations:
            return step >= self.plan.iterations
        return self.seconds() >= self.plan.budget_s

