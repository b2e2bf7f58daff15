"""The one entrypoint shape every tool shares.

    def main(run: ToolRun) -> None: ...
    if __name__ == "__main__":
        run_tool("ingest", main)

``run_tool`` opens Dagster Pipes, points the batch folder at ``extras["batch_dir"]``
(``/data`` in a container, the real path for the local runner), mirrors every log
line to ``logs/<tool>.log`` and reports a ``ToolError`` as a one-line, actionable
failure instead of a traceback.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dagster_pipes import PipesContext, open_dagster_pipes

from .errors import ToolError
from .layout import BatchLayout

PROGRESS_PREFIX = "[progress] "
FAILURE_MARK = " failed: "
UNEXPECTED = "unexpected "  # a crash, not a ToolError: the one kind of failure worth retrying


class _PipesLogHandler(logging.Handler):
    def __init__(self, pipes: PipesContext):
        super().__init__()
        self._pipes = pipes

    def emit(self, record: logging.LogRecord) -> None:
        message = self.format(record)
        if record.levelno >= logging.ERROR:
            self._pipes.log.error(message)
        elif record.levelno >= logging.WARNING:
            self._pipes.log.warning(message)
        else:
            self._pipes.log.info(message)


@dataclass
class ToolRun:
    """What a tool's ``main`` gets: its parameters, the batch folder, logging and progress."""

    name: str
    pipes: PipesContext
    layout: BatchLayout
    params: Mapping[str, Any]
    log: logging.Logger
    _last_progress: float = field(default=0.0, repr=False)

    def progress(self, stage: str, done: int, total: int, detail: str = "", *, force: bool = False) -> None:
        """Report progress as a structured log line (throttled to one every 2 s).

        The CLI's progress bars and the UI's log both read these lines.
        """
        now = time.monotonic()
        if not force and done < total and now - self._last_progress < 2.0:
            return
        self._last_progress = now
        percent = round(100.0 * done / total, 1) if total else 0.0
        payload = {"step": self.name, "stage": stage, "done": done, "total": total,
                   "percent": percent, "detail": detail}
        self.pipes.log.info(PROGRESS_PREFIX + json.dumps(payload))

    def report(self, metadata: Mapping[str, Any], data_version: str | None = None) -> None:
        self.pipes.report_asset_materialization(metadata=dict(metadata), data_version=data_version)


def parse_progress(message: str) -> dict[str, Any] | None:
    """The payload of a progress log line, or None for any other line."""
    if not message.startswith(PROGRESS_PREFIX):
        return None
    try:
        return json.loads(message[len(PROGRESS_PREFIX):])
    except json.JSONDecodeError:
        return None


def disk_full_reason(folder: Path, threshold: int = 16 * 2**20) -> str | None:
    """'The disk is full' in words a person can act on, when ``folder``'s file system nearly is.

    Tools die of a full disk in many ways (an OSError, SQLite's "database or disk is full",
    a C++ abort): whatever the tool said, this is the reason to show.
    """
    try:
        usage = shutil.disk_usage(folder)
    except OSError:
        return None
    if usage.free >= threshold:
        return None
    return (f"the disk holding {folder} is full ({usage.free // 1024} KB free of {usage.total // 2**20} MB): "
            f"free space there, then `onyx resume {Path(folder).name}`")


def last_failure(batch_dir: Path, name: str) -> str | None:
    """The reason the last run of tool ``name`` gave for failing, read back from its log."""
    log_file = Path(batch_dir) / "logs" / f"{name}.log"
    if not log_file.is_file():
        return None
    marker = f" ERROR {name}{FAILURE_MARK}"
    started = f" INFO {name} started with "
    reason = None
    with open(log_file, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if started in line:
                reason = None  # only the latest attempt counts
            elif marker in line:
                reason = line.split(marker, 1)[1].rstrip("\n")
    return reason


def _file_logger(name: str, layout: BatchLayout, pipes: PipesContext) -> logging.Logger:
    logger = logging.getLogger(f"onyx.{name}")
    logger.setLevel(logging.INFO)
    logger.handlers.clear()
    logger.propagate = False
    layout.logs.mkdir(parents=True, exist_ok=True)
    to_file = logging.FileHandler(layout.logs / f"{name}.log", encoding="utf-8")
    to_file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    to_pipes = _PipesLogHandler(pipes)
    to_pipes.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(to_file)
    logger.addHandler(to_pipes)
    return logger


def exit_with_parent() -> None:
    """Die with the orchestrator process (``ONYX_PARENT_PID`` set by the local runner).

    A tool killed only by its orchestrator's death would go on writing the batch folder
    while a resumed run starts another copy; Linux's parent-death signal prevents that.
    """
    parent = os.environ.get("ONYX_PARENT_PID")
    if not parent or not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
    if os.getppid() != int(parent):  # the parent died before prctl took effect
        os._exit(1)


def run_tool(name: str, main: Callable[[ToolRun], None]) -> None:
    exit_with_parent()
    with open_dagster_pipes() as pipes:
        extras = dict(pipes.extras)
        layout = BatchLayout(Path(extras.pop("batch_dir", "/data")))
        if not layout.root.is_dir():
            raise ToolError(f"the batch folder {layout.root} does not exist or is not mounted")
        log = _file_logger(name, layout, pipes)
        run = ToolRun(name=name, pipes=pipes, layout=layout, params=extras, log=log)
        started = time.monotonic()
        log.info("%s started with %s", name, json.dumps(extras, sort_keys=True, default=str))
        try:
            main(run)
        except ToolError as error:
            log.error("%s%s%s", name, FAILURE_MARK, error)
            raise
        except Exception as error:
            reason = disk_full_reason(layout.root) or f"{UNEXPECTED}{type(error).__name__}: {error}"
            log.exception("%s%s%s", name, FAILURE_MARK, reason)
            raise
        log.info("%s finished in %.1f s", name, time.monotonic() - started)


if __name__ == "__main__":  # pragma: no cover - a library, not a tool
    sys.exit("onyx_tools is a library; run one of the tools (python -m onyx_ingest, ...)")
