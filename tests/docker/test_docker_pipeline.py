"""frames + sparse_model on a real video through the Docker runner match the local runner's.

Real ffmpeg, real COLMAP (pycolmap in the onyx-sfm image), real Dagster, the Onyx assets
(onyx_dagster.definitions). Same frame count; registered images within 1. The `dagster asset
materialize` test is about the runner the CLI picks from ONYX_RUNNER: it runs video and frames
(the sfm image is the first test's).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from components import require
from dagster import DagsterInstance, materialize

from onyx_dagster.batches import add_batch, parse_settings

pytestmark = [pytest.mark.docker, pytest.mark.slow]

ASSETS = ["video", "frames", "sparse_model"]
INTERVAL = 0.12  # stone_sign.mp4 is 3.3 s: about 28 frames (the interval tests/pipeline uses; all register)


def _metadata(instance, asset: str, partition: str) -> dict:
    from dagster import AssetKey, AssetRecordsFilter

    records = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=AssetKey(asset), asset_partitions=[partition]), limit=1).records
    assert records, f"{asset} [{partition}] was never materialised"
    metadata = records[0].event_log_entry.asset_materialization.metadata
    return {key: getattr(value, "value", value) for key, value in metadata.items()}


def _new_batch(instance, data_root: Path, key: str, video: Path):
    raw = {"input": str(video), "scene": "outdoor", "mode": "gaussian", "quality": "proto", "interval": INTERVAL}
    return add_batch(instance, data_root, key, parse_settings(raw))


def _materialize(instance, data_root: Path, key: str, runner):
    from onyx_dagster import definitions
    from onyx_dagster.resources import BatchStorage

    return materialize(list(definitions.defs.assets), selection=ASSETS, partition_key=key, instance=instance,
                       resources={"storage": BatchStorage(data_root=str(data_root)), "runner": runner},
                       raise_on_error=False)


def _summary(instance, key: str) -> dict:
    frames = _metadata(instance, "frames", key)
    sparse = _metadata(instance, "sparse_model", key)
    return {"frames": int(frames["frames"]), "registered": int(sparse["registered"]),
            "ratio": float(sparse["registered_ratio"])}


@pytest.fixture(scope="module")
def stone_sign() -> Path:
    video = (Path(__file__).resolve().parents[2] / ".." / "shared" / "datasets" / "real_videos"
             / "stone_sign.mp4").resolve()
    require("datasets", video.is_file(), f"real test data not found: {video} (the ../shared checkout beside the repo)")
    return video


@pytest.fixture(scope="module")
def local_summary(stone_sign, tmp_path_factory):
    """The local runner's result on the same video and settings (tools as subprocesses)."""
    from dagster import instance_for_test

    from onyx_dagster.resources import LocalRunner

    root = tmp_path_factory.mktemp("local")
    (root / "home").mkdir()
    with instance_for_test(temp_dir=str(root / "home")) as instance:
        _new_batch(instance, root / "data", "stone-sign", stone_sign)
        result = _materialize(instance, root / "data", "stone-sign", LocalRunner())
        assert result.success, "the local runner failed on stone_sign.mp4"
        return _summary(instance, "stone-sign")


def _assert_matches(docker: dict, local: dict):
    assert docker["frames"] == local["frames"], (docker, local)
    assert abs(docker["registered"] - local["registered"]) <= 1, (docker, local)
    assert docker["registered"] >= 10, docker


def test_docker_runner_matches_local_runner(onyx_images, docker_daemon, stone_sign, local_summary, tmp_path):
    """The Onyx assets with the Docker runner as the resource, in this process."""
    from dagster import instance_for_test

    from onyx_dagster.resources.docker_runner import DockerRunner

    (tmp_path / "home").mkdir()
    with instance_for_test(temp_dir=str(tmp_path / "home")) as instance:
        layout = _new_batch(instance, tmp_path / "data", "stone-sign", stone_sign)
        result = _materialize(instance, tmp_path / "data", "stone-sign", DockerRunner())
        assert result.success, [e.message for e in result.get_step_failure_events()]
        docker = _summary(instance, "stone-sign")
    _assert_matches(docker, local_summary)
    assert len(list(layout.images.glob("*.jpg"))) == docker["frames"]
    assert (layout.root / "sparse" / "0" / "images.bin").is_file()
    assert (layout.logs / "ingest.log").is_file() and (layout.logs / "sfm.log").is_file()
    assert not list(layout.root.glob(".tmp-*"))
    left = docker_daemon.containers.list(all=True, filters={"label": "onyx.batch=stone-sign"}, ignore_removed=True)
    assert not [c for c in left if c.labels.get("onyx.run_id") == result.run_id]


def test_dagster_cli_with_onyx_runner_docker_matches_local(onyx_images, docker_daemon, stone_sign, local_summary,
                                                          tmp_path):
    """`dagster asset materialize -m onyx_dagster.definitions` with ONYX_RUNNER=docker."""
    from onyx_dagster.resources import docker_runner

    env = {**os.environ, "ONYX_RUNNER": "docker"}
    probe = subprocess.run(
        [sys.executable, "-c", "from onyx_dagster.definitions import defs; "
                               "print(type(defs.resources['runner']).__module__)"],
        capture_output=True, text=True, env=env, timeout=120)
    assert probe.stdout.strip() == docker_runner.__name__, probe.stderr[-500:]
    home = tmp_path / "home"
    home.mkdir()
    data_root = tmp_path / "data"
    with DagsterInstance.from_config(str(home)) as instance:
        layout = _new_batch(instance, data_root, "stone-sign", stone_sign)
    env.update({"DAGSTER_HOME": str(home), "ONYX_DATA": str(data_root)})
    completed = subprocess.run(
        [str(Path(sys.executable).with_name("dagster")), "asset", "materialize", "-m", "onyx_dagster.definitions",
         "--select", "video,frames", "--partition", "stone-sign"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1200)
    assert completed.returncode == 0, completed.stderr[-4000:]
    with DagsterInstance.from_config(str(home)) as instance:
        frames = int(_metadata(instance, "frames", "stone-sign")["frames"])
        (run,) = instance.get_runs()
        said = [e.user_message for e in instance.all_logs(run.run_id)]
        assert any(m.startswith("ingest: running onyx-ingest") for m in said), "the frames step did not run in Docker"
    assert frames == local_summary["frames"], (frames, local_summary)
    assert len(list(layout.images.glob("*.jpg"))) == frames
