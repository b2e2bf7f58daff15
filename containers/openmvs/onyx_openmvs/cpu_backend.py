"""The photogrammetry path without OpenMVS (no CUDA, no binaries): plane-sweep depth -> COLMAP fusion -> Poisson.

Chosen over a TSDF: COLMAP's fusion checks every depth against the other views
(reprojection, depth and normal agreement), which removes most mismatches before
meshing; a TSDF would average them into the surface.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2

from onyx_tools.errors import ToolError

from .fusion import FusionConfig, fuse, write_maps
from .meshing import Mesh, MeshConfig, poisson_mesh
from .stereo import SweepConfig, choose_neighbours, normals_from_depth, sweep_depth
from .views import SparseScene

Progress = Callable[[str, int, int, str], None]


@dataclass(frozen=True)
class CPUConfig:
    sweep: SweepConfig = field(default_factory=SweepConfig)
    fusion: FusionConfig = field(default_factory=FusionConfig)
    mesh: MeshConfig = field(default_factory=MeshConfig)


@dataclass
class CPUResult:
    mesh: Mesh
    dense_points: int
    depth_maps: int
    timings: dict[str, float]


def depth_maps(workspace: Path, scene: SparseScene, config: SweepConfig, progress: Progress,
               log: logging.Logger) -> list[str]:
    """Estimate and write a depth + normal map for every view that has usable neighbours."""
    cache: dict[str, object] = {}

    def image(name: str):
        if name not in cache:
            if len(cache) > 12:     # views are visited in order; neighbours are near
                cache.pop(next(iter(cache)))
            cache[name] = cv2.imread(str(workspace / "images" / name), cv2.IMREAD_GRAYSCALE)
        return cache[name]

    written = []
    for number, ref in enumerate(scene.views, start=1):
        neighbours = [scene.views[j] for j in choose_neighbours(scene, ref, config)]
        if not neighbours:
            log.warning("no view shares enough points with %s at a useful angle; it gets no depth map", ref.name)
            progress("depth maps", number, len(scene.views), ref.name)
            continue
        try:
            depth, _ncc = sweep_depth(ref, neighbours, image(ref.name), [image(v.name) for v in neighbours],
                                      scene.points_of(ref), config)
        except cv2.error as error:
            # OpenCV checks its arguments: the same views fail the same way on a retry
            raise ToolError(f"depth of {ref.name} failed in OpenCV ({' '.join(str(error).split())[:200]}); "
                            "rerun with backend 'openmvs' in the onyx-openmvs image") from None
        known = float((depth > 0).mean())
        if known < 0.01:
            log.warning("%s: the sweep kept depth for %.1f %% of the pixels; it gets no depth map",
                        ref.name, 100 * known)
        else:
            write_maps(workspace, ref.name, depth, normals_from_depth(depth, ref.K))
            written.append(ref.name)
            log.info("%s: depth for %.0f %% of the pixels from %s", ref.name, 100 * known,
                     ", ".join(v.name for v in neighbours))
        progress("depth maps", number, len(scene.views), ref.name)
    return written


def reconstruct_cpu(workspace: Path, scene: SparseScene, work: Path, config: CPUConfig,
                    progress: Progress, log: logging.Logger) -> CPUResult:
    timings: dict[str, float] = {}
    started = time.monotonic()
    names = depth_maps(workspace, scene, config.sweep, progress, log)
    timings["depth_maps_s"] = round(time.monotonic() - started, 2)
    if len(names) < config.fusion.min_num_pixels:
        raise ToolError(f"only {len(names)} views got a depth map: the sparse model needs more overlapping "
                        "views (a slower walk or a shorter frame interval)")

    progress("fusion", 0, 1, f"{len(names)} depth maps")
    started = time.monotonic()
    fused = fuse(workspace, names, work / "fused.ply", config.fusion)
    timings["fusion_s"] = round(time.monotonic() - started, 2)

    progress("meshing", 0, 1, f"Poisson depth {config.mesh.poisson_depth}")
    started = time.monotonic()
    try:
        mesh, dense_points = poisson_mesh(fused, config.mesh)
    except ValueError as error:
        raise ToolError(f"fusion produced no dense points ({error}): the depth maps do not agree between "
                        "views; check the sparse model's reprojection error") from None
    timings["meshing_s"] = round(time.monotonic() - started, 2)
    if len(mesh.faces) == 0:
        raise ToolError("Poisson meshing produced no faces: too few dense points survived fusion")
    return CPUResult(mesh=mesh, dense_points=dense_points, depth_maps=len(names), timings=timings)
