"""The openmvs step: photogrammetry recipes -> output/<recipe>/mesh.glb + mesh.ply + preview.png.

OpenMVS when its binaries are installed (the image); otherwise, or with backend "cpu",
the CPU path (plane-sweep depth, COLMAP fusion, Poisson), so the recipe works everywhere.
"""

from __future__ import annotations

import resource
import shutil
import time
from dataclasses import replace

from onyx_tools.errors import ToolError
from onyx_tools.manifest import data_version
from onyx_tools.publish import publishing
from onyx_tools.tool import ToolRun
from onyx_tools.undistort import UndistortConfig, undistort_to_pinhole

from .commands import OpenMVSSettings
from .cpu_backend import CPUConfig, reconstruct_cpu
from .config import OpenMVSConfig
from .meshing import MeshConfig, export_mesh
from .openmvs_backend import INSTALL_HINT, openmvs_available, reconstruct_openmvs
from .preview import render_preview, write_preview
from .views import load_sparse_scene


CPU_BACKEND = "cpu-sweep"


def choose_backend(requested: str, have_openmvs: bool) -> str:
    if requested == "openmvs" and not have_openmvs:
        raise ToolError(f"backend 'openmvs' was requested but its binaries are missing: {INSTALL_HINT}")
    if requested == "cpu" or not have_openmvs:
        return CPU_BACKEND
    return "openmvs"


def peak_memory_mib() -> float:
    """The largest resident set this step reached: the tool itself or any program it ran (OpenMVS's)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return round(max(own, children) / 1024, 1)   # Linux reports KiB


def main(run: ToolRun) -> None:
    params = OpenMVSConfig.from_params(run.params)
    layout = run.layout
    backend = choose_backend(params.backend, openmvs_available())
    run.log.info("recipe %s, backend %s", params.recipe, backend)
    work = layout.work / f"openmvs-{params.recipe}"
    workspace = work / "undistorted"
    target = layout.recipe_output(params.recipe)
    timings: dict[str, float] = {}

    run.progress("undistort", 0, 1, "pycolmap.undistort_images", force=True)
    started = time.monotonic()
    max_size = params.cpu_max_image_size if backend == CPU_BACKEND else -1
    undistort_to_pinhole(layout.sparse_model, layout.images, workspace, UndistortConfig(max_image_size=max_size))
    timings["undistort_s"] = round(time.monotonic() - started, 2)
    scene = load_sparse_scene(workspace / "sparse")
    if len(scene.views) < 3:
        raise ToolError(f"the sparse model has {len(scene.views)} registered images; photogrammetry needs 3+")

    with publishing(target) as out:
        extra: dict = {}
        if backend == "openmvs":
            settings = OpenMVSSettings(max_resolution=params.max_resolution, decimate=params.decimate,
                                       refine=params.refine, max_threads=params.max_threads)
            first = scene.views[0]
            result = reconstruct_openmvs(workspace, work / "openmvs", settings, params.resolution_level,
                                         len(scene.views), (first.width, first.height), run.progress, run.log)
            shutil.copyfile(result.glb, out / "mesh.glb")          # keeps OpenMVS's texture
            export_mesh(result.mesh, None, out / "mesh.ply")          # vertex colours from the texture
            extra["resolution_level"] = result.resolution.level
        else:
            config = CPUConfig(mesh=replace(MeshConfig(), poisson_depth=params.poisson_depth,
                                            decimate=params.decimate))
            result = reconstruct_cpu(workspace, scene, work, config, run.progress, run.log)
            export_mesh(result.mesh, out / "mesh.glb", out / "mesh.ply")
            extra["depth_maps"] = result.depth_maps
        timings.update(result.timings)
        mesh = result.mesh
        view = scene.views[len(scene.views) // 2]
        write_preview(out / "preview.png", render_preview(mesh.vertices, mesh.faces, mesh.colors, view))
    shutil.rmtree(work, ignore_errors=True)  # depth maps and scenes are scratch; the mesh is the output

    relative = target.relative_to(layout.root).as_posix()
    run.progress("done", 1, 1, f"{len(mesh.faces)} faces", force=True)
    run.report({
        "recipe": params.recipe,
        "backend": backend,
        "dense_points": int(result.dense_points),
        "vertices": int(len(mesh.vertices)),
        "faces": int(len(mesh.faces)),
        "mesh_path": f"{relative}/mesh.glb",
        "mesh_ply_path": f"{relative}/mesh.ply",
        "preview_path": f"{relative}/preview.png",
        "peak_memory_mib": peak_memory_mib(),
        "timings": {"raw_value": timings, "type": "json"},  # Pipes wants nested values typed
        **extra,
    }, data_version=data_version(target))
