"""Rows, machine description, and the RESULTS.md / results.json writers shared by every benchmark."""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATASETS = (REPO / ".." / "shared" / "datasets").resolve()
OUT = REPO / "bench" / "out"


@dataclass
class Row:
    name: str          # what is measured
    value: float       # Onyx's figure
    baseline: float    # the baseline's figure, same run
    unit: str
    goal: str          # e.g. "<= 1.15x"
    notes: str = ""

    @property
    def ratio(self) -> float:
        return self.value / self.baseline if self.baseline else float("inf")

    def meets(self) -> bool | None:
        goal = self.goal.strip()
        if goal.startswith("<=") and goal.endswith("x"):
            return self.ratio <= float(goal[2:-1])
        return None


def timed(call: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    result = call()
    return time.perf_counter() - start, result


def run_measured(command: list[str], **kwargs) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of a child process."""
    start = time.perf_counter()
    process = subprocess.Popen(command, **kwargs)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    elapsed = time.perf_counter() - start
    if process.returncode != 0:
        raise RuntimeError(f"{command[:3]} exited {process.returncode}")
    return elapsed, usage.ru_maxrss / 1024.0


def machine() -> dict:
    info = {"python": sys.version.split()[0], "platform": platform.platform(), "cpus": os.cpu_count()}
    try:
        meminfo = Path("/proc/meminfo").read_text().splitlines()[0].split()
        info["memory_gib"] = round(int(meminfo[1]) / 1024 / 1024, 1)
        model = [line for line in Path("/proc/cpuinfo").read_text().splitlines() if "model name" in line]
        info["cpu"] = model[0].split(":", 1)[1].strip() if model else platform.processor()
    except OSError:
        pass
    import pycolmap

    info["pycolmap"] = pycolmap.__version__
    info["gpu"] = "none"
    return info


def write_results(rows: list[Row], skipped: dict[str, str]) -> str:
    OUT.mkdir(parents=True, exist_ok=True)
    desc = machine()
    lines = ["# Benchmark results", "", f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on "
             + ", ".join(f"{k} {v}" for k, v in desc.items()) + ".", "",
             "| benchmark | Onyx | baseline | ratio | goal | met | notes |", "|---|---|---|---|---|---|---|"]
    for row in rows:
        met = {True: "yes", False: "NO", None: "-"}[row.meets()]
        lines.append(f"| {row.name} | {row.value:.3g} {row.unit} | {row.baseline:.3g} {row.unit} | "
                     f"{row.ratio:.3f}x | {row.goal} | {met} | {row.notes} |")
    for name, why in skipped.items():
        lines.append(f"| {name} | - | - | - | - | skipped | {why} |")
    text = "\n".join(lines) + "\n"
    (REPO / "bench" / "RESULTS.md").write_text(text)
    (OUT / "results.json").write_text(json.dumps(
        {"machine": desc, "rows": [{**asdict(r), "ratio": r.ratio, "met": r.meets()} for r in rows],
         "skipped": skipped}, indent=2))
    return text
