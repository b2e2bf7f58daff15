"""``python -m onyx_ingest``: the ingest step behind Dagster Pipes."""

from onyx_tools.errors import ToolError
from onyx_tools.tool import ToolRun, run_tool

from .config import IngestConfig
from .ingest import images_data_version, ingest_video


def main(run: ToolRun) -> None:
    cfg = IngestConfig.from_params(run.params)
    video = (run.params.get("inputs") or {}).get("video")
    if not video:
        raise ToolError("ingest needs the input video as inputs['video']: the orchestrator passed none")
    metadata = ingest_video(cfg, video, run.layout, progress=run.progress, log=run.log)
    metadata["timings"] = {"raw_value": metadata["timings"], "type": "json"}
    run.report(metadata, data_version=images_data_version(run.layout))


if __name__ == "__main__":
    run_tool("ingest", main)
