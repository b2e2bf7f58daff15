"""The scene itself, one partition per (batch, recipe): ``reconstruction`` then ``masks``.

A fork is another recipe partition of the same batch: its upstream ``frames`` and
``sparse_model`` are the batch's existing materialisations (multi-to-single partition
mapping), so nothing upstream runs again and the lineage shows where it came from.
"""


import warnings

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
)
from pydantic import Field

from onyx_tools.splat_ply import SplatFormatError, splat_summary

from ..partitions import batch_recipes
from ..pools import GPU_POOL
from ..recipes import get_recipe
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
    """Knobs shared by the reconstruction tools; None leaves the recipe's default."""

    iterations: int | None = Field(None, gt=0, description="training iterations (gsplat, MILo)")
    device: str = Field("auto", description="auto, cpu or cuda")
    backend: str = Field("auto", description="openmvs: auto, openmvs or cpu")


@asset(
    partitions_def=batch_recipes,
    deps=[AssetDep(frames, partition_mapping=per_batch), AssetDep(sparse_model, partition_mapping=per_batch)],
    group_name="reconstruction",
    code_version="1",
    kinds={"pytorch"},
    pool=GPU_POOL,
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
    if not (layout.sparse_model / "images.bin").is_file():
        raise Failure(
            f"batch {batch} has no sparse model yet: materialise sparse_model for partition {batch} "
            f"first (onyx resume {batch}, or select sparse_model in the UI)", allow_retries=False)
    invocation = runner.run(
        context,
        tool=recipe.tool,
        batch_dir=layout.root,
        params={"recipe": recipe.name, "scene": settings.scene, **config.model_dump()},
        gpu=recipe.gpu,
    )
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


class MasksConfig(Config):
    model_id: str = Field("nvidia/segformer-b5-finetuned-ade-640-640", description="SegFormer (ADE20K) model")
    model_dir: str | None = Field(None, description="folder with the weights; default: baked into the image")
    batch_size: int = Field(4, gt=0)
    device: str = "auto"


@asset(
    partitions_def=batch_recipes,
    deps=[reconstruction, AssetDep(frames, partition_mapping=per_batch)],
    group_name="segment",
    code_version="1",
    kinds={"pytorch"},
    pool=GPU_POOL,
    retry_policy=TOOL_RETRY,
    check_specs=[AssetCheckSpec("one_mask_per_image", asset="masks",
                                description="every image has its mask (or the scene is indoor and skipped)")],
    description="SegFormer masks of sky, water, people and boats in masks/, and the splat without them.",
)
def masks(context: AssetExecutionContext, config: MasksConfig, storage: BatchStorage, runner: ToolRunner):
    batch, recipe_key = batch_and_recipe(context)
    recipe = get_recipe(recipe_key)
    layout = storage.layout(batch)
    settings = storage.settings(batch)
    params = {"recipe": recipe.name, "scene": settings.scene, **config.model_dump(exclude_none=True)}
    invocation = runner.run(context, tool="segformer", batch_dir=layout.root, params=params, gpu=True)
    result = materialization(invocation, layout)
    yield result
    skipped = bool(getattr((result.metadata or {}).get("skipped"), "value", False))
    made, images = int(metadata_number(result, "masks")), int(metadata_number(result, "images"))
    yield AssetCheckResult(
        check_name="one_mask_per_image",
        passed=skipped or (images > 0 and made == images),
        severity=AssetCheckSeverity.ERROR,
        metadata={"masks": made, "images": images, "skipped": skipped},
    )
