"""What a person opens: ``viewer`` writes output/<recipe>/viewer/ (a web page, SOG/SPZ, a fly-through).

One partition per (batch, recipe), downstream of that recipe's ``reconstruction``; mostly CPU
work (Node for the page, the fly-through on a GPU when there is one), so in no pool.
"""

from dagster import AssetCheckResult, AssetCheckSeverity, AssetCheckSpec, AssetExecutionContext, Config, asset
from onyx_viewer.config import ViewerOptions

from ..code_versions import tool_code_version
from ..recipes import get_recipe
from ..resources import BatchStorage, ToolRunner
from .reconstruction import batch_and_recipe, reconstruction
from .tool_step import TOOL_RETRY, materialization, metadata_number


class ViewerAssetConfig(Config, ViewerOptions):
    """The viewer tool's options (onyx_viewer.config)."""


@asset(
    partitions_def=reconstruction.partitions_def,
    deps=[reconstruction],
    group_name="view",
    code_version=tool_code_version("viewer", "gsplat"),  # the fly-through renders with onyx_gsplat's rasterizer
    kinds={"html"},
    retry_policy=TOOL_RETRY,
    check_specs=[AssetCheckSpec("web_formats_complete", asset="viewer",
                                description="the page exists; splat.sog and splat.spz read back with every Gaussian")],
    description="output/<recipe>/viewer/: viewer.html (opens offline), splat.sog + splat.spz, flythrough.mp4.",
)
def viewer(context: AssetExecutionContext, config: ViewerAssetConfig, storage: BatchStorage, runner: ToolRunner):
    batch, recipe_key = batch_and_recipe(context)
    recipe = get_recipe(recipe_key)
    layout = storage.layout(batch)
    params = {"recipe": recipe.name, **config.model_dump(exclude_none=True)}
    # a GPU renders a splat's fly-through with gsplat; a mesh is ray cast on the CPU
    invocation = runner.run(context, tool="viewer", batch_dir=layout.root, params=params,
                            gpu=recipe.gpu and recipe.produces == "splat")
    result = materialization(invocation, layout)
    yield result
    page = (result.metadata or {}).get("viewer_path")
    page_written = bool(getattr(page, "path", None)) and layout.root.joinpath(page.path).is_file()
    facts = {"page": page_written}
    passed = page_written
    if recipe.produces == "splat":
        gaussians = int(metadata_number(result, "gaussians"))
        facts.update(gaussians=gaussians, sog=int(metadata_number(result, "sog_gaussians")),
                     spz=int(metadata_number(result, "spz_gaussians")))
        passed = passed and gaussians > 0 and facts["sog"] == gaussians and facts["spz"] == gaussians
    yield AssetCheckResult(check_name="web_formats_complete", passed=passed, severity=AssetCheckSeverity.ERROR,
                           metadata=facts)
