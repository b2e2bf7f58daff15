"""The Onyx code location: ``dagster dev -m onyx_dagster.definitions`` (or -w workspace.yaml)."""

from __future__ import annotations

import os

from dagster import Definitions, define_asset_job

from .batches import data_root_from_env
from .defs.drop_folder import DropFolder, drop_folder_sensor
from .defs.ingest import frames, video
from .defs.reconstruction import masks, reconstruction
from .defs.sfm import sparse_model
from .executors import executor_from_env
from .resources import BatchStorage, DockerRunner, LocalRunner, ToolRunner
from .resources.k8s_runner import K8sRunner


def runner_from_env() -> ToolRunner:
    """ONYX_RUNNER picks where tools run: local (default), docker, or k8s (one pod per step)."""
    kind = os.environ.get("ONYX_RUNNER", "local")
    runners = {
        "local": lambda: LocalRunner(),
        "docker": DockerRunner.from_env,  # ONYX_IMAGE_PREFIX, ONYX_IMAGE_TAG, ONYX_GPU_POLICY, ...
        "k8s": K8sRunner.from_env,        # ONYX_K8S_*, ONYX_IMAGE_PREFIX, ONYX_IMAGE_TAG
    }
    if kind not in runners:
        raise ValueError(f"ONYX_RUNNER={kind!r} is not a runner: use one of {', '.join(runners)}")
    return runners[kind]()


# Partitioned jobs for backfills from the command line (Dagster 1.13's CLI backfills jobs, not
# asset selections): `dagster job backfill -w workspace.yaml -l onyx -j batch_job --partitions a,b`.
batch_job = define_asset_job(
    "batch_job", selection=[video, frames, sparse_model],
    description="video, frames and sparse_model of a batch: `dagster job backfill -j batch_job`")
recipe_job = define_asset_job(
    "recipe_job", selection=[reconstruction, masks],
    description="reconstruction and masks of a batch x recipe (keys 'batch|recipe'): `dagster job backfill -j recipe_job`")

defs = Definitions(
    assets=[video, frames, sparse_model, reconstruction, masks],
    jobs=[batch_job, recipe_job],
    executor=executor_from_env(),  # ONYX_EXECUTOR=celery across GPU hosts (deploy/phase2); default: Dagster's
    resources={
        "storage": BatchStorage(data_root=str(data_root_from_env())),
        "runner": runner_from_env(),
        "drop": DropFolder(folder=os.path.abspath(os.environ.get("ONYX_DROP", "onyx-drop"))),
    },
    sensors=[drop_folder_sensor],
)
