"""The recipe dimension on real data: gaussian-proto on the CPU, then a fork that reuses
frames and sparse_model through lineage instead of recomputing them."""

from __future__ import annotations

import subprocess

import pytest
from dagster import AssetKey, AssetRecordsFilter, MultiPartitionKey

from onyx_dagster.batches import add_batch, parse_settings
from onyx_tools.splat_ply import read_splat_ply

pytestmark = pytest.mark.slow

BATCH_ASSETS = ["video", "frames", "sparse_model"]


def recipe(key: str, name: str) -> MultiPartitionKey:
    return MultiPartitionKey({"batch": key, "recipe": name})


@pytest.fixture
def chair_batch(datasets, tmp_path, dagster_instance, data_root, materialize_partition):
    video = tmp_path / "chair.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-framerate", "4", "-i", str(datasets / "chair_images" / "image%03d.jpg"),
                    "-c:v", "libx264", "-crf", "12", "-pix_fmt", "yuv420p", str(video)], check=True)
    layout = add_batch(dagster_instance, data_root, "chair", parse_settings(
        {"input": str(video), "scene": "indoor", "mode": "gaussian", "quality": "proto", "interval": 0.25}))
    materialize_partition(BATCH_ASSETS, "chair")
    return layout


def test_gaussian_proto_then_fork(chair_batch, dagster_instance, materialize_partition, latest_metadata,
                                  materialization_count):
    layout = chair_batch
    proto = recipe("chair", "gaussian-proto")
    materialize_partition(["reconstruction", "masks"], proto,
                          run_config={"ops": {"reconstruction": {"config": {"settings": {"iterations": 200}}}}})
    splat = latest_metadata("reconstruction", proto)
    assert splat["rasterizer"] == "tiles-cpu" and splat["gaussians"] > 0
    assert splat["psnr_last_eval"] > splat["psnr_first_eval"] + 3.0, splat   # it learned the scene
    cloud = read_splat_ply(layout.recipe_output("gaussian-proto") / "splat.ply")
    assert len(cloud) == splat["gaussians"]
    masks = latest_metadata("masks", proto)
    assert masks["skipped"] is True and "indoor" in masks["reason"]            # Onyx 1.0's behaviour

    # The fork: another recipe partition of the same batch (depth maps at 320 px: the CPU path's
    # quality is tests/openmvs' subject, this test's is the fork).
    fork = recipe("chair", "photogrammetry-proto")
    materialize_partition(["reconstruction"], fork,
                          run_config={"ops": {"reconstruction": {"config": {"settings": {"cpu_max_image_size": 320}}}}})
    mesh = latest_metadata("reconstruction", fork)
    assert mesh["backend"] == "cpu-sweep" and mesh["faces"] > 1000
    assert materialization_count("frames", "chair") == 1          # nothing upstream ran again
    assert materialization_count("sparse_model", "chair") == 1
    assert sorted(p.name for p in layout.output.iterdir()) == ["gaussian-proto", "photogrammetry-proto"]
    assert (layout.recipe_output("gaussian-proto") / "splat.ply").is_file()   # side by side, untouched

    # Lineage: the fork's materialisation points at the batch's one sparse_model materialisation.
    def latest(asset, partition):
        return dagster_instance.fetch_materializations(
            AssetRecordsFilter(asset_key=AssetKey(asset), asset_partitions=[str(partition)]), limit=1).records[0]

    sparse = latest("sparse_model", "chair")
    for partition in (proto, fork):
        tags = latest("reconstruction", partition).asset_materialization.tags
        assert tags.get("dagster/input_event_pointer/sparse_model") == str(sparse.storage_id)


def test_reconstruction_before_sparse_model_is_refused(datasets, dagster_instance, data_root, materialize_partition):
    add_batch(dagster_instance, data_root, "early", parse_settings(
        {"input": str(datasets / "real_videos" / "stone_sign.mp4"), "scene": "outdoor", "mode": "gaussian",
         "quality": "proto"}))
    result = materialize_partition(["reconstruction"], recipe("early", "gaussian-proto"), raise_on_error=False)
    message = result.get_step_failure_events()[0].event_specific_data.error.message
    assert "batch early has no sparse model yet: materialise sparse_model for partition early first" in message


def test_unknown_recipe_is_not_a_partition(dagster_instance, materialize_partition):
    from dagster import DagsterInvariantViolationError, DagsterUnknownPartitionError

    with pytest.raises((DagsterUnknownPartitionError, DagsterInvariantViolationError, ValueError),
                       match="gaussian-fast|partition"):
        materialize_partition(["reconstruction"], recipe("early", "gaussian-fast"))


def test_reconstruction_settings_are_checked_before_running(datasets, dagster_instance, data_root,
                                                           materialize_partition):
    """The recipe's tool settings model refuses bad settings before any tool starts, without retries."""
    add_batch(dagster_instance, data_root, "early", parse_settings(
        {"input": str(datasets / "real_videos" / "stone_sign.mp4"), "scene": "outdoor", "mode": "gaussian",
         "quality": "proto"}))
    for settings, named in (({"cpu_budget_s": "many"}, "cpu_budget_s"), ({"colour": "red"}, "colour")):
        result = materialize_partition(["reconstruction"], recipe("early", "gaussian-proto"), raise_on_error=False,
                                       run_config={"ops": {"reconstruction": {"config": {"settings": settings}}}})
        failures = result.get_step_failure_events()
        assert len(failures) == 1, settings  # one attempt: bad settings are not retried
        message = failures[0].event_specific_data.error.message
        assert "recipe gaussian-proto" in message and named in message, message
