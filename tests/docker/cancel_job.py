"""The orchestrator that test_docker_runner's cancel tests interrupt, as a separate process.

    python cancel_job.py BATCH_DIR [--dagster-signals]       # materialise in this process
    ONYX_TEST_BATCH=BATCH_DIR dagster asset materialize -f cancel_job.py --select long_step
                                                             # Dagster's CLI: the step in a child process

One asset whose step runs the probe tool for 300 s through the docker runner. --dagster-signals maps
SIGTERM to SIGINT the way Dagster's run worker does.
"""

import os
import sys
from pathlib import Path

from dagster import (
    AssetExecutionContext,
    DagsterInstance,
    Definitions,
    asset,
    materialize,
)

from onyx_dagster.resources.docker_runner import DockerRunner


@asset
def long_step(context: AssetExecutionContext, runner: DockerRunner) -> None:
    runner.run(context, tool="probe", batch_dir=Path(os.environ["ONYX_TEST_BATCH"]), params={"sleep": 300})


defs = Definitions(assets=[long_step], resources={"runner": DockerRunner(tag="test")})

if __name__ == "__main__":
    os.environ["ONYX_TEST_BATCH"] = sys.argv[1]
    if "--dagster-signals" in sys.argv:
        from dagster._utils.interrupts import setup_interrupt_handlers

        setup_interrupt_handlers()
    print("materialising", flush=True)
    result = materialize([long_step], resources={"runner": DockerRunner(tag="test")},
                         instance=DagsterInstance.ephemeral(), raise_on_error=False)
    print("finished", result.success, flush=True)
