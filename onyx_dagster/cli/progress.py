"""Live progress from a run's events: one line per step, redrawn in place on a terminal."""

from __future__ import annotations

import io
import os
import shutil
import sys
import threading
import time
from typing import TextIO

from ..operations.execute import PlannedRun, StepEvent

# Metadata worth a glance when a step finishes (whatever the tools call them).
SUMMARY_KEYS = ("frames", "views_per_frame", "resolution", "registered", "registered_images", "registered_ratio",
                "points3d", "points3D", "mean_reprojection_error", "strategy", "gaussians", "vertices",
                "faces", "masks", "kept_gaussians")


def _bar(percent: float | None, width: int = 20) -> str:
    if percent is None:
        return "[" + " " * width + "]"
    filled = max(0, min(width, int(round(width * percent / 100.0))))
    return "[" + "#" * filled + "." * (width - filled) + "]"


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


class ProgressDisplay:
    """Feed it StepEvents (from RunWatcher); it draws on ``stream`` (stderr by default)."""

    def __init__(self, stream: TextIO | None = None, tty: bool | None = None):
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self._lock = threading.Lock()
        self._current: str | None = None
        self._started: dict[str, float] = {}
        self._metadata: dict[str, dict] = {}
        self._last_percent: dict[str, float] = {}
        self._last_stage: dict[str, str] = {}
        self.failures: list[str] = []

    @property
    def metadata(self) -> dict[str, dict]:
        return self._metadata

    def _width(self) -> int:
        return shutil.get_terminal_size((100, 20)).columns

    def _draw(self, line: str, final: bool) -> None:
        if self.tty:
            line = line[: self._width() - 1]
            self.stream.write("\r\x1b[K" + line + ("\n" if final else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def run_started(self, planned: PlannedRun, run_id: str) -> None:
        with self._lock:
            self._close_line()
            where = f"recipe {planned.recipe}" if planned.recipe else "batch"
            self.stream.write(f"{where} [{planned.partition}]: {', '.join(planned.assets)}  (run {run_id})\n")
            self.stream.flush()

    def _close_line(self) -> None:
        if self.tty and self._current is not None:
            self.stream.write("\n")
        self._current = None

    def __call__(self, event: StepEvent) -> None:
        with self._lock:
            self._handle(event)

    def _handle(self, event: StepEvent) -> None:
        step = event.step
        label = f"  {step:<15}"
        if event.kind == "start":
            self._close_line()
            self._started[step] = event.timestamp or time.time()
            self._current = step
            self._draw(f"{label} {_bar(0)}   0%  started", final=False)
        elif event.kind == "progress":
            percent = float(event.percent or 0.0)
            stage = event.stage
            if not self.tty:
                last = self._last_percent.get(step, -100.0)
                if stage == self._last_stage.get(step) and percent - last < 10.0 and percent < 100.0:
                    return
            self._last_percent[step] = percent
            self._last_stage[step] = stage
            text = f"{stage}: {event.detail}" if event.detail else stage
            if self._current != step:
                self._close_line()
                self._current = step
            self._draw(f"{label} {_bar(percent)} {percent:3.0f}%  {text}", final=False)
        elif event.kind == "materialized":
            self._metadata[step] = event.metadata
        elif event.kind == "success":
            end = event.timestamp or time.time()
            took = end - self._started.get(step, end)
            metadata = self._metadata.get(step, {})
            summary = ", ".join(f"{k}={_fmt(metadata[k])}" for k in SUMMARY_KEYS if k in metadata)
            self._current = step
            self._draw(f"{label} {_bar(100)} 100%  done in {took:.1f} s" + (f"  ({summary})" if summary else ""),
                       final=True)
            self._current = None
        elif event.kind == "failure":
            self._current = step
            self._draw(f"{label} FAILED: {event.detail}", final=True)
            self._current = None
            self.failures.append(f"{step}: {event.detail}")
        elif event.kind == "note":
            self._close_line()
            self._draw(f"{label} note: {event.detail}", final=True)

    def close(self) -> None:
        with self._lock:
            self._close_line()


class ConsoleRedirect:
    """Send this process's fd 1 and 2 (and so the tool subprocesses' raw output) to a log
    file while steps run, keeping a handle on the real terminal for the progress lines.

    Only when stdout/stderr are the process's real fds 1/2 (not under a test's capture).
    """

    def __init__(self, log_path, enabled: bool = True):
        self.log_path = log_path
        self._saved: tuple[int, int] | None = None
        self.terminal: TextIO = sys.stderr
        try:
            real = sys.stdout.fileno() == 1 and sys.stderr.fileno() == 2
        except (AttributeError, ValueError, io.UnsupportedOperation):
            real = False
        self.enabled = enabled and real
        if self.enabled:
            self.terminal = os.fdopen(os.dup(2), "w", buffering=1, encoding="utf-8", errors="replace")

    def start(self) -> None:
        if not self.enabled or self._saved is not None:
            return
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        sys.stdout.flush()
        sys.stderr.flush()
        self._saved = (os.dup(1), os.dup(2))
        log = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        self.terminal.write(f"(tool output: {self.log_path})\n")

    def stop(self) -> None:
        if self._saved is None:
            return
        sys.stdout.flush()
        sys.stderr.flush()
        out, err = self._saved
        os.dup2(out, 1)
        os.dup2(err, 2)
        os.close(out)
        os.close(err)
        self._saved = None
