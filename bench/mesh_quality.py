"""How well a photogrammetry mesh explains the photographs: rendered at each registered camera.

    .venv/bin/python -m bench.mesh_quality BATCH_DIR RECIPE [--scale 0.5]

Each registered image of the batch's sparse model is undistorted to a pinhole camera; the recipe's
``mesh.glb`` (its texture where it has one, else its vertex colours) is ray-cast from that camera
(Open3D's CPU ray casting, nearest hit, exact for the mesh) and compared with the photograph:

- coverage: the fraction of the photograph's pixels the mesh covers;
- PSNR: over the covered pixels (RGB, 8 bit).

The figures are means over the registered images; no GPU and no OpenGL are needed.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np


@dataclass
class MeshQuality:
    images: int
    coverage: float      # mean fraction of pixels covered by the mesh
    psnr_db: float       # mean PSNR over the covered pixels
    vertices: int
    faces: int


def _colour_lookup(mesh):
    """A function (face ids, barycentric u, v) -> RGB float for the mesh's texture or vertex colours."""
    faces = np.asarray(mesh.faces)
    visual = mesh.visual
    uv = getattr(visual, "uv", None)
    image = getattr(getattr(visual, "material", None), "baseColorTexture", None)
    if image is None:
        image = getattr(getattr(visual, "material", None), "image", None)
    if uv is not None and image is not None:
        texture = np.asarray(image.convert("RGB"), dtype=np.float32)
        h, w = texture.shape[:2]
        uv = np.asarray(uv, dtype=np.float64)

        def lookup(ids, bu, bv):
            corners = uv[faces[ids]]                     # (N, 3, 2)
            point = corners[:, 0] * (1 - bu - bv)[:, None] + corners[:, 1] * bu[:, None] + corners[:, 2] * bv[:, None]
            x = np.clip(point[:, 0] * w - 0.5, 0, w - 1)
            y = np.clip((1.0 - point[:, 1]) * h - 0.5, 0, h - 1)   # trimesh keeps v pointing up the image
            x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
            x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
            fx, fy = (x - x0)[:, None], (y - y0)[:, None]
            top = texture[y0, x0] * (1 - fx) + texture[y0, x1] * fx
            bottom = texture[y1, x0] * (1 - fx) + texture[y1, x1] * fx
            return top * (1 - fy) + bottom * fy
        return lookup
    colour_visual = visual.to_color() if hasattr(visual, "to_color") else visual
    colours = np.asarray(colour_visual.vertex_colors, dtype=np.float32)[:, :3]

    def lookup(ids, bu, bv):
        corners = colours[faces[ids]]
        return corners[:, 0] * (1 - bu - bv)[:, None] + corners[:, 1] * bu[:, None] + corners[:, 2] * bv[:, None]
    return lookup


def mesh_quality(batch: Path, recipe: str, scale: float = 0.5) -> MeshQuality:
    import cv2
    import open3d as o3d
    import pycolmap
    import trimesh

    batch = Path(batch)
    mesh = trimesh.load(batch / "output" / recipe / "mesh.glb", force="mesh")
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.core.Tensor(np.asarray(mesh.vertices, np.float32)),
                        o3d.core.Tensor(np.asarray(mesh.faces, np.uint32)))
    lookup = _colour_lookup(mesh)
    coverages, psnrs = [], []
    with tempfile.TemporaryDirectory() as tmp:
        pycolmap.undistort_images(tmp, str(batch / "sparse" / "0"), str(batch / "images"))
        model = pycolmap.Reconstruction(str(Path(tmp) / "sparse"))
        for image in model.images.values():
            if not image.has_pose:
                continue
            photo = cv2.imread(str(Path(tmp) / "images" / image.name), cv2.IMREAD_COLOR)
            camera = model.cameras[image.camera_id]
            w, h = max(1, round(camera.width * scale)), max(1, round(camera.height * scale))
            photo = cv2.cvtColor(cv2.resize(photo, (w, h), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)
            K = np.asarray(camera.calibration_matrix(), np.float64).copy()
            K[:2] *= [[w / camera.width], [h / camera.height]]
            pose = image.cam_from_world()
            R, t = np.asarray(pose.rotation.matrix()), np.asarray(pose.translation)
            u, v = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
            pixels = np.stack([u, v, np.ones_like(u)], axis=-1).reshape(-1, 3)
            directions = (pixels @ np.linalg.inv(K).T) @ R           # world directions: R^T K^-1 x
            origins = np.broadcast_to(-R.T @ t, directions.shape)
            rays = o3d.core.Tensor(np.concatenate([origins, directions], axis=1).astype(np.float32))
            hit = scene.cast_rays(rays)
            ids = hit["primitive_ids"].numpy().astype(np.int64)
            covered = ids != scene.INVALID_ID
            coverages.append(float(covered.mean()))
            if not covered.any():
                continue
            bary = hit["primitive_uvs"].numpy()[covered]
            rendered = lookup(ids[covered], bary[:, 0].astype(np.float64), bary[:, 1].astype(np.float64))
            error = np.mean((np.clip(rendered, 0, 255) - photo.reshape(-1, 3)[covered].astype(np.float32)) ** 2)
            psnrs.append(10 * math.log10(255.0 ** 2 / max(float(error), 1e-9)))
    return MeshQuality(images=len(coverages), coverage=float(np.mean(coverages)) if coverages else 0.0,
                       psnr_db=float(np.mean(psnrs)) if psnrs else 0.0,
                       vertices=len(mesh.vertices), faces=len(mesh.faces))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.mesh_quality", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("batch", type=Path)
    parser.add_argument("recipe")
    parser.add_argument("--scale", type=float, default=0.5, help="image scale the comparison runs at")
    args = parser.parse_args(argv)
    print(json.dumps(asdict(mesh_quality(args.batch, args.recipe, args.scale))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
