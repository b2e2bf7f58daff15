"""The whole tool through Dagster Pipes, as the masks asset runs it (a harness of our own, no onyx_dagster).

No `from __future__ import annotations` here: Dagster reads the asset's `context` annotation at run time.
"""

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pycolmap
import pytest
from dagster import AssetExecutionContext, DagsterInstance, PipesSubprocessClient, asset, materialize

from onyx_tools.splat_ply import GaussianCloud, read_splat_ply, write_splat_ply


def run_segformer(extras: dict) -> tuple[bool, dict]:
    """Materialise a throwaway asset whose body is the tool; (success, metadata as plain values)."""

    @asset(name="segformer_masks")
    def _masks(context: AssetExecutionContext, pipes: PipesSubprocessClient):
        return pipes.run(context=context, command=[sys.executable, "-m", "onyx_segformer"],
                         extras=extras).get_materialize_result()

    env = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2"}
    result = materialize([_masks], resources={"pipes": PipesSubprocessClient(env=env)},
                         instance=DagsterInstance.ephemeral(), raise_on_error=False)
    if not result.success:
        return False, {}
    (event,) = result.asset_materializations_for_node("segformer_masks")
    return True, {key: getattr(value, "value", value) for key, value in event.metadata.items()}


@pytest.fixture()
def batch(tmp_path, chair_images) -> Path:
    """A batch folder: three real frames, a COLMAP model of them and a synthetic gsplat splat."""
    root = tmp_path / "batch"
    (root / "images").mkdir(parents=True)
    names = [p.name for p in chair_images[:3]]
    for name in names:
        shutil.copy(chair_images[0].parent / name, root / "images" / name)
    (root / "images" / "index.json").write_text(json.dumps({"frames": names}))
    reconstruction = pycolmap.Reconstruction()
    reconstruction.add_camera_with_trivial_rig(pycolmap.Camera.create_from_model_name(1, "PINHOLE", 500.0, 640, 480))
    for image_id, (name, x) in enumerate(zip(names, (-0.5, 0.0, 0.5)), start=1):
        pose = pycolmap.Rigid3d(pycolmap.Rotation3d(np.eye(3)), np.array([-x, 0.0, 0.0]))
        reconstruction.add_image_with_trivial_frame(pycolmap.Image(name=name, camera_id=1, image_id=image_id), pose)
    (root / "sparse" / "0").mkdir(parents=True)
    reconstruction.write(str(root / "sparse" / "0"))
    rng = np.random.default_rng(0)
    n = 2000
    cloud = GaussianCloud(means=rng.uniform([-1, -1, 3], [1, 1, 5], (n, 3)).astype(np.float32),
                          sh_dc=rng.normal(size=(n, 3)).astype(np.float32),
                          sh_rest=np.zeros((n, 3, 3), np.float32), opacities=np.zeros(n, np.float32),
                          scales=np.full((n, 3), -4.0, np.float32),
                          quats=np.tile(np.float32([1, 0, 0, 0]), (n, 1)))
    write_splat_ply(root / "output" / "gaussian-proto" / "splat.ply", cloud)
    return root


def test_outdoor_masks_and_filtered_splat(batch, fake_segformer_weights):
    ok, meta = run_segformer({"batch_dir": str(batch), "recipe": "gaussian-proto", "scene": "outdoor",
                              "model_dir": str(fake_segformer_weights), "batch_size": 2, "input_size": [96, 128],
                              "device": "cpu"})
    assert ok
    assert meta["skipped"] is False and meta["filtered"] is True
    assert meta["images"] == meta["masks"] == 3
    assert sorted(p.name for p in (batch / "masks").iterdir()) == ["image000.png", "image001.png", "image002.png"]
    assert meta["masks_path"] == "masks" and meta["preview_path"] == "previews/masks.png"
    assert (batch / meta["preview_path"]).is_file()
    assert meta["filtered_splat_path"] == "output/gaussian-proto/point_cloud_filtered.ply"
    filtered = read_splat_ply(batch / meta["filtered_splat_path"])
    assert meta["gaussians_before"] == 2000 and len(filtered) == meta["gaussians_after"] <= 2000
    assert meta["cameras"] == 3 and meta["cameras_used"] <= 3
    assert 0.0 <= meta["masked_fraction"] <= 1.0
    assert meta["classes"] == [2, 12, 21, 26, 76]
    assert {"seconds_masks", "seconds_filter", "seconds_total"} <= set(meta)
    assert not list(batch.glob(".tmp-*")) and (batch / "logs" / "segformer.log").is_file()


def test_indoor_is_skipped_with_reason_and_photogrammetry_only_masks(batch, fake_segformer_weights):
    ok, meta = run_segformer({"batch_dir": str(batch), "recipe": "gaussian-proto", "scene": "indoor",
                              "model_dir": str(batch / "no-weights-needed")})
    assert ok and meta["skipped"] is True and meta["masks"] == 0
    assert "indoor scene" in meta["reason"] and not (batch / "masks").exists()

    ok, meta = run_segformer({"batch_dir": str(batch), "recipe": "photogrammetry-proto", "scene": "outdoor",
                              "model_dir": str(fake_segformer_weights), "input_size": 64, "device": "cpu"})
    assert ok and meta["filtered"] is False and "mesh" in meta["filter_reason"]
    assert meta["masks"] == 3 and "gaussians_after" not in meta


def test_missing_weights_fail_the_step_with_the_fix(batch):
    ok, _ = run_segformer({"batch_dir": str(batch), "recipe": "gaussian-proto", "scene": "outdoor",
                           "model_dir": str(batch / "absent")})
    assert not ok
    log = (batch / "logs" / "segformer.log").read_text()
    assert "SegFormer weights" in log and "fetch_weights.py" in log and "ONYX_SEGFORMER_WEIGHTS" in log
    assert not (batch / "masks").exists()
