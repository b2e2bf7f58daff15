"""The batch's input (``video``) and its frames (``frames``, the ingest tool)."""


import hashlib
import json

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
from onyx_ingest.config import IngestConfig, IngestOptions
from onyx_tools.manifest import file_sha256
from onyx_tools.video import check_decodable, probe_video

from ..code_versions import sources_hash, tool_code_version
from ..partitions import batches
from ..resources import BatchStorage, ToolRunner
from .tool_step import TOOL_RETRY, materialization, metadata_number


@asset(
    partitions_def=batches,
    group_name="ingest",
    code_version=sources_hash(["onyx_dagster.batches", "onyx_tools.video", "onyx_tools.manifest"]),
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


class FramesConfig(Config, IngestOptions):
    """The ingest tool's options (onyx_ingest.config); the batch's settings decide the rest,
    except ``interval``, which a run may set over the batch's own (``--set frames.interval=S``)."""

    interval: float | None = IngestConfig.model_fields["interval"]


@asset(
    partitions_def=batches,
    deps=[video],
    group_name="ingest",
    code_version=tool_code_version("ingest"),
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
            **config.model_dump(exclude_none=True),
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
