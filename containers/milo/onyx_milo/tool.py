"""onyx_milo: gaussian-production -> output/<recipe>/ with MILo's splat and mesh.

Undistorts the sparse model to PINHOLE (MILo's 3DGS loader takes no distortion),
trains, extracts the SDF mesh, validates the splat as gsplat's is validated, reports.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from onyx_tools.errors import ToolError
from onyx_tools.gpu import require_cuda
from onyx_tools.manifest import data_version
from onyx_tools.process import run_program
from onyx_tools.publish import publishing
from onyx_tools.splat_ply import splat_summary
from onyx_tools.tool import ToolRun
from onyx_tools.undistort import undistort_to_pinhole

from .commands import mesh_command, train_command
from .config import MiloConfig
from .discovery import find_outputs, ply_counts
from .progress import parse_step

NO_GPU_FIX = "MILo's rasterizers are CUDA only; use recipe gaussian-proto on CPU-only hosts"
INSTALL_HINT = "MILo is installed in the onyx-milo image (containers/milo/Dockerfile); set ONYX_MILO_HOME elsewhere"


def prepare_dataset(run: ToolRun, folder: Path) -> Path:
    """images/ + sparse/0 with PINHOLE cameras, the layout MILo's loader reads."""
    undistort_to_pinhole(run.layout.sparse_model, run.layout.images, folder)
    model = folder / "sparse" / "0"
    model.mkdir()
    for path in list((folder / "sparse").iterdir()):
        if path.is_file():
            path.rename(model / path.name)
    return folder


def main(run: ToolRun) -> None:
    params = MiloConfig.from_params(run.params)
    require_cuda("milo", NO_GPU_FIX)
    if not (params.home / "train.py").is_file():
        raise ToolError(f"MILo's train.py is not in {params.home}: {INSTALL_HINT}")
    layout = run.layout
    work = layout.work / f"milo-{params.recipe}"
    target = layout.recipe_output(params.recipe)
    timings: dict[str, float] = {}

    started = time.monotonic()
    run.progress("undistort", 0, 1, force=True)
    dataset = prepare_dataset(run, work / "dataset")
    timings["undistort_s"] = round(time.monotonic() - started, 2)

    def on_train_line(line: str) -> None:
        step = parse_step(line)
        if step:
            run.progress("train", *step)

    with publishing(target) as out:
        started = time.monotonic()
        run_program(train_command(params, dataset, out), log=run.log, hint=INSTALL_HINT,
                    cwd=params.home, on_line=on_train_line)
        timings["train_s"] = round(time.monotonic() - started, 2)
        run.progress("mesh", 0, 1, "mesh_extract_sdf.py", force=True)
        started = time.monotonic()
        run_program(mesh_command(params, dataset, out), log=run.log, hint=INSTALL_HINT, cwd=params.home)
        timings["mesh_s"] = round(time.monotonic() - started, 2)
        found = find_outputs(out, params.iterations)
        splat = splat_summary(found.point_cloud)          # the same checks as gsplat's splat
        mesh = ply_counts(found.mesh)
        point_cloud_rel = found.point_cloud.relative_to(out).as_posix()
        mesh_rel = found.mesh.relative_to(out).as_posix()
    shutil.rmtree(work, ignore_errors=True)

    relative = target.relative_to(layout.root).as_posix()
    run.progress("done", 1, 1, f"{splat['gaussians']} Gaussians", force=True)
    run.report({
        "recipe": params.recipe,
        "backend": "milo",
        "iteration": found.iteration,
        **splat,
        "vertices": mesh.get("vertex", 0),
        "faces": mesh.get("face", 0),
        "splat_path": f"{relative}/{point_cloud_rel}",
        "mesh_path": f"{relative}/{mesh_rel}",
        "timings": {"raw_value": timings, "type": "json"},
    }, data_version=data_version(target))
