"""Concurrency pools: the heavy steps (sparse_model, reconstruction, masks) take a slot in one.

- ``gpu`` on a host with an NVIDIA GPU: one heavy step per GPU at a time (limit from dagster.yaml,
  1 by default), while the CPU steps of other batches (ingest, the viewer) overlap them.
- ``cpu`` on a host without one, where the heavy steps run on the CPU (SfM, CPU training, CPU MVS):
  as many slots as the cores hold steps of ``step_threads()`` threads each, so two runs on 2 cores
  never run two SfMs at once (each would take both cores and both would take twice as long), and
  ingest of one batch still overlaps the heavy step of another.

The host is the one that loads the code location (the local and docker runners run tools there).

Dagster creates a pool's row the first time a step asks for it; two runs asking at the
same moment on a fresh SQLite instance can both miss the default limit and block
forever (seen with dagster 1.13.27). Whoever creates or opens an instance for Onyx runs
``ensure_pools`` first, so the rows exist (the cpu pool sized from the cores) before any run
races for them.
"""

from __future__ import annotations

import os

from dagster import DagsterInstance
from onyx_tools.gpu import nvidia_gpu_listed

GPU_POOL = "gpu"
CPU_POOL = "cpu"


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS
        return os.cpu_count() or 1


def step_threads(cores: int | None = None) -> int:
    """Threads one CPU-heavy step gets: all of 2-7 cores, a quarter of more (SfM and training scale
    sublinearly past a few threads, so more steps side by side do more work)."""
    cores = cores or usable_cores()
    return min(cores, max(2, cores // 4))


def cpu_slots(cores: int | None = None) -> int:
    cores = cores or usable_cores()
    return max(1, cores // step_threads(cores))


HEAVY_POOL = GPU_POOL if nvidia_gpu_listed() else CPU_POOL


def ensure_pools(instance: DagsterInstance) -> None:
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return
    keys = storage.get_concurrency_keys()
    if GPU_POOL not in keys:
        storage.initialize_concurrency_limit_to_default(GPU_POOL)
    if CPU_POOL not in keys:  # sized here once; a limit set later (UI, CLI) is kept
        storage.set_concurrency_slots(CPU_POOL, cpu_slots())
