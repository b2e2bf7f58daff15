"""frames and sparse_model end to end on real videos: real ffmpeg, real COLMAP, real Dagster."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pycolmap
import pytest
from dagster import AssetKey

from onyx_dagster.batches import add_batch, parse_settings

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
BATCH_ASSETS = ["video", "frames", "sparse_model"]


def new_batch(instance, data_root, key, video, **settings):
    raw = {"input": str(video), "scene": "outdoor", "mode": "gaussian", "quality": "proto", **settings}
    return add_batch(instance, data_root, key, parse_settings(raw))


def check_results(instance, partition) -> dict[str, bool]:
    from dagster import AssetCheckKey

    results = {}
    for asset, check in (("frames", "frames_not_empty"), ("sparse_model", "registration_ratio")):
        record = instance.event_log_storage.get_latest_asset_check_execution_by_key(
            [AssetCheckKey(AssetKey(asset), check)]).get(AssetCheckKey(AssetKey(asset), check))
        evaluation = record.event.dagster_event.event_specific_data if record and record.event else None
        results[check] = bool(evaluation and evaluation.passed)
    return results


def test_stone_sign_through_the_dagster_cli(datasets, tmp_path, latest_metadata, dagster_instance, data_root,
                                            materialization_count):
    """The issue's own command: dagster asset materialize ... --partition KEY, on a real video."""
    layout = new_batch(dagster_instance, data_root, "stone-sign", datasets / "real_videos" / "stone_sign.mp4",
                       interval=0.12)
    env = {**os.environ, "DAGSTER_HOME": str(dagster_instance.root_directory), "ONYX_DATA": str(data_root)}
    completed = subprocess.run(
        [str(Path(sys.executable).with_name("dagster")), "asset", "materialize", "-m", "onyx_dagster.definitions",
         "--select", ",".join(BATCH_ASSETS), "--partition", "stone-sign"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert completed.returncode == 0, completed.stderr[-4000:]

    frames = latest_metadata("frames", "stone-sign")
    sparse = latest_metadata("sparse_model", "stone-sign")
    assert frames["frames"] >= 20 and frames["frames"] == len(list(layout.images.glob("*.jpg")))
    assert sparse["registered_ratio"] >= 0.95, sparse
    assert sparse["registered"] == pycolmap.Reconstruction(layout.sparse_model).num_reg_images()
    assert sparse["points3d"] > 1000 and 0 < sparse["mean_reprojection_error"] < 2.0
    video = latest_metadata("video", "stone-sign")
    assert video["settings"]["scene"] == "outdoor" and video["resolution"] == "450x800"
    assert check_results(dagster_instance, "stone-sign") == {"frames_not_empty": True, "registration_ratio": True}
    # Data versions come from the outputs' content, code versions from the tools.
    for asset in BATCH_ASSETS:
        record = dagster_instance.get_latest_materialization_event(AssetKey(asset))
        tags = record.asset_materialization.tags
        assert tags.get("dagster/data_version"), asset
        assert tags.get("dagster/code_version"), asset
    assert not list(layout.root.glob(".tmp-*"))      # nothing half-published left behind
    assert (layout.logs / "ingest.log").is_file() and (layout.logs / "sfm.log").is_file()
    assert materialization_count("frames", "stone-sign") == 1


def test_chair_images_made_into_a_video(datasets, tmp_path, dagster_instance, data_root, materialize_partition,
                                        latest_metadata):
    video = tmp_path / "chair.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-framerate", "4", "-i", str(datasets / "chair_images" / "image%03d.jpg"),
                    "-c:v", "libx264", "-crf", "12", "-pix_fmt", "yuv420p", str(video)], check=True)
    new_batch(dagster_instance, data_root, "chair", video, scene="indoor", interval=0.25)
    materialize_partition(BATCH_ASSETS, "chair")
    frames = latest_metadata("frames", "chair")
    sparse = latest_metadata("sparse_model", "chair")
    assert frames["frames"] == 21
    assert sparse["registered_ratio"] >= 0.95 and sparse["registered"] >= 20, sparse


def test_rematerialising_replaces_output_only_when_whole(datasets, tmp_path, dagster_instance, data_root,
                                                          materialize_partition, latest_metadata,
                                                          materialization_count):
    video = tmp_path / "walk.mp4"
    shutil.copy(datasets / "real_videos" / "stone_sign.mp4", video)
    layout = new_batch(dagster_instance, data_root, "stone-short", video, interval=0.3)
    materialize_partition(["video", "frames"], "stone-short")
    first = latest_metadata("frames", "stone-short")
    before = {p.name: p.read_bytes() for p in layout.images.iterdir()}
    # The input is damaged after the fact: the step fails at its boundary and says why,
    # and the images of the last good run stay as they were, whole.
    video.write_bytes(video.read_bytes()[:50_000])
    result = materialize_partition(["frames"], "stone-short", raise_on_error=False)
    assert not result.success
    failure = result.get_step_failure_events()[0].event_specific_data.error.message
    assert "ingest failed:" in failure and "stone-short" not in failure and "walk.mp4" in failure
    assert {p.name: p.read_bytes() for p in layout.images.iterdir()} == before
    assert materialization_count("frames", "stone-short") == 1
    # A config that does not exist is refused before anything runs.
    from dagster import DagsterInvalidConfigError

    with pytest.raises(DagsterInvalidConfigError, match="view_set"):
        materialize_partition(["frames"], "stone-short",
                              run_config={"ops": {"frames": {"config": {"view_set": "dodecahedron"}}}})
    shutil.copy(datasets / "real_videos" / "stone_sign.mp4", video)
    materialize_partition(["frames"], "stone-short", run_config={"ops": {"frames": {"config": {"max_width": 200}}}})
    second = latest_metadata("frames", "stone-short")
    assert second["resolution"] != first["resolution"] and second["frames"] == first["frames"]
    assert materialization_count("frames", "stone-short") == 2
    assert not list(layout.root.glob(".tmp-*")) and not list(layout.root.glob(".old-*"))
