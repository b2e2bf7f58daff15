"""Shared helpers of the ingest tests: the real datasets and videos made with ffmpeg."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from components import require

REPO = Path(__file__).resolve().parents[2]
DATASETS = REPO / ".." / "shared" / "datasets"
STONE_SIGN = DATASETS / "real_videos" / "stone_sign.mp4"
EQUIRECT_STILLS = DATASETS / "equirect_stills"


def need(path: Path) -> Path:
    require("datasets", path.exists(), f"real test data {path} is absent (../shared/datasets is not checked out here)")
    return path


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-y", "-nostdin", "-v", "error", *args], check=True)


@pytest.fixture(scope="session")
def equirect_video(tmp_path_factory) -> Path:
    """A 3 s, 800x400 equirectangular video: each real still held for 1 s at 5 fps."""
    stills = sorted(need(EQUIRECT_STILLS).glob("*.jpg"))
    assert len(stills) >= 2
    out = tmp_path_factory.mktemp("equirect") / "walk360.mp4"
    inputs = []
    for still in stills:
        inputs += ["-loop", "1", "-framerate", "5", "-t", "1", "-i", str(still)]
    chain = "".join(f"[{i}]" for i in range(len(stills))) + f"concat=n={len(stills)}:v=1,scale=800:400,format=yuv420p"
    ffmpeg(*inputs, "-filter_complex", chain, "-c:v", "libx264", "-preset", "ultrafast", "-r", "5", str(out))
    return out
