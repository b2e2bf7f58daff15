"""The ingest step behind Dagster Pipes: frames (or 360 views) from the batch's video."""

from onyx_tools.errors import ToolError
from onyx_tools.tool import ToolRun

from .config import IngestConfig
from .ingest import images_data_version, ingest_video


def main(run: ToolRun) -> None:
    config = IngestConfig.from_params(run.params)
    video = (run.params.get("inputs") or {}).get("video")
    if not video:
        raise ToolError("ingest needs the input video as inputs['video']: the orchestrator passed none")
    metadata = ingest_video(config, video, run.layout, progress=run.progress, log=run.log)
    for key, value in metadata.items():  # Pipes reads a plain dict as a typed value: say it is JSON
        if isinstance(value, dict):
            metadata[key] = {"raw_value": value, "type": "json"}
    run.report(metadata, data_version=images_data_version(run.layout))
