"""Camera poses and sparse points (``sparse_model``, the sfm tool)."""


from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    Config,
    asset,
    define_asset_job,
)
from onyx_sfm.config import SfmOptions

from ..code_versions import tool_code_version
from ..partitions import batches
from ..pools import HEAVY_POOL
from ..resources import BatchStorage, ToolRunner
from .ingest import frames, video
from .tool_step import TOOL_RETRY, materialization, metadata_number


class SparseModelConfig(Config, SfmOptions):
    """The sfm tool's options (onyx_sfm.config)."""


@asset(
    partitions_def=batches,
    deps=[frames],
    group_name="sfm",
    code_version=tool_code_version("sfm"),
    kinds={"colmap"},
    pool=HEAVY_POOL,
    retry_policy=TOOL_RETRY,
    check_specs=[AssetCheckSpec("registration_ratio", asset="sparse_model",
                                description="the model registers at least min_registered_ratio of the images "
                                            "(a partial model the settings accepted warns here)")],
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
    # below the ratio the tool fails the step unless accept_partial_model, so a failed check is
    # a partial model the user chose to keep
    yield AssetCheckResult(
        check_name="registration_ratio",
        passed=ratio >= config.min_registered_ratio,
        severity=AssetCheckSeverity.WARN,
        metadata={"registered_ratio": ratio, "threshold": config.min_registered_ratio,
                  "accept_partial_model": config.accept_partial_model},
    )


# Backfills of many batches from the command line (Dagster's CLI backfills jobs, not asset
# selections): `dagster job backfill -w workspace.yaml -l onyx -j batch_job --partitions a,b`.
batch_job = define_asset_job(
    "batch_job", selection=[video, frames, sparse_model],
    description="video, frames and sparse_model of a batch: `dagster job backfill -j batch_job`")
