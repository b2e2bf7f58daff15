"""The gsplat tool on real photographs, through Dagster Pipes, on the CPU path; and its refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pycolmap
import pytest

from components import require
from plyfile import PlyData

from onyx_gsplat.config import GsplatConfig
from onyx_gsplat.dataset import MIN_POINTS, load_scene, read_sparse_model
from onyx_gsplat.plan import make_plan
from onyx_gsplat.render import rasterizer
from onyx_gsplat.tool import pick_device
from onyx_tools.errors import ToolError
from onyx_tools.layout import BatchLayout
from onyx_tools.manifest import data_version
from onyx_tools.splat_ply import read_splat_ply

# Small enough for the test budget on two shared cores: 120 steps at 107x80, up to 2,500
# Gaussians; densification every 10 steps from step 5 to 72 (too short a run for an opacity
# reset: test_densify covers those).
SMALL = {"recipe": "gaussian-proto", "scene": "indoor", "device": "cpu", "iterations": 120, "downscale": 6,
         "max_gaussians": 2500, "refine_every": 10}


def test_trains_on_real_photographs_and_publishes_a_valid_splat(chair_batch, gsplat_tool):
    ok, meta, version, error = gsplat_tool({"batch_dir": str(chair_batch), **SMALL})
    assert ok, error

    assert meta["device"] == "cpu" and meta["rasterizer"] == "tiles-cpu"
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
    # Densification ran on the tile rasterizer's view-space gradients: it grew the cloud (clone and
    # split) up to the budget and no further; all SfM points were used.
    events = metrics["refinements"]
    assert metrics["gaussians_initial"] == len(pycolmap.Reconstruction(chair_batch / "sparse" / "0").points3D)
    assert any(e.get("cloned", 0) > 0 for e in events) and any(e.get("split", 0) > 0 for e in events), events
    assert max(e["after"] for e in events) <= 2500 and meta["gaussians"] <= 2500
    assert metrics["plan"]["max_gaussians"] == 2500 and metrics["plan"]["iterations"] == 120
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
    scene = load_scene(BatchLayout(chair_batch), lambda width, height: 8, eval_every=8)
    assert [v.name for v in scene.test] == ["image000.jpg", "image008.jpg", "image016.jpg"]
    assert len(scene.train) == 18 and scene.undistorted
    view = scene.train[0]
    assert (view.width, view.height) == (80, 60)
    assert view.K[0, 2] == pytest.approx(40.0, abs=0.5) and view.K[1, 2] == pytest.approx(30.0, abs=0.5)
    assert len(scene.points) >= MIN_POINTS and scene.colors.min() >= 0 and scene.colors.max() <= 1
    assert not list((chair_batch / ".work").glob("gsplat-*"))


def test_plan_per_device_and_budget():
    gpu_indoor = make_plan(GsplatConfig(scene="indoor"), "cuda", 1920, 1080)
    assert (gpu_indoor.iterations, gpu_indoor.downscale, gpu_indoor.rasterizer) == (7000, 2, "gsplat-cuda")
    assert make_plan(GsplatConfig(scene="outdoor"), "cuda", 1920, 1080).downscale == 4
    # CPU: the budget decides; a larger budget never means smaller images or fewer Gaussians.
    plans = [make_plan(GsplatConfig(cpu_budget_s=budget, threads=2), "cpu", 1920, 1080)
             for budget in (20, 60, 150, 600, 3600)]
    widths = [round(1920 / p.downscale) for p in plans]
    assert widths == sorted(widths) and widths[0] < widths[-1], widths
    assert [p.max_gaussians for p in plans] == sorted(p.max_gaussians for p in plans)
    assert all(p.iterations is None and p.rasterizer == "tiles-cpu" for p in plans)
    assert [p.budget_s for p in plans] == [20, 60, 150, 600, 3600]
    # Explicit settings win; fixed iterations replace the time budget.
    explicit = make_plan(GsplatConfig.from_params({"iterations": 50, "downscale": 3, "max_gaussians": 777,
                                                   "rasterizer": "torch"}), "cpu", 640, 360)
    assert (explicit.iterations, explicit.budget_s, explicit.downscale, explicit.max_gaussians,
            explicit.rasterizer) == (50, None, 3, 777, "torch-cpu")
    # Never wider than the photographs.
    assert make_plan(GsplatConfig(cpu_budget_s=3600), "cpu", 200, 150).downscale == 1


@pytest.mark.parametrize("params, message", [
    ({"scene": "underwater"}, "scene: got 'underwater', expected 'indoor' or 'outdoor'"),
    ({"device": "tpu"}, "device: got 'tpu', expected 'auto', 'cpu' or 'cuda'"),
    ({"iterations": "many"}, "iterations: Input should be a valid integer"),
    ({"iterations": 0}, "iterations: Input should be greater than 0"),
    ({"sh_degree": 4}, "sh_degree: Input should be less than or equal to 3"),
    ({"recipe": "../escape"}, "recipe: String should match pattern"),
    ({"eval_every": 1}, "eval_every must be 0 (no hold-out) or at least 2"),
    ({"cpu_budget_s": -5}, "cpu_budget_s: Input should be greater than 0"),
    ({"downscal": 2}, "downscal: not a setting"),
])
def test_bad_parameters_are_refused(params, message):
    with pytest.raises(ToolError, match=message.replace("(", r"\(").replace(")", r"\)")):
        GsplatConfig.from_params(params)


def test_asking_for_cuda_without_it_says_what_to_do():
    import torch

    require("no-cuda", not torch.cuda.is_available(), "this machine has CUDA")
    with pytest.raises(ToolError, match="no CUDA device"):
        pick_device("cuda")
    assert pick_device("auto") == "cpu"
    assert callable(rasterizer("gsplat-cuda"))  # importable without CUDA; only calling it needs the GPU


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


def test_a_time_budget_trains_until_it_is_spent(chair_batch):
    """No iterations given: the run trains for ``cpu_budget_s`` seconds (held-out scoring not counted)
    and reports the plan it followed."""
    import logging

    from onyx_gsplat.tool import build_splat

    config = GsplatConfig.from_params({"device": "cpu", "cpu_budget_s": 3, "downscale": 8, "max_gaussians": 3000,
                                       "sh_degree": 1, "recipe": "gaussian-proto"})
    meta = build_splat(BatchLayout(chair_batch), config, logging.getLogger("test-gsplat"))
    assert meta["cpu_budget_s"] == 3 and meta["train_seconds"] >= 3 and meta["iterations"] >= 1
    assert meta["max_gaussians"] == 3000 and meta["resolution"] == "80x60" and meta["downscale"] == 8
    metrics = json.loads((chair_batch / meta["metrics_path"]).read_text())
    assert metrics["plan"]["iterations"] is None and metrics["plan"]["budget_s"] == 3
    assert metrics["checkpoints"][-1]["step"] == meta["iterations"]
    assert metrics["checkpoints"][-1]["seconds"] == pytest.approx(meta["train_seconds"], abs=0.1)
