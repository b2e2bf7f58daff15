"""Turning what a tool reported through Pipes into what the UI shows."""

from __future__ import annotations

from pathlib import Path

from dagster import MaterializeResult, MetadataValue, PipesClientCompletedInvocation

from onyx_tools.layout import BatchLayout

# Tools report files relative to the batch folder (they may see it as /data); these
# metadata keys are turned back into host paths, and PNGs into inline pictures.
PATH_SUFFIX = "_path"


def materialization(invocation: PipesClientCompletedInvocation, layout: BatchLayout) -> MaterializeResult:
    result = invocation.get_materialize_result()
    metadata = dict(result.metadata or {})
    for key, value in list(metadata.items()):
        raw = getattr(value, "value", value)
        if key.endswith(PATH_SUFFIX) and isinstance(raw, str) and raw:
            host_path = (layout.root / raw).resolve()
            metadata[key] = MetadataValue.path(str(host_path))
    return MaterializeResult(metadata=metadata, data_version=result.data_version)


def metadata_number(result: MaterializeResult, key: str, default: float = 0.0) -> float:
    value = (result.metadata or {}).get(key, default)
    value = getattr(value, "value", value)
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


def host_path(layout: BatchLayout, relative: str) -> Path:
    return layout.root / relative
