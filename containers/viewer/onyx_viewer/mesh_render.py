"""Pictures of a textured (or vertex-coloured) mesh from any camera, on the CPU.

One ray per pixel through Open3D's ``RaycastingScene`` (Embree): the nearest triangle and
the barycentric coordinates of the hit give the colour, from the texture at the
interpolated UV or from the interpolated vertex colours. Unlit: photogrammetry colours
already hold the scene's light. No OpenGL context is needed, so it runs in any container.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from onyx_tools.errors import ToolError

from .splat_render import RenderFrame

BACKGROUND = (24, 24, 24)  # what rays that hit nothing show: the page's background


@dataclass
class Mesh:
    vertices: np.ndarray               # (V, 3) float64
    faces: np.ndarray                  # (F, 3) int64
    vertex_colors: np.ndarray | None   # (V, 3) float32 in [0, 255], when the mesh is vertex-coloured
    uv: np.ndarray | None              # (V, 2) OpenGL convention (v up), when textured
    texture: np.ndarray | None         # (H, W, 3) uint8 RGB


def load_mesh(path: Path) -> Mesh:
    """A reconstruction's mesh (GLB, PLY or OBJ), checked: a ToolError says what is wrong with it."""
    import trimesh

    path = Path(path)
    if not path.is_file():
        raise ToolError(f"mesh {path} does not exist: materialise reconstruction for this recipe first")
    try:
        loaded = trimesh.load(str(path), force="mesh", process=False)
    except Exception as error:  # trimesh raises many kinds for a damaged file
        raise ToolError(f"mesh {path} cannot be read ({type(error).__name__}: {error}): "
                        "materialise reconstruction again") from None
    faces = np.asarray(getattr(loaded, "faces", np.zeros((0, 3))), dtype=np.int64).reshape(-1, 3)
    vertices = np.asarray(getattr(loaded, "vertices", np.zeros((0, 3))), dtype=np.float64).reshape(-1, 3)
    if len(faces) == 0:
        raise ToolError(f"mesh {path} has no faces ({len(vertices)} vertices): the reconstruction produced no "
                        "surface; check its log and materialise reconstruction again")
    if not np.isfinite(vertices).all():
        raise ToolError(f"mesh {path} has NaN or infinite vertex coordinates: materialise reconstruction again")
    visual = loaded.visual
    colors = uv = texture = None
    if getattr(visual, "kind", None) == "texture" and getattr(visual, "uv", None) is not None:
        image = _material_image(visual.material)
        if image is not None:
            uv, texture = np.asarray(visual.uv, dtype=np.float64), image
    if texture is None:
        color_visual = visual.to_color() if hasattr(visual, "to_color") else visual
        colors = np.asarray(getattr(color_visual, "vertex_colors", []), dtype=np.float32).reshape(-1, 4)[:, :3]
        if len(colors) != len(vertices):  # no colours at all: a light grey surface
            colors = np.full((len(vertices), 3), 180.0, np.float32)
    return Mesh(vertices=vertices, faces=faces, vertex_colors=colors, uv=uv, texture=texture)


def _material_image(material) -> np.ndarray | None:
    image = getattr(material, "baseColorTexture", None) or getattr(material, "image", None)
    if image is None:
        return None
    return np.asarray(image.convert("RGB"), dtype=np.uint8)


def mesh_renderer(mesh: Mesh) -> RenderFrame:
    """A render function (viewmat, K, width, height) -> RGB uint8 for ``mesh``."""
    import cv2
    import open3d as o3d

    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.core.Tensor(mesh.vertices.astype(np.float32)),
                        o3d.core.Tensor(mesh.faces.astype(np.uint32)))

    def render(viewmat: np.ndarray, K: np.ndarray, width: int, height: int) -> np.ndarray:
        R, t = viewmat[:3, :3], viewmat[:3, 3]
        xs, ys = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
        pixels = np.stack([xs, ys, np.ones_like(xs)], axis=-1).reshape(-1, 3)
        directions = (pixels @ np.linalg.inv(K).T) @ R  # camera rays turned into the world (R^T d)
        origins = np.broadcast_to(-R.T @ t, directions.shape)
        rays = np.concatenate([origins, directions], axis=1).astype(np.float32)
        hit = scene.cast_rays(o3d.core.Tensor(rays))
        face = hit["primitive_ids"].numpy().astype(np.int64)
        bary = hit["primitive_uvs"].numpy().astype(np.float64)
        found = face != o3d.t.geometry.RaycastingScene.INVALID_ID
        image = np.empty((len(face), 3), np.float32)
        image[:] = BACKGROUND
        corners = mesh.faces[face[found]]
        weights = np.stack([1.0 - bary[found, 0] - bary[found, 1], bary[found, 0], bary[found, 1]], axis=1)
        if mesh.texture is not None:
            uv = np.einsum("nk,nkd->nd", weights, mesh.uv[corners])
            tex_h, tex_w = mesh.texture.shape[:2]
            map_x = (uv[:, 0] * tex_w - 0.5).astype(np.float32).reshape(-1, 1)
            map_y = ((1.0 - uv[:, 1]) * tex_h - 0.5).astype(np.float32).reshape(-1, 1)
            sampled = cv2.remap(mesh.texture, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP)
            image[found] = sampled.reshape(-1, 3)
        else:
            image[found] = np.einsum("nk,nkd->nd", weights, mesh.vertex_colors[corners])
        return np.clip(image + 0.5, 0, 255).astype(np.uint8).reshape(height, width, 3)

    return render
