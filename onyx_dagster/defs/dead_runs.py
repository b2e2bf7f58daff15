"""Runs whose ``onyx`` process is gone are failed, in the instance: the UI, the run queue and the
``gpu`` pool see it without anyone running ``onyx list`` or ``onyx resume``.

A run the ``onyx`` command executes in its own process carries ``onyx/pid`` and ``onyx/host``;
Dagster's run monitoring (dagster.yaml) watches the runs its launcher started, not those. This
sensor, running wherever the daemon runs, marks failed each in-progress run of this host whose
process no longer exists (kill -9, a crash), and frees the pool slots it held.
"""

from dagster import DefaultSensorStatus, SensorEvaluationContext, SkipReason, sensor

from ..operations.state import reap_all_dead_runs


@sensor(name="dead_onyx_runs", minimum_interval_seconds=30, default_status=DefaultSensorStatus.RUNNING,
        description="Marks failed the runs whose onyx process is gone (killed or crashed).")
def dead_onyx_runs(context: SensorEvaluationContext):
    reaped = reap_all_dead_runs(context.instance)
    for line in reaped:
        context.log.warning(line)
    return SkipReason(f"{len(reaped)} run(s) marked failed" if reaped else "no run of a dead onyx process")
