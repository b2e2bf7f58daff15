"""The OpenMVS path: the five binaries in order, one progress stage per binary."""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from onyx_tools.errors import ToolError
from onyx_tools.process import killed_by_memory, run_program

from . import commands
from .commands import OpenMVSSettings, ScenePaths
from .meshing import Mesh
from .memory import ResolutionChoice, available_memory_bytes, choose_resolution_level

INSTALL_HINT = ("the OpenMVS binaries are in the onyx-openmvs image (containers/openmvs/Dockerfile); "
                "without them run backend 'cpu' (or 'auto', which falls back to it)")


def openmvs_available() -> bool:
    return all(shutil.which(binary) for binary in commands.BINARIES)


def _failure_hint(step: str, level: int) -> Callable[[int], str]:
    def hint(returncode: int) -> str:
        if killed_by_memory(returncode):
            return (f"{step} was killed, most likely out of memory at --resolution-level {level}: "
                    f"rerun with resolution_level={level + 1} or give the step more memory")
        return ""
    return hint


@dataclass
class OpenMVSResult:
    mesh: Mesh
    glb: Path
    dense_points: int
    resolution: ResolutionChoice
    timings: dict[str, float]


def ply_vertex_count(path: Path) -> int:
    with open(path, "rb") as handle:
        for raw in handle:
            line = raw.decode("ascii", "replace").strip()
            if line.startswith("element vertex"):
                return int(line.split()[2])
            if line == "end_header":
                break
    return 0


def vertex_colours(mesh) -> np.ndarray:
    """(V, 3) uint8 colours of a textured mesh's vertices, sampled from its texture (mesh.ply has no texture)."""
    import trimesh

    visual = mesh.visual
    material = getattr(visual, "material", None)
    image = getattr(material, "baseColorTexture", None) or getattr(material, "image", None)
    if getattr(visual, "uv", None) is None or image is None:
        raise ToolError("TextureMesh wrote a mesh without a texture: check logs/openmvs.log")
    return np.asarray(trimesh.visual.color.uv_to_color(visual.uv, image))[:, :3].astype(np.uint8)


def reconstruct_openmvs(workspace: Path, work: Path, settings: OpenMVSSettings, fixed_level: int | None,
                        image_count: int, image_size: tuple[int, int], progress, log: logging.Logger
                        ) -> OpenMVSResult:
    import pycolmap
    import trimesh

    # InterfaceCOLMAP reads the text model; the undistorter wrote binary
    pycolmap.Reconstruction(str(workspace / "sparse")).write_text(str(workspace / "sparse"))
    choice = choose_resolution_level(available_memory_bytes(), image_count, *image_size,
                                     min_level=settings.resolution_level, max_resolution=settings.max_resolution)
    if fixed_level is not None:
        choice = replace(choice, level=fixed_level)
    log.info("DensifyPointCloud --resolution-level %d (%dx%d working size, about %.1f GiB estimated of %.1f "
             "GiB available)%s", choice.level, *choice.working_size, choice.estimated_bytes / 2**30,
             choice.available_bytes / 2**30, "" if choice.fits else ": MAY NOT FIT, expect an OOM kill")
    settings = replace(settings, resolution_level=choice.level)
    paths = ScenePaths(work)
    # DensifyPointCloud reuses any depth*.dmap in its working folder: an earlier attempt's maps (another
    # resolution level, another sparse model) would silently become this run's
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    steps = commands.pipeline(workspace, paths, settings)
    timings: dict[str, float] = {}
    for number, (step, command) in enumerate(steps):
        progress(step, number, len(steps), " ".join(command[:2]))
        started = time.monotonic()
        run_program(command, log=log, hint=INSTALL_HINT, cwd=work,
                    failure_hint=_failure_hint(step, choice.level))
        timings[f"{step}_s"] = round(time.monotonic() - started, 2)
    progress("TextureMesh", len(steps), len(steps), "done")

    found = sorted(work.glob("scene_textured.glb")) or sorted(work.glob("scene_textured*.glb"))
    if not found:
        raise ToolError(f"TextureMesh finished but wrote no GLB in {work}: check logs/openmvs.log")
    loaded = trimesh.load(found[0], force="mesh")
    # TextureMesh's GLB points at its texture as a PNG beside it; the published GLB carries it inside
    embedded = work / "scene_textured_embedded.glb"
    loaded.export(embedded, file_type="glb")
    colors = vertex_colours(loaded)
    mesh = Mesh(vertices=np.asarray(loaded.vertices, np.float64), faces=np.asarray(loaded.faces, np.int64),
                colors=colors.astype(np.uint8))
    dense_ply = paths.dense.with_suffix(".ply")
    return OpenMVSResult(mesh=mesh, glb=embedded, resolution=choice, timings=timings,
                         dense_points=ply_vertex_count(dense_ply) if dense_ply.is_file() else 0)
