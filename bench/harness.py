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


RESULTS_JSON = REPO / "bench" / "results.json"
RESULTS_MD = REPO / "bench" / "RESULTS.md"
EARLIER_MD = REPO / "bench" / "RESULTS-2026-11.md"  # figures from before results.json, kept as measured


def load_average() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def record(benchmark: str, rows: list[Row], failure: str | None, started_load: float | None) -> None:
    """Replace ``benchmark``'s entry in bench/results.json (kept in git) and write RESULTS.md from it.

    Each benchmark keeps the date, machine and load of its own last run; RESULTS.md is only ever
    written here, from that file, so every figure in it says when and where it was measured.
    """
    results = json.loads(RESULTS_JSON.read_text()) if RESULTS_JSON.is_file() else {}
    results[benchmark] = {
        "measured": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": machine(),
        "load_average": {"start": started_load, "end": load_average()},
        "rows": [{**asdict(row), "ratio": row.ratio, "met": row.meets()} for row in rows],
        "failure": failure,
    }
    RESULTS_JSON.write_text(json.dumps(dict(sorted(results.items())), indent=2) + "\n")
    RESULTS_MD.write_text(render(results))


def render(results: dict) -> str:
    lines = ["# Benchmark results", "",
             "Written by `python -m bench` from `bench/results.json`: each benchmark's rows as its last run "
             "measured them, with the date, the machine and its load average (1 min) at the start and end "
             "of that run. Do not edit by hand.", ""]
    for name, entry in results.items():
        machine_text = ", ".join(f"{k} {v}" for k, v in entry["machine"].items())
        load = entry.get("load_average") or {}
        lines += [f"## {name}", "",
                  f"`python -m bench {name}`, {entry['measured']}; {machine_text}; "
                  f"load {load.get('start')} -> {load.get('end')}.", ""]
        if entry.get("failure"):
            lines += [f"Failed: {entry['failure']}", ""]
        if entry["rows"]:
            lines += ["| measured | Onyx | baseline | ratio | goal | met | notes |", "|---|---|---|---|---|---|---|"]
            for row in entry["rows"]:
                met = {True: "yes", False: "NO", None: "-"}[row["met"]]
                lines.append(f"| {row['name']} | {row['value']:.3g} {row['unit']} | {row['baseline']:.3g} "
                             f"{row['unit']} | {row['ratio']:.3f}x | {row['goal']} | {met} | {row['notes']} |")
            lines.append("")
    if EARLIER_MD.is_file():
        lines += [f"Figures measured before `results.json` existed: `bench/{EARLIER_MD.name}`.", ""]
    return "\n".join(lines)


def table(rows: list[Row]) -> str:
    """The rows of one run, for the terminal."""
    lines = ["| measured | Onyx | baseline | ratio | goal | met |", "|---|---|---|---|---|---|"]
    for row in rows:
        met = {True: "yes", False: "NO", None: "-"}[row.meets()]
        lines.append(f"| {row.name} | {row.value:.3g} {row.unit} | {row.baseline:.3g} {row.unit} | "
                     f"{row.ratio:.3f}x | {row.goal} | {met} |")
    return "\n".join(lines)
