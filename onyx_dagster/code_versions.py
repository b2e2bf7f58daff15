"""Code versions that follow the code: each step's is a hash of the sources that make its output.

A step's output depends on its tool package (``containers/<tool>/onyx_<tool>``), on the tool
library every tool shares (``onyx_tools``) and, for a reconstruction, on the recipes' presets.
Hashing those sources when the definitions load gives Dagster a code version that changes
exactly when they do, so a changed tool marks its step and everything downstream stale,
and nothing upstream. Comments count as changes: a false "stale" costs a re-run, a missed
one costs a wrong scene.

Not covered: the pinned versions of the libraries a tool runs on (requirements.lock and the
images' base); a dependency upgrade is a release, and releases bump ``RELEASE``.
"""

from __future__ import annotations

import hashlib
import importlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

# Bumped when something outside the hashed sources changes what the steps make.
RELEASE = "1"
SKIPPED_PARTS = {"__pycache__"}


def source_files(name: str) -> tuple[Path, list[Path]]:
    """(root, files) of an importable package (every file under it) or module (its file)."""
    module = importlib.import_module(name)
    path = Path(module.__file__).resolve()
    if not hasattr(module, "__path__"):
        return path.parent, [path]
    files = sorted(p for p in path.parent.rglob("*")
                   if p.is_file() and not SKIPPED_PARTS.intersection(p.parts) and p.suffix != ".pyc")
    return path.parent, files


def sources_hash(names: Iterable[str], extra: Mapping[str, Any] | None = None) -> str:
    """16 hex digits of sha256 over the packages' and modules' files (relative path and content)
    and ``extra``."""
    digest = hashlib.sha256(RELEASE.encode())
    for name in sorted(set(names)):
        root, files = source_files(name)
        digest.update(f"\0source {name}\0".encode())
        for path in files:
            digest.update(f"\0{path.relative_to(root).as_posix()}\0".encode())
            digest.update(path.read_bytes())
    if extra:
        digest.update(json.dumps(extra, sort_keys=True, default=str).encode())
    return digest.hexdigest()[:16]


def tool_code_version(*tools: str, extra: Mapping[str, Any] | None = None) -> str:
    """The code version of a step run by ``tools`` (``"ingest"`` -> onyx_ingest + onyx_tools)."""
    return sources_hash(["onyx_tools", *(f"onyx_{tool}" for tool in tools)], extra)
