"""Turning what a tool reported through Pipes into what the UI shows."""

from __future__ import annotations

import base64
from pathlib import Path

from dagster import (
    MaterializeResult,
    MetadataValue,
    PipesClientCompletedInvocation,
    RetryPolicy,
)
from onyx_tools.layout import BatchLayout

# A crashed tool (not bad input: the runner marks that as not retryable) gets one more try.
TOOL_RETRY = RetryPolicy(max_retries=1, delay=10)

# Tools report files relative to the batch folder (they may see it as /data); these
# metadata keys are turned back into host paths, and pictures into inline previews.
PATH_SUFFIX = "_path"
PICTURE_SUFFIXES = {".png", ".jpg", ".jpeg"}
PREVIEW_WIDTH = 480  # the event log stores the preview: keep it to tens of kilobytes


def inline_picture(path: Path, title: str) -> MetadataValue | None:
    """A small JPEG of ``path`` as a markdown image the Dagster UI shows in place."""
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        return None
    if image.shape[1] > PREVIEW_WIDTH:
        scale = PREVIEW_WIDTH / image.shape[1]
        image = cv2.resize(image, (PREVIEW_WIDTH, max(1, round(image.shape[0] * scale))),
                           interpolation=cv2.INTER_AREA)
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 70])
    if not ok:
        return None
    data = base64.b64encode(encoded.tobytes()).decode("ascii")
    return MetadataValue.md(f"![{title}](data:image/jpeg;base64,{data})")


def materialization(invocation: PipesClientCompletedInvocation, layout: BatchLayout) -> MaterializeResult:
    result = invocation.get_materialize_result()
    metadata = dict(result.metadata or {})
    for key, value in list(metadata.items()):
        raw = getattr(value, "value", value)
        if key.endswith(PATH_SUFFIX) and isinstance(raw, str) and raw:
            host_path = (layout.root / raw).resolve()
            metadata[key] = MetadataValue.path(str(host_path))
            if host_path.suffix.lower() in PICTURE_SUFFIXES and host_path.is_file():
                name = key[: -len(PATH_SUFFIX)]
                picture = inline_picture(host_path, name.replace("_", " "))
                if picture is not None:
                    metadata[name] = picture
    return MaterializeResult(metadata=metadata, data_version=result.data_version)


def metadata_number(result: MaterializeResult, key: str, default: float = 0.0) -> float:
    value = (result.metadata or {}).get(key, default)
    value = getattr(value, "value", value)
    try:
        return float(value)
    except (TypeError, ValueError):
        return default

