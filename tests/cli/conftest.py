"""Shared fixtures for the onyx command's tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SHARED = REPO.parent / "shared" / "datasets"
ONYX = [sys.executable, "-m", "onyx_dagster.cli"]

if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))


@pytest.fixture(scope="session")
def tiny_video(tmp_path_factory) -> Path:
    """A 2-second 160x120 test pattern: enough for validation, made with ffmpeg."""
    path = tmp_path_factory.mktemp("video") / "tiny walk.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=160x120:rate=10",
                    "-t", "2", "-pix_fmt", "yuv420p", str(path)], check=True)
    return path


@pytest.fixture
def fake_env(monkeypatch, tmp_path):
    """The fast stand-in code location, a fresh data root, no inherited DAGSTER_HOME."""
    monkeypatch.setenv("ONYX_DEFINITIONS", "fake_defs:defs")
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.delenv("ONYX_DATA", raising=False)
    root = tmp_path / "data"
    return root


def subprocess_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("DAGSTER_HOME", "ONYX_DATA")}
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.update({k: str(v) for k, v in extra.items()})
    return env


def snapshot(root: Path) -> list[str]:
    """Every path under ``root`` (to prove a refusal wrote nothing)."""
    if not root.exists():
        return []
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))
