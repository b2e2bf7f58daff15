"""OpenMVS 2.3 command lines, as pure functions (tested without the binaries).

Assumed CLI (OpenMVS 2.3.0, ``--help`` of each binary):
  InterfaceCOLMAP -i <dense workspace> -o scene.mvs --image-folder <workspace>/images
  DensifyPointCloud scene.mvs -o scene_dense.mvs --resolution-level L --max-resolution M
  ReconstructMesh scene_dense.mvs -o scene_mesh.mvs [--decimate 0.2]       (writes scene_mesh.ply)
  RefineMesh scene_dense.mvs -m scene_mesh.ply -o scene_refined.mvs        (writes scene_refined.ply)
  TextureMesh scene_dense.mvs -m <mesh>.ply -o scene_textured.mvs --export-type glb  (writes scene_textured.glb)
ReconstructMesh and RefineMesh write only the mesh (.ply) when their input is the scene DensifyPointCloud wrote
(OpenMVS saves a .mvs beside it only for other archive types), so the later steps read the dense scene and the
mesh file.
Every binary also takes ``-w <working folder>`` and ``--max-threads N`` (0 = all cores).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

BINARIES = ("InterfaceCOLMAP", "DensifyPointCloud", "ReconstructMesh", "RefineMesh", "TextureMesh")


@dataclass(frozen=True)
class OpenMVSSettings:
    resolution_level: int = 1       # DensifyPointCloud; usually replaced by the memory-based choice
    max_resolution: int = 3200      # OpenMVS's default cap on the longer image side
    decimate: float = 1.0           # ReconstructMesh --decimate; proto uses 0.2 as Onyx 1.0 did
    refine: bool = False            # RefineMesh (production)
    refine_resolution_level: int = 2
    texture_resolution_level: int = 0
    max_threads: int = 0


@dataclass(frozen=True)
class ScenePaths:
    """Every file of one OpenMVS run, inside its working folder."""
    work: Path

    @property
    def scene(self) -> Path:
        return self.work / "scene.mvs"

    @property
    def dense(self) -> Path:
        return self.work / "scene_dense.mvs"

    @property
    def mesh(self) -> Path:
        return self.work / "scene_mesh.mvs"

    @property
    def mesh_ply(self) -> Path:
        return self.work / "scene_mesh.ply"

    @property
    def refined(self) -> Path:
        return self.work / "scene_refined.mvs"

    @property
    def refined_ply(self) -> Path:
        return self.work / "scene_refined.ply"

    @property
    def textured(self) -> Path:
        return self.work / "scene_textured.mvs"

    @property
    def textured_glb(self) -> Path:
        return self.work / "scene_textured.glb"


def _common(paths: ScenePaths, settings: OpenMVSSettings) -> list[str]:
    return ["-w", str(paths.work), "--max-threads", str(settings.max_threads)]


def interface_colmap(workspace: Path, paths: ScenePaths, settings: OpenMVSSettings) -> list[str]:
    return ["InterfaceCOLMAP", "-i", str(workspace), "-o", str(paths.scene),
            "--image-folder", str(Path(workspace) / "images"), *_common(paths, settings)]


def densify(paths: ScenePaths, settings: OpenMVSSettings) -> list[str]:
    return ["DensifyPointCloud", str(paths.scene), "-o", str(paths.dense),
            "--resolution-level", str(settings.resolution_level),
            "--max-resolution", str(settings.max_resolution), *_common(paths, settings)]


def reconstruct(paths: ScenePaths, settings: OpenMVSSettings) -> list[str]:
    command = ["ReconstructMesh", str(paths.dense), "-o", str(paths.mesh)]
    if settings.decimate < 1.0:
        command += ["--decimate", f"{settings.decimate:g}"]
    return command + _common(paths, settings)


def refine(paths: ScenePaths, settings: OpenMVSSettings) -> list[str]:
    return ["RefineMesh", str(paths.dense), "-m", str(paths.mesh_ply), "-o", str(paths.refined),
            "--resolution-level", str(settings.refine_resolution_level), *_common(paths, settings)]


def texture(paths: ScenePaths, settings: OpenMVSSettings) -> list[str]:
    mesh = paths.refined_ply if settings.refine else paths.mesh_ply
    return ["TextureMesh", str(paths.dense), "-m", str(mesh), "-o", str(paths.textured),
            "--export-type", "glb", "--resolution-level", str(settings.texture_resolution_level),
            *_common(paths, settings)]


def pipeline(workspace: Path, paths: ScenePaths, settings: OpenMVSSettings) -> list[tuple[str, list[str]]]:
    """(substep, command) in order; RefineMesh only when ``settings.refine``."""
    steps = [("InterfaceCOLMAP", interface_colmap(workspace, paths, settings)),
             ("DensifyPointCloud", densify(paths, settings)),
             ("ReconstructMesh", reconstruct(paths, settings))]
    if settings.refine:
        steps.append(("RefineMesh", refine(paths, settings)))
    steps.append(("TextureMesh", texture(paths, settings)))
    return steps
