"""The OpenMVS wrapper around binaries that do not exist here: commands, memory, the runner's errors."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import numpy as np
import pytest

from onyx_openmvs import commands
from onyx_openmvs.colmap_arrays import read_array, write_array
from onyx_openmvs.commands import OpenMVSSettings, ScenePaths
from onyx_dagster.recipes import get_recipe
from onyx_openmvs.config import OpenMVSConfig
from onyx_openmvs.tool import CPU_BACKEND, choose_backend
from onyx_openmvs.memory import available_memory_bytes, choose_resolution_level, working_size
from onyx_openmvs.openmvs_backend import reconstruct_openmvs
from onyx_tools.errors import ToolError
from onyx_tools.process import MissingProgramError, ProgramFailedError, run_program

GiB = 1 << 30
LOG = logging.getLogger("test.openmvs")


def test_proto_pipeline_commands(tmp_path):
    params = get_recipe("photogrammetry-proto").validate(get_recipe("photogrammetry-proto").tool_settings("indoor"))
    settings = OpenMVSSettings(resolution_level=2, decimate=params.decimate, refine=params.refine)
    paths = ScenePaths(tmp_path / "mvs")
    steps = commands.pipeline(tmp_path / "ws", paths, settings)
    assert [name for name, _ in steps] == ["InterfaceCOLMAP", "DensifyPointCloud", "ReconstructMesh", "TextureMesh"]
    interface, densify, reconstruct, texture = (command for _, command in steps)
    assert interface[:5] == ["InterfaceCOLMAP", "-i", str(tmp_path / "ws"), "-o", str(paths.scene)]
    assert interface[interface.index("--image-folder") + 1] == str(tmp_path / "ws" / "images")
    assert densify[densify.index("--resolution-level") + 1] == "2"
    assert reconstruct[reconstruct.index("--decimate") + 1] == "0.2"
    assert texture[texture.index("--export-type") + 1] == "glb"
    assert texture[1] == str(paths.dense) and texture[texture.index("-m") + 1] == str(paths.mesh_ply)
    assert all(command[command.index("-w") + 1] == str(paths.work) for _, command in steps)


def test_production_pipeline_refines_and_does_not_decimate(tmp_path):
    recipe = get_recipe("photogrammetry-production")
    params = recipe.validate(recipe.tool_settings("outdoor"))
    settings = OpenMVSSettings(decimate=params.decimate, refine=params.refine)
    paths = ScenePaths(tmp_path)
    steps = dict(commands.pipeline(tmp_path / "ws", paths, settings))
    assert list(steps) == ["InterfaceCOLMAP", "DensifyPointCloud", "ReconstructMesh", "RefineMesh", "TextureMesh"]
    assert "--decimate" not in steps["ReconstructMesh"]
    # the mesh steps read the dense scene (OpenMVS writes no .mvs beside their meshes) and the mesh file
    assert steps["RefineMesh"][1:4] == [str(paths.dense), "-m", str(paths.mesh_ply)]
    assert steps["TextureMesh"][1:4] == [str(paths.dense), "-m", str(paths.refined_ply)]


def test_params_are_validated():
    with pytest.raises(ToolError, match="gaussian-proto"):
        OpenMVSConfig.from_params({"recipe": "gaussian-proto"})
    with pytest.raises(ToolError, match="backend"):
        OpenMVSConfig.from_params({"recipe": "photogrammetry-proto", "backend": "gpu"})
    with pytest.raises(ToolError, match="decimate"):
        OpenMVSConfig.from_params({"recipe": "photogrammetry-proto", "decimate": 0})
    with pytest.raises(ToolError, match="not a setting"):
        OpenMVSConfig.from_params({"recipe": "photogrammetry-proto", "depth": 9})


def test_backend_choice():
    assert choose_backend("auto", have_openmvs=True) == "openmvs"
    assert choose_backend("auto", have_openmvs=False) == CPU_BACKEND
    assert choose_backend("cpu", have_openmvs=True) == CPU_BACKEND
    with pytest.raises(ToolError, match="binaries are missing"):
        choose_backend("openmvs", have_openmvs=False)


@pytest.mark.parametrize(
    ("available", "images", "size", "level"),
    [
        (64 * GiB, 165, (2048, 1152), 1),   # Onyx 1.0's 165 frames on a big server
        (12 * GiB, 165, (2048, 1152), 2),
        (4 * GiB, 165, (2048, 1152), 3),
        (8 * GiB, 20, (2048, 1152), 1),     # few images fit sharp even on a laptop
        (2 * GiB, 300, (2048, 1152), 4),    # outdoor production on a small box: the coarsest level
    ],
)
def test_resolution_level_from_memory(available, images, size, level):
    choice = choose_resolution_level(available, images, *size)
    assert choice.level == level
    assert choice.fits


def test_resolution_level_is_monotonic_and_says_when_nothing_fits():
    levels = [choose_resolution_level(gib * GiB, 200, 3840, 2160).level for gib in (2, 4, 8, 16, 32, 64, 128)]
    assert levels == sorted(levels, reverse=True)
    tight = choose_resolution_level(1 * GiB, 500, 3840, 2160)
    assert tight.level == 4 and not tight.fits
    assert working_size(4000, 3000, 0, 3200) == (3200, 2400)   # the --max-resolution cap
    assert working_size(2048, 1152, 2, 3200) == (512, 288)


def test_available_memory_takes_the_cgroup_limit(tmp_path):
    proc, cgroup = tmp_path / "proc", tmp_path / "cgroup"
    proc.mkdir(), cgroup.mkdir()
    (proc / "meminfo").write_text("MemTotal: 67108864 kB\nMemAvailable: 33554432 kB\n")
    assert available_memory_bytes(proc, cgroup) == 32 * GiB
    (cgroup / "memory.max").write_text(str(8 * GiB))
    (cgroup / "memory.current").write_text(str(2 * GiB))
    assert available_memory_bytes(proc, cgroup) == 6 * GiB
    (cgroup / "memory.max").write_text("max")
    assert available_memory_bytes(proc, cgroup) == 32 * GiB


def test_missing_binary_is_a_specific_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(MissingProgramError, match="InterfaceCOLMAP was not found on PATH.*backend 'cpu'"):
        run_program(["InterfaceCOLMAP", "-i", "x"], log=LOG,
                    hint="without them run backend 'cpu' (or 'auto', which falls back to it)")


def _fake_binary(folder: Path, name: str, script: str) -> None:
    """A stand-in for an OpenMVS binary (they cannot be built here): a shell script on PATH."""
    path = folder / name
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


def test_failure_carries_the_log_tail_and_progress_lines_stream(tmp_path, monkeypatch):
    _fake_binary(tmp_path, "DensifyPointCloud",
                 'for i in 1 2 3; do echo "Estimated depth-maps $i"; done\necho "error: bad scene" >&2\nexit 3\n')
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    seen = []
    with pytest.raises(ProgramFailedError) as failure:
        run_program(["DensifyPointCloud", "scene.mvs"], log=LOG, hint="-", on_line=seen.append)
    assert failure.value.returncode == 3
    assert "DensifyPointCloud exited with status 3" in str(failure.value)
    assert "error: bad scene" in str(failure.value)
    assert seen[:3] == ["Estimated depth-maps 1", "Estimated depth-maps 2", "Estimated depth-maps 3"]


def test_oom_kill_names_the_resolution_level(tmp_path, monkeypatch):
    """A fake OpenMVS whose DensifyPointCloud is SIGKILLed, as the OOM killer does (openMVS#600)."""
    (tmp_path / "bin").mkdir()
    for name in commands.BINARIES:
        _fake_binary(tmp_path / "bin", name, 'echo "$0 ok"\n')
    _fake_binary(tmp_path / "bin", "DensifyPointCloud", 'echo "densifying"\nkill -9 $$\n')
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    workspace = tmp_path / "ws"
    (workspace / "sparse").mkdir(parents=True)
    import pycolmap

    pycolmap.Reconstruction().write(workspace / "sparse")
    with pytest.raises(ProgramFailedError, match=r"out of memory at --resolution-level 2.*resolution_level=3"):
        reconstruct_openmvs(workspace, tmp_path / "mvs", OpenMVSSettings(), 2, 10, (640, 480),
                            lambda *a: None, LOG)


def test_colmap_array_round_trip_in_colmap_layout(tmp_path):
    depth = np.arange(12, dtype=np.float32).reshape(3, 4)
    write_array(tmp_path / "d.bin", depth)
    raw = (tmp_path / "d.bin").read_bytes()
    assert raw.startswith(b"4&3&1&")
    # COLMAP's read_array: reshape((W, H, C), order="F") then transpose -> row-major (H, W)
    data = np.frombuffer(raw[len(b"4&3&1&"):], np.float32)
    assert np.array_equal(np.transpose(data.reshape((4, 3, 1), order="F"), (1, 0, 2)).squeeze(), depth)
    normals = np.random.default_rng(0).random((3, 4, 3)).astype(np.float32)
    write_array(tmp_path / "n.bin", normals)
    assert np.array_equal(read_array(tmp_path / "n.bin"), normals)
