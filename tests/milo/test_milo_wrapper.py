"""The MILo wrapper around a trainer that cannot run here (no GPU, no MILo build)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from components import require

from onyx_milo.commands import mesh_command, train_command
from onyx_milo.config import MiloConfig
from onyx_milo.discovery import MESH_NAME, find_outputs, ply_counts
from onyx_milo.tool import NO_GPU_FIX
from onyx_tools.gpu import cuda_available, require_cuda
from onyx_milo.progress import last_step, parse_step
from onyx_tools.errors import ToolError
from onyx_tools.splat_ply import GaussianCloud, write_splat_ply

CAPTURED = (
    "Optimizing /data/output/gaussian-production\n"
    "Output folder: /data/output/gaussian-production [12/05 10:01:12]\n"
    "Training progress:   0%|          | 0/18000 [00:00<?, ?it/s]\r"
    "Training progress:   1%|          | 100/18000 [00:09<27:01, 11.04it/s, Loss=0.21]\n"
    "[ITER 7000] Saving Gaussians\n"
    "Step: 7000/18000 | loss 0.0412 | #gaussians 1204331\n"
    "Step: 17990/18000 | loss 0.0311 | #gaussians 1451200\n"
    "Step: 18000/18000 | loss 0.0310 | #gaussians 1451200\n"
    "Training complete.\n"
)


def test_train_command_indoor_matches_the_first_version(tmp_path):
    params = MiloConfig.from_params({"recipe": "gaussian-production", "scene": "indoor", "milo_home": "/opt/milo",
                                     "python": "python"})
    command = train_command(params, tmp_path / "data", tmp_path / "out")
    assert command[:6] == ["python", "/opt/milo/train.py", "-s", str(tmp_path / "data"), "-m", str(tmp_path / "out")]
    assert command[command.index("--imp_metric") + 1] == "indoor"
    assert command[command.index("--rasterizer") + 1] == "radegs"
    assert command[command.index("--mesh_config") + 1] == "default"
    assert command[command.index("--iterations") + 1] == "18000"
    assert "--dense_gaussians" in command


def test_train_command_outdoor_is_not_dense():
    params = MiloConfig.from_params({"scene": "outdoor", "iterations": 3000, "python": "python"})
    command = train_command(params, Path("d"), Path("m"))
    assert command[command.index("--imp_metric") + 1] == "outdoor"
    assert command[command.index("--iterations") + 1] == "3000"
    assert "--dense_gaussians" not in command
    assert mesh_command(params, Path("d"), Path("m"))[1:] == [
        "/opt/milo/milo/mesh_extract_sdf.py", "-s", "d", "-m", "m", "--rasterizer", "radegs", "--config", "default"]


def test_params_are_validated():
    with pytest.raises(ToolError, match="scene"):
        MiloConfig.from_params({"scene": "garden"})
    with pytest.raises(ToolError, match="mesh_config"):
        MiloConfig.from_params({"mesh_config": "huge"})


def test_progress_from_captured_log():
    assert parse_step("Step: 7000/18000 | loss 0.04") == (7000, 18000)
    assert parse_step("Training progress:  1%| | 100/18000 [00:09<27:01]") == (100, 18000)
    assert parse_step("[ITER 7000] Saving Gaussians") is None
    assert parse_step("Step: 9/3") is None
    assert last_step(CAPTURED) == (18000, 18000)
    steps = [parse_step(line) for line in CAPTURED.replace("\r", "\n").splitlines()]
    assert [s for s in steps if s] == [(0, 18000), (100, 18000), (7000, 18000), (17990, 18000), (18000, 18000)]


def _splat(n: int, seed: int = 0) -> GaussianCloud:
    rng = np.random.default_rng(seed)
    return GaussianCloud(means=rng.normal(size=(n, 3)), sh_dc=rng.normal(size=(n, 3)),
                         sh_rest=rng.normal(size=(n, 15, 3)) * 0.1, opacities=rng.normal(size=n),
                         scales=rng.normal(size=(n, 3)) - 4, quats=rng.normal(size=(n, 4)))


def _mesh_ply(path: Path) -> None:
    import trimesh

    trimesh.creation.icosphere(subdivisions=2).export(path)


def fake_milo_output(model: Path, iterations: tuple[int, ...] = (7000, 18000), mesh: bool = True) -> None:
    """What MILo leaves in its model folder (a stand-in: MILo cannot run here)."""
    for iteration in iterations:
        write_splat_ply(model / "point_cloud" / f"iteration_{iteration}" / "point_cloud.ply", _splat(50, iteration))
    (model / "cfg_args").write_text("Namespace()")
    if mesh:
        _mesh_ply(model / MESH_NAME)


def test_discovery_picks_the_configured_iteration_and_the_sdf_mesh(tmp_path):
    fake_milo_output(tmp_path)
    found = find_outputs(tmp_path, 18000)
    assert found.point_cloud == tmp_path / "point_cloud" / "iteration_18000" / "point_cloud.ply"
    assert found.iteration == 18000 and found.mesh == tmp_path / MESH_NAME
    assert ply_counts(found.mesh) == {"vertex": 162, "face": 320}
    # a run with fewer iterations: the latest saved one, reported with its number
    assert find_outputs(tmp_path, 30000).iteration == 18000


def test_discovery_errors_say_which_stage_failed(tmp_path):
    with pytest.raises(ToolError, match="saved no point_cloud"):
        find_outputs(tmp_path, 18000)
    fake_milo_output(tmp_path, mesh=False)
    with pytest.raises(ToolError, match="mesh extraction failed"):
        find_outputs(tmp_path, 18000)


def test_missing_gpu_is_the_specific_error(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert not cuda_available()
    with pytest.raises(ToolError) as error:
        require_cuda("milo", NO_GPU_FIX)
    assert str(error.value) == f"milo needs an NVIDIA GPU with CUDA and none is visible here: {NO_GPU_FIX}"
    assert "gaussian-proto" in NO_GPU_FIX


def test_this_host_has_no_gpu_so_milo_refuses():
    require("no-cuda", not cuda_available(), "this host has a CUDA GPU")
    with pytest.raises(ToolError, match="milo needs an NVIDIA GPU"):
        require_cuda("milo", NO_GPU_FIX)
