"""The run queue of the embedded default: Dagster's queued run coordinator, quick to start queued work.

dagster.yaml names ``OnyxRunCoordinator`` with ``dequeue_interval_seconds`` (Dagster's own setting:
how often the daemon starts queued runs, 5 s by default) and ``backfill_interval_seconds`` (how often
the daemon's backfill loop turns new backfills into runs: 30 s in Dagster 1.13, with no setting of
its own). The daemon builds the run coordinator from dagster.yaml before its loops start, so the
interval set here is the one its backfill loop runs at. Measured on 2 shared cores (bench/bench_backfill.py):
the first run of a four-video backfill started about 35 s after launch with Dagster's intervals.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dagster import Field, QueuedRunCoordinator

from .dagster_internals import set_backfill_loop_interval


class OnyxRunCoordinator(QueuedRunCoordinator):
    backfill_interval_seconds: int | None = None

    @classmethod
    def config_type(cls):
        return {
            **QueuedRunCoordinator.config_type(),
            "backfill_interval_seconds": Field(
                int, is_required=False,
                description="seconds between the daemon's looks for new backfills (Dagster's own: 30)"),
        }

    @classmethod
    def from_config_value(cls, inst_data, config_value: Mapping[str, Any]):
        queued = {key: value for key, value in config_value.items() if key != "backfill_interval_seconds"}
        coordinator = super().from_config_value(inst_data, queued)
        coordinator.backfill_interval_seconds = config_value.get("backfill_interval_seconds")
        if coordinator.backfill_interval_seconds:
            set_backfill_loop_interval(coordinator.backfill_interval_seconds)
        return coordinator
