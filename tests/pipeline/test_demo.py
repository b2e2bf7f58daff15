"""The README's main job, shortened: the synthetic walk-through through ingest and SfM."""

from __future__ import annotations

import os
import re
import subprocess
import sys


def test_demo_registers_every_frame_on_the_known_path(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DAGSTER_HOME", "ONYX_DATA")}
    completed = subprocess.run(
        [sys.executable, "-m", "onyx_sample.demo", "--frames", "24", "--until", "SFM",
         "--data-root", str(tmp_path / "onyx-data"), "--samples", str(tmp_path / "samples")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    out = completed.stdout
    assert completed.returncode == 0, out[-3000:] + completed.stderr[-3000:]
    assert re.search(r"registered\s+24 / 24", out), out
    ratio = float(re.search(r"= ([0-9.]+)% of the path", out).group(1))
    assert ratio <= 0.1, out
    assert (tmp_path / "dagster-home" / "dagster.yaml").is_file()   # the instance beside the data root
    assert "dagster dev -w workspace.yaml" in out
