"""Concurrency pools: GPU steps take a slot in ``gpu`` (limit from dagster.yaml, 1 by default).

Dagster creates a pool's row the first time a step asks for it; two runs asking at the
same moment on a fresh SQLite instance can both miss the default limit and block
forever (seen with dagster 1.13.27). Whoever creates or opens an instance for Onyx runs
``ensure_pools`` first, so the row exists before any run races for it.
"""

from dagster import DagsterInstance

GPU_POOL = "gpu"


def ensure_pools(instance: DagsterInstance) -> None:
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return
    if GPU_POOL not in storage.get_concurrency_keys():
        storage.initialize_concurrency_limit_to_default(GPU_POOL)
