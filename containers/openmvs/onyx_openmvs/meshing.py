"""Dense cloud -> watertight Poisson surface -> trimmed, coloured mesh (Open3D), exported with trimesh.

Open3D rather than ``pycolmap.poisson_meshing`` because it returns each vertex's
density: Poisson closes the surface everywhere, and the low-density parts are the
invented ones (sky, behind objects), so they are cut by a density quantile. Colours
come from the fused points through Poisson's own colour interpolation.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class MeshConfig:
    poisson_depth: int = 9
    density_quantile: float = 0.08   # drop vertices in the lowest 8 % of support
    crop_margin: float = 0.02        # and anything outside the cloud's box (+2 % of its size)
    outlier_neighbours: int = 16     # statistical outlier removal before meshing
    outlier_std: float = 2.5
    decimate: float = 1.0            # fraction of faces kept (quadric decimation); proto uses 0.2


@dataclass
class Mesh:
    vertices: np.ndarray  # (V, 3) float64
    faces: np.ndarray     # (F, 3) int64
    colors: np.ndarray    # (V, 3) uint8


def poisson_mesh(cloud_ply: Path, config: MeshConfig = MeshConfig()) -> tuple[Mesh, int]:
    """Mesh the fused cloud; returns the mesh and the number of dense points used."""
    import open3d as o3d

    cloud = o3d.io.read_point_cloud(str(cloud_ply))
    if len(cloud.points) == 0:
        raise ValueError("the dense cloud is empty")
    cloud, _ = cloud.remove_statistical_outlier(config.outlier_neighbours, config.outlier_std)
    if not cloud.has_normals():
        cloud.estimate_normals()
    mesh, densities = o3d.geometry.TriangleMesh.create_from_point_cloud_poisson(cloud, depth=config.poisson_depth)
    densities = np.asarray(densities)
    mesh.remove_vertices_by_mask(densities < np.quantile(densities, config.density_quantile))
    box = cloud.get_axis_aligned_bounding_box()
    margin = config.crop_margin * np.linalg.norm(box.get_extent())
    box = o3d.geometry.AxisAlignedBoundingBox(box.min_bound - margin, box.max_bound + margin)
    mesh = mesh.crop(box)
    mesh.remove_unreferenced_vertices()
    mesh.remove_degenerate_triangles()
    if config.decimate < 1.0:
        mesh = mesh.simplify_quadric_decimation(max(4, int(len(mesh.triangles) * config.decimate)))
        mesh.remove_unreferenced_vertices()
    colors = np.asarray(mesh.vertex_colors) if mesh.has_vertex_colors() else np.full((len(mesh.vertices), 3), 0.7)
    result = Mesh(vertices=np.asarray(mesh.vertices, dtype=np.float64),
                  faces=np.asarray(mesh.triangles, dtype=np.int64),
                  colors=np.clip(np.round(colors * 255), 0, 255).astype(np.uint8))
    return result, len(cloud.points)


def export_mesh(mesh: Mesh, glb_path: Path | None, ply_path: Path | None) -> None:
    """GLB (web viewers, Blender) and PLY (MeshLab, CloudCompare) of the same coloured mesh."""
    import trimesh

    rgba = np.concatenate([mesh.colors, np.full((len(mesh.colors), 1), 255, np.uint8)], axis=1)
    tm = trimesh.Trimesh(vertices=mesh.vertices, faces=mesh.faces, vertex_colors=rgba, process=False)
    if glb_path is not None:
        Path(glb_path).write_bytes(tm.export(file_type="glb"))
    if ply_path is not None:
        Path(ply_path).write_bytes(tm.export(file_type="ply"))
