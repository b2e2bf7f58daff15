"""MILo's command lines (github.com/Anttwo/MILo), as pure functions.

Assumed CLI, from MILo's README at the pinned commit (see the Dockerfile):
  python train.py -s <COLMAP dataset> -m <output> --imp_metric indoor|outdoor --rasterizer radegs
                  [--dense_gaussians] [--mesh_config default] [--iterations N]
    (3DGS-style trainer: the dataset is images/ + sparse/0 with PINHOLE cameras; it saves
     <output>/point_cloud/iteration_<N>/point_cloud.ply, N = the last iteration)
  python mesh_extract_sdf.py -s <COLMAP dataset> -m <output> --rasterizer radegs
    (writes <output>/mesh_learnable_sdf.ply)
"""

from __future__ import annotations

from pathlib import Path

from .config import MiloConfig


def train_command(params: MiloConfig, dataset: Path, model: Path) -> list[str]:
    command = [params.python, str(params.home / "train.py"), "-s", str(dataset), "-m", str(model),
               "--imp_metric", params.scene, "--rasterizer", params.rasterizer,
               "--mesh_config", params.mesh_config, "--iterations", str(int(params.iterations))]
    if params.dense:
        command.append("--dense_gaussians")
    return command


def mesh_command(params: MiloConfig, dataset: Path, model: Path) -> list[str]:
    # MILo's README: extraction must use the mesh config training used (--config there).
    return [params.python, str(params.home / "mesh_extract_sdf.py"), "-s", str(dataset), "-m", str(model),
            "--rasterizer", params.rasterizer, "--config", params.mesh_config]
