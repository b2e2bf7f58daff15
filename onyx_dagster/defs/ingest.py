"""The batch's input (``video``) and its frames (``frames``, the ingest tool)."""


import hashlib
import json
from typing import Literal

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    Config,
    DataVersion,
    MaterializeResult,
    MetadataValue,
    asset,
)
from pydantic import Field

import onyx_ingest
from onyx_tools.manifest import file_sha256
from onyx_tools.video import check_decodable, probe_video

from ..partitions import batches
from ..resources import BatchStorage, ToolRunner
from .tool_step import TOOL_RETRY, materialization, metadata_number


@asset(
    partitions_def=batches,
    group_name="ingest",
    code_version="1",
    kinds={"video"},
    description="The batch's input video and its settings (batch.json), probed with ffprobe.",
)
def video(context: AssetExecutionContext, storage: BatchStorage) -> MaterializeResult:
    settings = storage.settings(context.partition_key)
    info = probe_video(settings.input)
    check_decodable(settings.input)
    content = file_sha256(settings.input)
    settings_json = settings.model_dump_json()
    version = hashlib.sha256(f"{content}\n{settings_json}".encode()).hexdigest()[:16]
    return MaterializeResult(
        metadata={
            "settings": MetadataValue.json(json.loads(settings_json)),
            "recipe": settings.recipe,
            "input_path": MetadataValue.path(str(settings.input)),
            "input_sha256": content,
            "duration_s": info.duration_s,
            "resolution": f"{info.width}x{info.height}",
            "fps": info.fps,
            "codec": info.codec,
            "equirectangular": info.looks_equirectangular,
            "batch_folder": MetadataValue.path(str(storage.layout(context.partition_key).root)),
        },
        data_version=DataVersion(version),
    )


class FramesConfig(Config):
    """Knobs of frame extraction; the batch's settings decide the rest."""

    max_width: int = Field(2048, gt=0, description="normal video: frames resized to at most this width")
    view_size: int = Field(2048, gt=0, description="360 video: side of each square perspective view")
    view_set: Literal["cube12", "ring8", "cube6"] = Field(
        "cube12", description="360 view layout: cube12 (the first version's 12 views), ring8 or cube6")
    jpeg_quality: int = Field(95, ge=50, le=100)
    sharpest_in_window: bool = Field(True, description="pick the sharpest frame in each interval window")


@asset(
    partitions_def=batches,
    deps=[video],
    group_name="ingest",
    code_version=onyx_ingest.__version__,
    kinds={"python", "ffmpeg"},
    retry_policy=TOOL_RETRY,
    check_specs=[AssetCheckSpec("frames_not_empty", asset="frames",
                                description="ingest produced at least 3 images")],
    description="Frames from the video (perspective views for 360) in images/, with index.json.",
)
def frames(context: AssetExecutionContext, config: FramesConfig, storage: BatchStorage, runner: ToolRunner):
    layout = storage.layout(context.partition_key)
    settings = storage.settings(context.partition_key)
    invocation = runner.run(
        context,
        tool="ingest",
        batch_dir=layout.root,
        params={
            "scene": settings.scene,
            "quality": settings.quality,
            "video": settings.video,
            "interval": settings.interval,
            **config.model_dump(),
        },
        inputs={"video": settings.input},
    )
    result = materialization(invocation, layout)
    yield result
    count = int(metadata_number(result, "frames"))
    yield AssetCheckResult(
        check_name="frames_not_empty",
        passed=count >= 3,
        severity=AssetCheckSeverity.ERROR,
        metadata={"frames": count},
    )
