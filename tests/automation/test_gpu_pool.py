"""The gpu pool: with two batches in flight, two GPU steps never overlap (event log timestamps)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from dagster import DagsterEventType, DagsterInstance, EventRecordsFilter

from onyx_dagster.batches import add_batch, parse_settings
from onyx_dagster.pools import GPU_POOL, ensure_pools

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
    assert instance.event_log_storage.get_concurrency_info(GPU_POOL).slot_count == 1
    video = datasets / "real_videos" / "stone_sign.mp4"
    for key, interval in (("walk-a", 0.15), ("walk-b", 0.2)):
        add_batch(instance, data_root, key, parse_settings(
            {"input": str(video), "scene": "outdoor", "mode": "gaussian", "quality": "proto", "interval": interval}))
    env = {**os.environ, "DAGSTER_HOME": str(home), "ONYX_DATA": str(data_root)}
    dagster = str(Path(sys.executable).with_name("dagster"))
    runs = [subprocess.Popen([dagster, "asset", "materialize", "-m", "onyx_dagster.definitions",
                              "--select", "video,frames,sparse_model", "--partition", key],
                             cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            for key in ("walk-a", "walk-b")]
    logs = [run.communicate(timeout=900)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], "\n".join(log[-3000:] for log in logs)

    sfm = step_windows(instance, "sparse_model")
    assert len(sfm) == 2
    (first_start, first_end, _), (second_start, second_end, _) = sfm
    assert first_end <= second_start, f"GPU steps overlapped: {sfm}"
    # CPU steps are not in the pool: both batches' frames ran while the other run was live.
    ingest = step_windows(instance, "frames")
    assert len(ingest) == 2 and ingest[1][0] < sfm[1][1]
    instance.dispose()
