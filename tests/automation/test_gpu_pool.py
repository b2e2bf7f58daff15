"""The heavy steps' pool (``gpu`` on a host with an NVIDIA GPU, ``cpu`` without): with two batches in
flight, two heavy steps never overlap (event log timestamps), and the pool is what kept them apart:
the second one was ready to start while the first ran."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from dagster import DagsterEventType, DagsterInstance, EventRecordsFilter

from onyx_dagster.batches import add_batch, parse_settings
from onyx_dagster.pools import HEAVY_POOL, ensure_pools

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


def step_windows(instance: DagsterInstance, step: str) -> list[tuple[float, float, str]]:
    starts, ends = {}, {}
    for kind, into in ((DagsterEventType.STEP_START, starts), (DagsterEventType.STEP_SUCCESS, ends)):
        for record in instance.get_event_records(EventRecordsFilter(event_type=kind)):
            entry = record.event_log_entry
            if entry.step_key == step:
                into[entry.run_id] = entry.timestamp
    return sorted((starts[run], ends[run], run) for run in starts if run in ends)


def test_two_batches_never_run_gpu_steps_at_once(datasets, tmp_path):
    home = tmp_path / "dagster-home"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")  # the project's own instance config
    data_root = tmp_path / "onyx-data"
    instance = DagsterInstance.from_config(str(home))
    ensure_pools(instance)
    # one slot: a one-GPU host, or a CPU host of 2-7 cores (more cores get more slots)
    instance.event_log_storage.set_concurrency_slots(HEAVY_POOL, 1)
    video = datasets / "real_videos" / "stone_sign.mp4"
    for key in ("walk-a", "walk-b"):  # the same frames (22): SfM registers them all
        add_batch(instance, data_root, key, parse_settings(
            {"input": str(video), "scene": "outdoor", "mode": "gaussian", "quality": "proto", "interval": 0.15}))
    env = {**os.environ, "DAGSTER_HOME": str(home), "ONYX_DATA": str(data_root)}
    dagster = str(Path(sys.executable).with_name("dagster"))
    runs = [subprocess.Popen([dagster, "asset", "materialize", "-m", "onyx_dagster.definitions",
                              "--select", "video,frames,sparse_model", "--partition", key],
                             cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            for key in ("walk-a", "walk-b")]
    logs = [run.communicate(timeout=1500)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], "\n".join(log[-3000:] for log in logs)

    sfm = step_windows(instance, "sparse_model")
    assert len(sfm) == 2
    (first_start, first_end, first_run), (second_start, second_end, second_run) = sfm
    assert first_end <= second_start, f"GPU steps overlapped: {sfm}"
    # Holding under any schedule would prove nothing: the runs must have contended. The second
    # run's sparse_model could start (its frames were done) before the first one's ended, so
    # only the pool's one slot made it wait; and Dagster's own record says so.
    frames = {run: (start, end) for start, end, run in step_windows(instance, "frames")}
    assert set(frames) == {first_run, second_run}
    ready = frames[second_run][1]
    assert ready < first_end, (
        f"the second batch's frames ended at {ready:.1f}, after the first sparse_model ({first_start:.1f}-"
        f"{first_end:.1f}): the runs never contended for the pool, so this proves nothing")
    messages = [(entry.step_key, entry.dagster_event.message if entry.dagster_event else entry.user_message)
                for entry in (r.event_log_entry for r in instance.get_records_for_run(second_run, limit=10_000).records)]
    waited = [text for step, text in messages
              if step == "sparse_model" and f"blocked by limit for pool {HEAVY_POOL}" in (text or "")]
    assert waited, f"no event of the second run says that sparse_model waited for the {HEAVY_POOL} pool"
    instance.dispose()
