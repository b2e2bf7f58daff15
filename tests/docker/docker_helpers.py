"""Shared bits of the docker tests: run one step of a tool through a runner, read failures."""


import time
from pathlib import Path

from dagster import AssetExecutionContext, asset, materialize

from onyx_dagster.resources.runners import ToolRunner

PROBE_DIR = Path(__file__).resolve().parent / "probe"
PROBE_TAG = "test"
PROBE_IMAGE = f"onyx-probe:{PROBE_TAG}"


def run_step(runner: ToolRunner, batch_dir: Path, *, tool: str = "probe", params=None, inputs=None,
             gpu: bool = False, instance=None):
    """Materialise one asset whose step is ``runner.run(tool=...)``; returns the (possibly failed) result."""

    @asset(name=f"{tool}_step")
    def step(context: AssetExecutionContext, runner: ToolRunner):
        invocation = runner.run(context, tool=tool, batch_dir=batch_dir, params=params or {},
                                inputs=inputs or {}, gpu=gpu)
        return invocation.get_materialize_result()

    return materialize([step], resources={"runner": runner}, raise_on_error=False, instance=instance)


def failure_text(result) -> str:
    """Everything a person would read about the failure: the Failure's description and the error."""
    parts = []
    for event in result.get_step_failure_events():
        data = event.step_failure_data
        if data.user_failure_data is not None and data.user_failure_data.description:
            parts.append(data.user_failure_data.description)
        if data.error is not None:
            parts.append(data.error.to_string())
    return "\n".join(parts)


def metadata(result, asset_name: str) -> dict:
    events = result.get_asset_materialization_events()
    assert events, "no materialisation"
    return {k: getattr(v, "value", v) for k, v in events[-1].materialization.metadata.items()}


def containers_of_batch(client, batch_name: str):
    return client.containers.list(all=True, ignore_removed=True,
                                  filters={"label": [f"onyx.batch={batch_name}", "onyx.managed=true"]})


def wait_for(predicate, timeout: float, every: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    return predicate()
