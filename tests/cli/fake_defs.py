"""A fast stand-in for the Onyx code location, for the command's own tests.

Same asset keys, partitions and config classes as the real one (video, frames, sparse_model per
batch; reconstruction, masks per batch x recipe), same storage resource; each step writes a
few files atomically and logs "[progress] ..." lines like the tools do. Behaviour is
steered by environment variables so a test can slow a step down or make it fail:

    ONYX_FAKE_SLEEP_<ASSET>=seconds    ONYX_FAKE_FAIL_<ASSET>=1
"""


import json
import os
import time

from dagster import AssetExecutionContext, DataVersion, Definitions, MaterializeResult, MetadataValue, asset

from onyx_dagster.defs.ingest import FramesConfig
from onyx_dagster.defs.masks import MasksConfig
from onyx_dagster.defs.reconstruction import ReconstructionConfig
from onyx_dagster.defs.sfm import SparseModelConfig

from onyx_dagster.partitions import batch_recipes, batches
from onyx_dagster.resources import BatchStorage
from onyx_tools.manifest import data_version
from onyx_tools.publish import publishing


def _step(context: AssetExecutionContext, name: str, folder_of, files: int, config=None):
    sleep = float(os.environ.get(f"ONYX_FAKE_SLEEP_{name.upper()}", "0"))
    target = folder_of()
    with publishing(target) as staged:
        for index in range(files):
            (staged / f"{name}_{index:03d}.txt").write_text(f"{name} {index} {context.partition_key}\n")
            payload = {"step": name, "stage": "working", "done": index + 1, "total": files,
                       "percent": round(100.0 * (index + 1) / files, 1), "detail": f"{index + 1}/{files}"}
            context.log.info("[progress] " + json.dumps(payload))
            if sleep:
                time.sleep(sleep / files)
        if os.environ.get(f"ONYX_FAKE_FAIL_{name.upper()}"):
            raise RuntimeError(f"{name} failed on purpose (ONYX_FAKE_FAIL_{name.upper()})")
    # The step's config as the run gave it (the real assets' config classes): what --set reached.
    given = MetadataValue.json(config.model_dump(mode="json")) if config is not None else None
    return MaterializeResult(metadata={"files": files, "path": str(target), **({"config": given} if given else {})},
                             data_version=DataVersion(data_version(target)))


@asset(partitions_def=batches, code_version="1")
def video(context: AssetExecutionContext, storage: BatchStorage):
    settings = storage.settings(context.partition_key)
    return MaterializeResult(metadata={"recipe": settings.recipe},
                             data_version=DataVersion(settings.model_dump_json()[:16]))


@asset(partitions_def=batches, deps=[video], code_version="1")
def frames(context: AssetExecutionContext, config: FramesConfig, storage: BatchStorage):
    layout = storage.layout(context.partition_key)
    return _step(context, "frames", lambda: layout.images, 6, config)


@asset(partitions_def=batches, deps=[frames], code_version="1")
def sparse_model(context: AssetExecutionContext, config: SparseModelConfig, storage: BatchStorage):
    layout = storage.layout(context.partition_key)
    return _step(context, "sparse_model", lambda: layout.sparse_model, 4, config)


def _recipe_folder(storage: BatchStorage, context: AssetExecutionContext, sub: str):
    keys = context.partition_key.keys_by_dimension
    layout = storage.layout(keys["batch"])
    return layout.recipe_output(keys["recipe"]) if sub == "output" else layout.masks / keys["recipe"]


@asset(partitions_def=batch_recipes, deps=[sparse_model], code_version="1")
def reconstruction(context: AssetExecutionContext, config: ReconstructionConfig, storage: BatchStorage):
    return _step(context, "reconstruction", lambda: _recipe_folder(storage, context, "output"), 3, config)


@asset(partitions_def=batch_recipes, deps=[reconstruction], code_version="1")
def masks(context: AssetExecutionContext, config: MasksConfig, storage: BatchStorage):
    return _step(context, "masks", lambda: _recipe_folder(storage, context, "masks"), 2, config)


defs = Definitions(
    assets=[video, frames, sparse_model, reconstruction, masks],
    resources={"storage": BatchStorage(data_root=os.environ.get("ONYX_DATA", "/nonexistent"))},
)
batch_only_defs = Definitions(
    assets=[video, frames, sparse_model],
    resources={"storage": BatchStorage(data_root=os.environ.get("ONYX_DATA", "/nonexistent"))},
)
