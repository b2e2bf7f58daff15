"""The gsplat tool on real photographs, through Dagster Pipes, on the CPU path; and its refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pycolmap
import pytest
from plyfile import PlyData

from onyx_gsplat.config import GsplatConfig
from onyx_gsplat.dataset import MIN_POINTS, load_scene, read_sparse_model
from onyx_gsplat.tool import pick_device
from onyx_gsplat.train import select_rasterizer
from onyx_tools.errors import ToolError
from onyx_tools.layout import BatchLayout
from onyx_tools.manifest import data_version
from onyx_tools.splat_ply import read_splat_ply

# Smaller than the CPU defaults (160 px, 300 iterations, 4,000 Gaussians) to fit the test
# budget on two shared cores; densification still runs (from step 40, every 20 steps).
SMALL = {"recipe": "gaussian-proto", "scene": "indoor", "device": "cpu", "iterations": 120, "downscale": 6,
         "max_gaussians": 2000}


def test_trains_on_real_photographs_and_publishes_a_valid_splat(chair_batch, gsplat_tool):
    ok, meta, version, error = gsplat_tool({"batch_dir": str(chair_batch), **SMALL})
    assert ok, error

    assert meta["device"] == "cpu" and meta["rasterizer"] == "torch-cpu"
    assert meta["iterations"] == 120 and meta["resolution"] == "107x80"
    assert meta["held_out_views"] == 3  # image000, image008, image016 of 21
    # Held-out PSNR: the sparse points alone (opacity 0.1) against the trained splat.
    assert meta["psnr_last_eval"] >= meta["psnr_first_eval"] + 5.0, meta
    assert meta["psnr_last_eval"] > 17.0, meta
    assert 0.0 < meta["ssim_last_eval"] <= 1.0
    assert meta["train_seconds"] > 0

    assert meta["splat_path"] == "output/gaussian-proto/splat.ply"
    assert meta["preview_path"] == "previews/gaussian-proto.png"
    splat = chair_batch / meta["splat_path"]
    cloud = read_splat_ply(splat)
    assert len(cloud) == meta["gaussians"] > 0
    assert cloud.sh_rest.shape == (len(cloud), 15, 3)  # sh_degree 3 by default
    # A second, independent reader: plyfile sees the standard 3DGS vertex layout.
    vertex = PlyData.read(str(splat))["vertex"]
    names = [p.name for p in vertex.properties]
    assert names[:9] == ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
    assert names[-8:] == ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    assert len(names) == 9 + 45 + 8 and {p.val_dtype for p in vertex.properties} == {"f4"}
    assert vertex.count == meta["gaussians"]
    assert np.allclose(np.linalg.norm(cloud.quats, axis=1), 1.0, atol=1e-5)

    output = chair_batch / "output" / "gaussian-proto"
    assert sorted(p.name for p in output.iterdir()) == ["metrics.json", "preview.png", "splat.ply"]
    assert (chair_batch / meta["preview_path"]).read_bytes() == (output / "preview.png").read_bytes()
    metrics = json.loads((output / "metrics.json").read_text())
    assert metrics["test_views"] == ["image000.jpg", "image008.jpg", "image016.jpg"]
    assert metrics["undistorted"] is True  # SfM estimated SIMPLE_RADIAL cameras
    # Densification ran (gsplat's DefaultStrategy on the torch rasterizer's info): it grew the
    # cloud at least once; the 2,238 SfM points start as a random 2,000.
    assert metrics["gaussians_initial"] == 2000
    assert any(r["densified"] > r["before"] for r in metrics["refinements"]), metrics["refinements"]
    assert version == data_version(output)
    # Nothing left behind: no temporaries beside the output, no undistorted copies in .work.
    assert not list((chair_batch / "output").glob(".tmp-*"))
    assert not list((chair_batch / ".work").glob("gsplat-*"))
    assert (chair_batch / "logs" / "gsplat.log").is_file()


def test_without_a_sparse_model_it_says_to_materialise_it_first(chair_batch, gsplat_tool):
    import shutil

    shutil.rmtree(chair_batch / "sparse")
    ok, _, _, error = gsplat_tool({"batch_dir": str(chair_batch), **SMALL})
    assert not ok
    assert "no sparse model" in error and "materialise sparse_model first" in error, error
    assert not (chair_batch / "output" / "gaussian-proto").exists()


def _keep_points(batch: Path, keep: int) -> None:
    model = pycolmap.Reconstruction(batch / "sparse" / "0")
    for point_id in sorted(model.points3D)[keep:]:
        model.delete_point3D(point_id)
    model.write(batch / "sparse" / "0")


def test_too_few_points_is_refused_with_the_count(chair_batch):
    _keep_points(chair_batch, 60)
    with pytest.raises(ToolError, match=rf"only 60 3D points; splat training needs at least {MIN_POINTS}"):
        read_sparse_model(BatchLayout(chair_batch))


def test_missing_images_are_named(chair_batch):
    (chair_batch / "images" / "image005.jpg").unlink()
    with pytest.raises(ToolError, match=r"1 image\(s\) named in the sparse model are missing .*image005.jpg"):
        read_sparse_model(BatchLayout(chair_batch))


def test_scene_loading_downscales_undistorts_and_holds_out_every_eighth(chair_batch):
    scene = load_scene(BatchLayout(chair_batch), lambda width: 8, eval_every=8)
    assert [v.name for v in scene.test] == ["image000.jpg", "image008.jpg", "image016.jpg"]
    assert len(scene.train) == 18 and scene.undistorted
    view = scene.train[0]
    assert (view.width, view.height) == (80, 60)
    assert view.K[0, 2] == pytest.approx(40.0, abs=0.5) and view.K[1, 2] == pytest.approx(30.0, abs=0.5)
    assert len(scene.points) >= MIN_POINTS and scene.colors.min() >= 0 and scene.colors.max() <= 1
    assert not list((chair_batch / ".work").glob("gsplat-*"))


def test_config_defaults_per_device():
    gpu_indoor = GsplatConfig(scene="indoor").resolved("cuda", 1920)
    assert (gpu_indoor.iterations, gpu_indoor.downscale) == (7000, 2)
    assert GsplatConfig(scene="outdoor").resolved("cuda", 1920).downscale == 4
    cpu = GsplatConfig().resolved("cpu", 640)
    assert (cpu.iterations, cpu.downscale, cpu.max_gaussians) == (300, 4, 4000)
    assert GsplatConfig().resolved("cpu", 2048).downscale == 13  # about 160 px wide
    explicit = GsplatConfig.from_params({"iterations": 50, "downscale": 3, "device": "cpu", "unrelated": 1,
                                         "max_gaussians": None})
    assert explicit.resolved("cpu", 640).downscale == 3 and explicit.iterations == 50


@pytest.mark.parametrize("params, message", [
    ({"scene": "underwater"}, "scene 'underwater' is not one of indoor, outdoor"),
    ({"device": "tpu"}, "device 'tpu' is not one of auto, cpu, cuda"),
    ({"iterations": "many"}, "iterations='many' is not a int"),
    ({"iterations": 0}, "iterations must be at least 1"),
    ({"sh_degree": 4}, "sh_degree must be 0-3"),
    ({"recipe": "../escape"}, "is not a recipe name"),
])
def test_bad_parameters_are_refused(params, message):
    with pytest.raises(ToolError, match=message.replace("(", r"\(").replace(")", r"\)")):
        GsplatConfig.from_params(params)


def test_asking_for_cuda_without_it_says_what_to_do():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ToolError, match="no CUDA device"):
        pick_device("cuda")
    assert pick_device("auto") == "cpu"
    assert select_rasterizer("cpu")[0] == "torch-cpu"
    name, rasterize = select_rasterizer("cuda")  # importable without CUDA; only calling it needs the GPU
    assert name == "gsplat-cuda" and callable(rasterize)


def test_without_held_out_views_no_psnr_is_claimed(chair_batch):
    """``build_splat`` directly (as the GPU check calls it), tiny settings, no hold-out."""
    import logging

    from onyx_gsplat.tool import build_splat

    config = GsplatConfig.from_params({"device": "cpu", "iterations": 8, "downscale": 16, "eval_every": 0,
                                       "sh_degree": 0, "recipe": "gaussian-proto"})
    meta = build_splat(BatchLayout(chair_batch), config, logging.getLogger("test-gsplat"))
    assert meta["held_out_views"] == 0 and meta["iterations"] == 8 and meta["resolution"] == "40x30"
    assert not {"psnr_first_eval", "psnr_last_eval", "ssim_last_eval"} & set(meta)
    metrics = json.loads((chair_batch / meta["metrics_path"]).read_text())  # strict JSON: no NaN
    assert metrics["test_views"] == [] and metrics["last_eval"]["psnr"] is None
    assert read_splat_ply(chair_batch / meta["splat_path"]).sh_rest.shape[1] == 0
    assert (chair_batch / meta["preview_path"]).is_file()
