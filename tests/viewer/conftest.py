"""One real demo run shared by the viewer tests, a photogrammetry fork of it, and a browser.

``demo`` runs ``python -m onyx_sample.demo --frames 24`` once (the synthetic walk-through
through ingest, SfM, CPU splat training and the viewer step, on a real SQLite instance), with
a 30 s training budget where the README's demo has 120 s (the tests check the viewer's output
against what training scored, not a PSNR floor);
``mesh_fork`` forks that batch to photogrammetry-proto (the CPU mesh path) with ``onyx fork``,
which runs its reconstruction and viewer. ``browser`` is Debian's Chromium through Playwright
with WebGL2 on SwiftShader.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from components import require, require_module
from browser import HEADLESS_ARGS, WEBGL_ARGS, find_chromium

from onyx_tools.layout import BatchLayout

REPO = Path(__file__).resolve().parents[2]
DEMO_FRAMES = 24
TRAINING_BUDGET_S = 30


@dataclass
class DemoRun:
    root: Path
    data_root: Path
    key: str
    stdout: str
    env: dict
    training_budget_s: float = TRAINING_BUDGET_S

    @property
    def layout(self) -> BatchLayout:
        return BatchLayout(self.data_root / self.key)

    def viewer(self, recipe: str) -> Path:
        return self.layout.recipe_output(recipe) / "viewer"

    def onyx(self, *args: str, timeout: float = 1200) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "onyx_dagster.cli", *args], cwd=self.root, env=self.env,
                              capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="session")
def demo(tmp_path_factory) -> DemoRun:
    root = tmp_path_factory.mktemp("viewer-demo")
    env = {k: v for k, v in os.environ.items() if k not in ("DAGSTER_HOME", "ONYX_DATA")}
    completed = subprocess.run(
        [sys.executable, "-m", "onyx_sample.demo", "--frames", str(DEMO_FRAMES),
         "--set", f"reconstruction.cpu_budget_s={TRAINING_BUDGET_S}",
         "--data-root", str(root / "onyx-data"), "--samples", str(root / "samples")],
        cwd=root, env=env, capture_output=True, text=True, timeout=3600)
    assert completed.returncode == 0, completed.stdout[-4000:] + completed.stderr[-4000:]
    key = re.search(r"^batch (\S+): ", completed.stdout, re.M).group(1)
    return DemoRun(root=root, data_root=root / "onyx-data", key=key, stdout=completed.stdout, env=env)


@pytest.fixture(scope="session")
def mesh_fork(demo) -> DemoRun:
    # depth maps at 320 px: the mesh's quality is tests/openmvs' subject, the page and video are this one's
    completed = demo.onyx("fork", demo.key, "--data-root", str(demo.data_root), "--mode", "photogrammetry",
                          "--quality", "proto", "--set", "reconstruction.cpu_max_image_size=320")
    assert completed.returncode == 0, completed.stdout[-4000:] + completed.stderr[-4000:]
    return demo


# Module scope: Playwright's sync API runs one instance per process at a time (the UI tests start theirs).
@pytest.fixture(scope="module")
def browser():
    chromium = find_chromium()
    require("chromium", chromium is not None,
            "Chromium not found (/usr/bin/chromium; apt-get install chromium, or set ONYX_CHROMIUM)")
    playwright_api = require_module("playwright.sync_api", "playwright (pip) is not installed")
    with playwright_api.sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=chromium, headless=True,
                                              args=[*HEADLESS_ARGS, *WEBGL_ARGS])
        try:
            yield instance
        finally:
            instance.close()
