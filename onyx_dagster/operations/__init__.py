"""Batch operations over a Dagster instance: what the ``onyx`` command does, as functions.

    from onyx_dagster.operations import Onyx, verbs, archive, purge
    with Onyx(data_root) as onyx:
        prepared = verbs.prepare_run(onyx, {"input": ..., "scene": ..., ...}, key=None)
        verbs.run_new(onyx, prepared)

Status always comes from the instance (runs, event log); see ``state``.
"""

from .context import (
    ASSET_ORDER,
    BATCH_ASSETS,
    RECIPE_ASSETS,
    STEPS,
    Onyx,
    dagster_home_for,
    resolve_data_root,
)
from .errors import BatchBusy, OperationError, RunFailed

__all__ = [
    "ASSET_ORDER", "BATCH_ASSETS", "RECIPE_ASSETS", "STEPS", "BatchBusy", "Onyx", "OperationError", "RunFailed",
    "dagster_home_for", "resolve_data_root",
]
