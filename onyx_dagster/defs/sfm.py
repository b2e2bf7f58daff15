"""Camera poses and sparse points (``sparse_model``, the sfm tool)."""


from typing import Literal

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    Config,
    asset,
)
from pydantic import Field

import onyx_sfm

from ..partitions import batches
from ..pools import GPU_POOL
from ..resources import BatchStorage, ToolRunner
from .ingest import frames
from .tool_step import TOOL_RETRY, materialization, metadata_number


class SparseModelConfig(Config):
    matching: Literal["auto", "sequential", "loop", "exhaustive"] = Field(
        "auto", description="auto: sequential, then loop detection / exhaustive if it registers too little")
    mapper: Literal["incremental", "global"] = "incremental"
    spherical: Literal["auto", "rig", "spherical"] = Field(
        "auto", description="360 video: views as a camera rig, or SfM on the panoramas")
    min_registered_ratio: float = Field(0.9, gt=0, le=1, description="below this, retry with a wider matcher")


@asset(
    partitions_def=batches,
    deps=[frames],
    group_name="sfm",
    code_version=onyx_sfm.__version__,
    kinds={"colmap"},
    pool=GPU_POOL,
    retry_policy=TOOL_RETRY,
    check_specs=[AssetCheckSpec("registration_ratio", asset="sparse_model",
                                description="the model registers at least 90% of the images")],
    description="COLMAP sparse model of the frames in sparse/0 (binary), the largest model kept.",
)
def sparse_model(context: AssetExecutionContext, config: SparseModelConfig, storage: BatchStorage,
                 runner: ToolRunner):
    layout = storage.layout(context.partition_key)
    invocation = runner.run(
        context, tool="sfm", batch_dir=layout.root, params=config.model_dump(), gpu=True)
    result = materialization(invocation, layout)
    yield result
    ratio = metadata_number(result, "registered_ratio")
    yield AssetCheckResult(
        check_name="registration_ratio",
        passed=ratio >= 0.9,
        severity=AssetCheckSeverity.WARN,
        metadata={"registered_ratio": ratio, "threshold": 0.9},
    )
