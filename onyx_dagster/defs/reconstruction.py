"""The scene itself, one partition per (batch, recipe): ``reconstruction``.

A fork is another recipe partition of the same batch: its upstream ``frames`` and
``sparse_model`` are the batch's existing materialisations (multi-to-single partition
mapping), so nothing upstream runs again and the lineage shows where it came from.
"""


import warnings
from typing import Any

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetDep,
    AssetExecutionContext,
    BetaWarning,
    Config,
    Failure,
    MultiPartitionKey,
    MultiToSingleDimensionPartitionMapping,
    asset,
    define_asset_job,
)
from onyx_tools.errors import ToolError
from onyx_tools.splat_ply import SplatFormatError, splat_summary
from pydantic import Field

from ..code_versions import tool_code_version
from ..partitions import batch_recipes
from ..pools import HEAVY_POOL
from ..recipes import RECIPES, RECONSTRUCTION_TOOLS, get_recipe
from ..resources import BatchStorage, ToolRunner
from .ingest import frames
from .sfm import sparse_model
from .tool_step import TOOL_RETRY, materialization, metadata_number

with warnings.catch_warnings():  # beta in dagster 1.13, and exactly the mapping a fork needs
    warnings.simplefilter("ignore", BetaWarning)
    per_batch = MultiToSingleDimensionPartitionMapping(partition_dimension_name="batch")


def batch_and_recipe(context: AssetExecutionContext) -> tuple[str, str]:
    key = context.partition_key
    if not isinstance(key, MultiPartitionKey):
        raise Failure(f"partition {key!r} is not a batch x recipe partition", allow_retries=False)
    return key.keys_by_dimension["batch"], key.keys_by_dimension["recipe"]


class ReconstructionConfig(Config):
    settings: dict[str, Any] = Field(
        default_factory=dict,
        description="the recipe's tool settings over its preset, e.g. {'iterations': 3000}; the tool's "
                    "settings model (onyx_<tool>.config) names any it does not know")


@asset(
    partitions_def=batch_recipes,
    deps=[AssetDep(frames, partition_mapping=per_batch), AssetDep(sparse_model, partition_mapping=per_batch)],
    group_name="reconstruction",
    # One code version for every recipe (Dagster versions assets, not partitions): a change to any
    # reconstruction tool or preset marks each recipe's reconstruction stale.
    code_version=tool_code_version(*RECONSTRUCTION_TOOLS, extra={name: dict(r.preset) for name, r in RECIPES.items()}),
    kinds={"pytorch"},
    pool=HEAVY_POOL,
    retry_policy=TOOL_RETRY,
    check_specs=[AssetCheckSpec("output_valid", asset="reconstruction",
                                description="the splat PLY reads back with > 0 Gaussians, or the mesh has faces")],
    description="The recipe's scene in output/<recipe>/: a Gaussian splat (gsplat, MILo) or a mesh (OpenMVS).",
)
def reconstruction(context: AssetExecutionContext, config: ReconstructionConfig, storage: BatchStorage,
                   runner: ToolRunner):
    batch, recipe_key = batch_and_recipe(context)
    recipe = get_recipe(recipe_key)
    layout = storage.layout(batch)
    settings = storage.settings(batch)
    tool_settings = recipe.tool_settings(settings.scene, config.settings)
    try:
        recipe.validate(tool_settings)
    except ToolError as error:
        raise Failure(f"recipe {recipe.name}: {error}", allow_retries=False) from None
    if not (layout.sparse_model / "images.bin").is_file():
        raise Failure(
            f"batch {batch} has no sparse model yet: materialise sparse_model for partition {batch} "
            f"first (onyx resume {batch}, or select sparse_model in the UI)", allow_retries=False)
    invocation = runner.run(context, tool=recipe.tool, batch_dir=layout.root, params=tool_settings, gpu=recipe.gpu)
    result = materialization(invocation, layout)
    yield result
    yield _output_check(result, recipe.produces, layout.root)


def _output_check(result, produces: str, batch_root) -> AssetCheckResult:
    if produces == "splat":
        splat = (result.metadata or {}).get("splat_path")
        path = getattr(splat, "path", None) or getattr(splat, "value", None)
        try:
            summary = splat_summary(path) if path else {"gaussians": 0}
            passed, details = summary["gaussians"] > 0, summary
        except SplatFormatError as error:
            passed, details = False, {"error": str(error)}
        return AssetCheckResult(check_name="output_valid", passed=passed,
                                severity=AssetCheckSeverity.ERROR, metadata=details)
    faces = int(metadata_number(result, "faces"))
    return AssetCheckResult(check_name="output_valid", passed=faces > 0,
                            severity=AssetCheckSeverity.ERROR, metadata={"faces": faces})


# Backfills of many batches from the command line (Dagster's CLI backfills jobs, not asset
# selections): `dagster job backfill -w workspace.yaml -l onyx -j recipe_job --partitions 'a|gaussian-proto'`.
recipe_job = define_asset_job(
    "recipe_job", selection=["reconstruction", "masks", "viewer"],
    description="reconstruction, masks and viewer of a batch x recipe (keys 'batch|recipe'): "
                "`dagster job backfill -j recipe_job`")
