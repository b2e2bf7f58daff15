"""The data root's disk fills up mid-step (a small tmpfs mounted as the data root; the Dagster
instance, beside it, stays on the big disk): the step fails with a message that says the disk
is full and names the batch folder, earlier outputs stay intact, and once space is freed
``onyx resume`` finishes without redoing what was done.

Two steps run out of space: frames of a new batch (ingest writing JPEGs), and sparse_model
of a batch whose frames are done (COLMAP writing its feature database).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from components import require

from .conftest import needs_real_data
from .helpers import RUN_ARGS, STONE_SIGN, checksums, counts, env, onyx

pytestmark = pytest.mark.slow

SIZE_MB = 64      # both batches' frames and sparse models (~20 MB each at --interval 0.15) fit easily
FRAMES_FREE_KB = 600      # frames of a second batch (~2 MB of JPEGs) do not
SFM_FREE_KB = 2000        # COLMAP's database (~5 MB for 11 frames) does not either


@pytest.fixture(scope="module")
def small_disk(tmp_path_factory):
    """A small tmpfs as the data root; unmounted afterwards."""
    require("root-mount", os.geteuid() == 0, "mounting a small file system needs root")
    require("root-mount", shutil.which("mount") is not None, "no mount command")
    base = tmp_path_factory.mktemp("small-disk")
    mountpoint = base / "data"
    mountpoint.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SIZE_MB}m,mode=0755", "tmpfs", str(mountpoint)],
                          capture_output=True, text=True)
    require("root-mount", done.returncode == 0,
            f"cannot mount a tmpfs here (a container without CAP_SYS_ADMIN?): {done.stderr.strip()}")
    try:
        yield mountpoint
    finally:
        if subprocess.run(["umount", str(mountpoint)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mountpoint)], capture_output=True)


def fill(root: Path, leave_kb: int) -> Path:
    """One filler file that leaves about ``leave_kb`` KB free on root's file system."""
    for old in root.glob("filler-*"):
        old.unlink()
    free = shutil.disk_usage(root).free
    filler = root / f"filler-{uuid.uuid4().hex[:6]}"
    with open(filler, "wb") as handle:
        os.posix_fallocate(handle.fileno(), 0, max(0, free - leave_kb * 1024))
    return filler


@dataclass
class Scenario:
    root: Path
    first: subprocess.CompletedProcess = None       # `before`: frames, with room
    frames_full: subprocess.CompletedProcess = None  # `during`: frames on a full disk
    sfm_full: subprocess.CompletedProcess = None     # `before`: sparse_model on a full disk
    images: dict = field(default_factory=dict)      # `before`'s frames, after the first run
    images_after_failures: dict = field(default_factory=dict)
    counts_after_failures: dict = field(default_factory=dict)
    during_after_failure: list = field(default_factory=list)
    sparse_after_failure: bool = False
    resumed_sfm: subprocess.CompletedProcess = None
    resumed_frames: subprocess.CompletedProcess = None


@pytest.fixture(scope="module")
def scenario(small_disk) -> Scenario:
    needs_real_data()
    root = small_disk
    # The preflight would refuse these runs up front (tests/platform/test_preflight.py); here the disk fills mid-step.
    e = env(PYTHONUNBUFFERED=1, ONYX_DISK_CHECK="off")
    s = Scenario(root=root)
    s.first = onyx("run", "-i", STONE_SIGN, "-o", root, *RUN_ARGS, "--batch", "before", "--until", "INGEST", "-q",
                   environ=e)
    assert s.first.returncode == 0, s.first.stderr
    s.images = checksums(root / "before" / "images")

    fill(root, FRAMES_FREE_KB)
    s.frames_full = onyx("run", "-i", STONE_SIGN, "-o", root, *RUN_ARGS, "--batch", "during", "--until", "SFM", "-q",
                         environ=e)
    s.during_after_failure = sorted(p.name for p in (root / "during").iterdir() if not p.name.startswith("."))

    fill(root, SFM_FREE_KB)
    s.sfm_full = onyx("resume", "before", "-d", root, "--until", "SFM", "-q", environ=e)
    s.sparse_after_failure = (root / "before" / "sparse").exists()
    s.images_after_failures = checksums(root / "before" / "images")
    s.counts_after_failures = {"before": counts(root, "before"), "during": counts(root, "during")}

    for filler in root.glob("filler-*"):   # space freed
        filler.unlink()
    s.resumed_sfm = onyx("resume", "before", "-d", root, "--until", "SFM", "-q", environ=e)
    s.resumed_frames = onyx("resume", "during", "-d", root, "--until", "INGEST", "-q", environ=e)
    return s


def assert_says_disk_full(done: subprocess.CompletedProcess, batch: Path, step: str):
    message = done.stderr
    assert done.returncode == 1, f"exit {done.returncode}: {message[-2000:]}"
    assert step in message
    lowered = message.lower()
    assert "disk" in lowered and "full" in lowered, f"{step} on a full disk does not say so:\n{message[-2000:]}"
    assert str(batch) in message, f"the message does not name the batch folder {batch}:\n{message[-2000:]}"


def test_frames_on_a_full_disk_says_so(scenario):
    assert_says_disk_full(scenario.frames_full, scenario.root / "during", "frames")


def test_sparse_model_on_a_full_disk_says_so(scenario):
    assert_says_disk_full(scenario.sfm_full, scenario.root / "before", "sparse_model")


def test_earlier_outputs_intact_and_nothing_partial_published(scenario):
    assert scenario.images and scenario.images_after_failures == scenario.images
    assert scenario.counts_after_failures["before"]["frames"] == 1
    assert scenario.counts_after_failures["before"]["sparse_model"] == 0
    assert scenario.counts_after_failures["during"]["video"] == 1
    assert scenario.counts_after_failures["during"]["frames"] == 0
    assert "images" not in scenario.during_after_failure, "a half-written images/ was published"
    assert not scenario.sparse_after_failure, "a partial sparse/ was published"


def test_resume_once_space_is_freed(scenario):
    root = scenario.root
    assert scenario.resumed_sfm.returncode == 0, scenario.resumed_sfm.stderr[-3000:]
    assert scenario.resumed_frames.returncode == 0, scenario.resumed_frames.stderr[-3000:]
    before, during = counts(root, "before"), counts(root, "during")
    assert (before["video"], before["frames"], before["sparse_model"]) == (1, 1, 1), before
    assert (during["video"], during["frames"]) == (1, 1), during
    assert checksums(root / "before" / "images") == scenario.images
    assert (root / "before" / "sparse" / "0" / "images.bin").is_file()
    assert len(list((root / "during" / "images").glob("*.jpg"))) == len(
        [k for k in scenario.images if k.endswith(".jpg")])
