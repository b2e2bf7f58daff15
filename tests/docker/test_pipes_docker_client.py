"""dagster_docker.PipesDockerClient itself, in a tiny asset, on a batch folder: the base the runner builds on.

It also pins down what PipesDockerClient does not do (why docker_runner.OnyxPipesDockerClient exists):
it stops the container when the step ends but never removes it.
"""

import os

import pytest
from dagster import AssetExecutionContext, asset, materialize
from dagster_docker import PipesDockerClient

pytestmark = pytest.mark.docker

TOOL = """
from pathlib import Path
from dagster_pipes import open_dagster_pipes
with open_dagster_pipes() as pipes:
    root = Path(pipes.extras["batch_dir"])
    (root / "out.txt").write_text("hello from the container")
    pipes.log.info("wrote out.txt")
    pipes.report_asset_materialization(metadata={"bytes": (root / "out.txt").stat().st_size})
"""


def test_pipes_docker_client_runs_a_step_on_a_batch_folder(onyx_images, docker_daemon, batch_dir):
    label = {"onyx.managed": "true", "onyx.batch": batch_dir.name, "onyx.tool": "pipes-probe"}

    @asset
    def hello(context: AssetExecutionContext, pipes_docker: PipesDockerClient):
        return pipes_docker.run(
            context=context,
            image="onyx-base:latest",
            command=["python", "-c", TOOL],
            extras={"batch_dir": "/data"},
            container_kwargs={"volumes": {str(batch_dir): {"bind": "/data", "mode": "rw"}},
                              "user": f"{os.getuid()}:{os.getgid()}", "init": True, "labels": label,
                              "environment": {"HOME": "/tmp"}, "network_mode": "none"},
        ).get_materialize_result()

    try:
        result = materialize([hello], resources={"pipes_docker": PipesDockerClient()})
        assert result.success
        events = result.get_asset_materialization_events()
        assert events[0].materialization.metadata["bytes"].value == len("hello from the container")
        assert (batch_dir / "out.txt").read_text() == "hello from the container"
        left = docker_daemon.containers.list(all=True, filters={"label": f"onyx.batch={batch_dir.name}"})
        # PipesDockerClient leaves its (exited) container behind; the Docker runner removes it.
        assert [c.status for c in left] == ["exited"]
    finally:
        for container in docker_daemon.containers.list(all=True, filters={"label": f"onyx.batch={batch_dir.name}"}):
            container.remove(force=True)
