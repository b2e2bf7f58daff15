"""scripts/gpu-check up to the GPU boundary: on a machine without one it says so, checks what the CPU can
(the pins, the demo scene and the splat renderer) and exits 2; its pin check catches a loose or clashing pin."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from components import require

from onyx_dagster import gpu_check

REPO = Path(__file__).resolve().parents[2]


def header_width(header: str) -> int:
    return header.index("result")


def test_without_a_gpu_it_says_so_checks_the_cpu_and_exits_2(tmp_path):
    has_gpu = bool(shutil.which("nvidia-smi")) and subprocess.run(["nvidia-smi", "-L"], capture_output=True).returncode == 0
    require("no-cuda", not has_gpu, "this machine has an NVIDIA GPU: the no-GPU path does not apply")
    work = tmp_path / "work"
    done = subprocess.run([str(REPO / "scripts" / "gpu-check"), "--offline", "--work", str(work)],
                          capture_output=True, text=True, timeout=600, env={**os.environ, "ONYX_RUNNER": "docker"})
    lines = done.stdout.splitlines()
    assert done.returncode == 2, done.stdout + done.stderr
    assert lines[0].startswith("no GPU: "), lines[0]
    header = next(number for number, line in enumerate(lines) if line.startswith("check "))
    table = [line for line in lines[header + 1:] if line.strip()]
    results = {line[:header_width(lines[header])].strip(): line for line in table}
    assert set(results) == {"pins", "resolve", "cpu render", "gpu lines"}, table
    assert " PASS " in results["pins"] and " PASS " in results["cpu render"], table
    assert " SKIP " in results["resolve"] and " SKIP " in results["gpu lines"], table
    assert "textured" in results["cpu render"] and "FLAT" not in results["cpu render"]
    assert (work / "render-check" / "render-check.mp4").stat().st_size > 1000  # the scene really was encoded


def test_the_pin_check_fails_on_a_loose_or_clashing_pin(tmp_path, monkeypatch):
    (tmp_path / "requirements-cuda").mkdir()
    shutil.copy(REPO / "requirements.lock", tmp_path / "requirements.lock")
    monkeypatch.setattr(gpu_check, "REPO", tmp_path)
    monkeypatch.setattr(gpu_check, "REQUIREMENTS", tmp_path / "requirements-cuda")
    pinned = tmp_path / "requirements-cuda" / "onyx-cu130.txt"

    def verdict(text: str) -> tuple[str, str]:
        pinned.write_text(text)
        table = gpu_check.Table()
        gpu_check.check_pins(table)
        return table.rows[0][1:]

    assert verdict("# the CUDA pieces\nnvidia-cuda-nvcc==13.0.88\n")[0] == "PASS"
    status, said = verdict("nvidia-cuda-nvcc>=13\n")
    assert status == "FAIL" and "not pinned with ==" in said
    status, said = verdict("torch==2.12.0\n")
    assert status == "FAIL" and "torch==2.12.0 but requirements.lock has 2.13.0" in said
    # the repository's own files pass
    monkeypatch.setattr(gpu_check, "REPO", REPO)
    monkeypatch.setattr(gpu_check, "REQUIREMENTS", REPO / "requirements-cuda")
    table = gpu_check.Table()
    gpu_check.check_pins(table)
    assert table.rows[0][1] == "PASS", table.rows
