"""The mesh's web page: Google's ``<model-viewer>`` (three.js inside its UMD build, pinned in npm)
and the mesh as an upright, unlit GLB, both inlined into one file that opens from disk.

glTF is y-up, so the GLB carries the viewer rotation itself. Its materials are marked
``KHR_materials_unlit``: photogrammetry colours already hold the scene's light, and a lit
default material (metallic 1 when unset) would show them darkened. The page opens at the
first captured camera: model-viewer's orbit (azimuth, polar angle, distance) around a point
straight ahead of it.
"""

from __future__ import annotations

import base64
import html
import json
import struct
from pathlib import Path

import numpy as np

from onyx_tools.errors import ToolError

from .node import package_file

PAGE_FILE = "viewer.html"
MODEL_VIEWER = "@google/model-viewer/dist/model-viewer-umd.min.js"
GLB_MAGIC, JSON_CHUNK, BIN_CHUNK = 0x46546C67, 0x4E4F534A, 0x004E4942
UNLIT = "KHR_materials_unlit"

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
html, body {{ height: 100%; margin: 0; background: #181818; overflow: hidden; }}
model-viewer {{ width: 100%; height: 100%; --poster-color: transparent; }}
</style>
<script>
{model_viewer}
</script>
</head>
<body>
<model-viewer id="scene" alt="{title}" camera-controls interaction-prompt="none" disable-tap
  camera-target="{target}" camera-orbit="{orbit}" field-of-view="{fov}" min-field-of-view="10deg"
  max-field-of-view="{max_fov}" min-camera-orbit="auto auto 0m" max-camera-orbit="auto auto {max_radius}"
  shadow-intensity="0" tone-mapping="none"></model-viewer>
<script type="application/json" id="onyx-mesh">{glb_json}</script>
<script>
// The mesh travels inside the page (a file:// page cannot fetch its neighbours): decode it to a blob URL.
const encoded = JSON.parse(document.getElementById("onyx-mesh").textContent);
const bytes = Uint8Array.from(atob(encoded), (c) => c.charCodeAt(0));
document.getElementById("scene").src = URL.createObjectURL(new Blob([bytes], {{type: "model/gltf-binary"}}));
</script>
</body>
</html>
"""


def unlit_glb(glb: bytes) -> bytes:
    """``glb`` with every material marked KHR_materials_unlit (chunks otherwise unchanged)."""
    magic, version, _ = struct.unpack_from("<III", glb, 0)
    if magic != GLB_MAGIC or version != 2:
        raise ToolError("the mesh export is not a glTF 2.0 binary (GLB)")
    length, kind = struct.unpack_from("<II", glb, 12)
    if kind != JSON_CHUNK:
        raise ToolError("the GLB's first chunk is not its JSON")
    document = json.loads(glb[20:20 + length])
    rest = glb[20 + length:]
    materials = document.setdefault("materials", [])
    if not materials:
        materials.append({})
        for mesh in document.get("meshes", []):
            for primitive in mesh.get("primitives", []):
                primitive.setdefault("material", 0)
    for material in materials:
        material.setdefault("extensions", {})[UNLIT] = {}
    document["extensionsUsed"] = sorted(set(document.get("extensionsUsed", [])) | {UNLIT})
    text = json.dumps(document, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 4)  # chunks are 4-byte aligned; JSON pads with spaces
    body = struct.pack("<II", len(text), JSON_CHUNK) + text + rest
    return struct.pack("<III", GLB_MAGIC, 2, 12 + len(body)) + body


def srgb_to_linear(colors: np.ndarray) -> np.ndarray:
    """8-bit sRGB -> 8-bit linear (glTF's vertex colours are linear; textures say sRGB themselves)."""
    c = colors.astype(np.float64) / 255.0
    linear = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    return np.clip(np.round(linear * 255.0), 0, 255).astype(np.uint8)


def upright_glb(mesh_path: Path, rotation: np.ndarray) -> bytes:
    """The reconstruction's mesh turned by ``rotation`` (reconstruction -> viewer, y up), unlit, as GLB.

    Vertex colours are photographs' (sRGB) values; glTF reads them as linear, so they are converted
    and the page shows the colours the photographs had."""
    import trimesh

    scene = trimesh.load(str(mesh_path), force="scene", process=False)
    transform = np.eye(4)
    transform[:3, :3] = rotation
    scene.apply_transform(transform)
    for geometry in scene.geometry.values():
        visual = getattr(geometry, "visual", None)
        if getattr(visual, "kind", None) == "vertex":
            colors = np.asarray(visual.vertex_colors).copy()
            colors[:, :3] = srgb_to_linear(colors[:, :3])
            visual.vertex_colors = colors
    return unlit_glb(scene.export(file_type="glb"))


def orbit(position: np.ndarray, target: np.ndarray) -> str:
    """model-viewer's camera-orbit: azimuth about +y from +z, polar angle from +y, distance."""
    offset = np.asarray(position, float) - np.asarray(target, float)
    radius = float(np.linalg.norm(offset))
    theta = float(np.arctan2(offset[0], offset[2]))
    phi = float(np.arccos(np.clip(offset[1] / max(radius, 1e-12), -1.0, 1.0)))
    return f"{theta:.6f}rad {phi:.6f}rad {radius:.6f}m"


def mesh_page(glb: bytes, position: np.ndarray, target: np.ndarray, fov_deg: float, extent: float, title: str) -> str:
    source = package_file(MODEL_VIEWER).read_text(encoding="utf-8")
    if "</script" in source.lower() or "<script" in source.lower():
        raise ToolError(f"{MODEL_VIEWER} contains markup that cannot be inlined: is it the pinned version?")
    encoded = json.dumps(base64.b64encode(glb).decode("ascii"))
    return PAGE.format(
        title=html.escape(title), model_viewer=source, glb_json=encoded,
        target=" ".join(f"{value:.6f}m" for value in target), orbit=orbit(position, target),
        fov=f"{fov_deg:.3f}deg", max_fov=f"{max(fov_deg, 45.0):.3f}deg", max_radius=f"{max(extent, 1e-3) * 4:.3f}m")
