"""The sfm tool's entrypoint logic: read images/, reconstruct, publish sparse/0, report."""

from __future__ import annotations

import shutil
import time

from onyx_tools.errors import ToolError
from onyx_tools.manifest import data_version
from onyx_tools.publish import publishing
from onyx_tools.tool import ToolRun

from .image_index import read_image_index
from .model_stats import model_figures, plot_camera_path
from .reconstruct import reconstruct
from .config import SfmConfig
from .strategy import partial_model_message

CAMERA_PATH_PNG = "previews/camera_path.png"


def as_json(value) -> dict:
    """Pipes takes a raw dict as a typed metadata value, so lists and dicts go in explicitly typed."""
    return {"raw_value": value, "type": "json"}


def main(run: ToolRun) -> None:
    started = time.monotonic()
    config = SfmConfig.from_params(run.params)
    layout = run.layout
    index = read_image_index(layout.images)
    run.log.info("sfm: %d %s images, matching=%s mapper=%s spherical=%s", len(index.images), index.kind,
                 config.matching, config.mapper, config.spherical)
    work = layout.work / "sfm"
    shutil.rmtree(work, ignore_errors=True)
    try:
        result = reconstruct(layout.images, index, work, config, panoramas_dir=layout.panoramas,
                             progress=run.progress, log=run.log)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)  # a failed attempt must not keep the disk full
        raise
    if result.registered < config.min_registered_ratio * result.total:
        message = partial_model_message(result.registered, result.total, config.min_registered_ratio,
                                        result.attempts)
        if not config.accept_partial_model:
            shutil.rmtree(work, ignore_errors=True)
            raise ToolError(message)
        run.log.warning("%s (accepted: accept_partial_model is set)", message)

    run.progress("publish", 0, 1, "sparse/0", force=True)
    publish_started = time.monotonic()
    with publishing(layout.sparse) as staged:
        model_dir = staged / "0"
        model_dir.mkdir()
        result.reconstruction.write_binary(model_dir)
    plot_camera_path(result.reconstruction, layout.root / CAMERA_PATH_PNG,
                     title=f"{result.registered}/{result.total} images, {result.strategy}")
    timings = {stage: round(seconds, 1) for stage, seconds in result.timings.items()}
    timings["publish"] = round(time.monotonic() - publish_started, 1)
    timings["total"] = round(time.monotonic() - started, 1)
    shutil.rmtree(work, ignore_errors=True)  # scratch: databases and trial models

    metadata = {
        **model_figures(result.reconstruction, result.total),
        "strategy": result.strategy,
        "attempts": as_json([attempt.as_metadata() for attempt in result.attempts]),
        "models_found": result.models_found,
        "kind": index.kind,
        "timings": as_json(timings),
        "sparse_model_path": "sparse/0",
        "camera_path_path": CAMERA_PATH_PNG,
    }
    run.progress("publish", 1, 1, "done", force=True)
    run.log.info("sfm: %d/%d registered by %s, %d points", metadata["registered"], metadata["total"],
                 result.strategy, metadata["points3d"])
    run.report(metadata, data_version=data_version(layout.sparse))
