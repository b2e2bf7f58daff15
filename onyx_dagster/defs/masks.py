"""Semantic masks and the splat without what they cover (``masks``, the segformer tool)."""

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetDep,
    AssetExecutionContext,
    Config,
    asset,
)
from onyx_segformer.config import MasksOptions

from ..code_versions import tool_code_version
from ..partitions import batch_recipes
from ..pools import HEAVY_POOL
from ..recipes import get_recipe
from ..resources import BatchStorage, ToolRunner
from .ingest import frames
from .reconstruction import batch_and_recipe, per_batch, reconstruction
from .tool_step import TOOL_RETRY, materialization, metadata_number


class MasksConfig(Config, MasksOptions):
    """The segformer tool's options (onyx_segformer.config)."""


@asset(
    partitions_def=batch_recipes,
    deps=[reconstruction, AssetDep(frames, partition_mapping=per_batch)],
    group_name="segment",
    code_version=tool_code_version("segformer"),
    kinds={"pytorch"},
    pool=HEAVY_POOL,
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
