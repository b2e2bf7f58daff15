"""Finding what MILo wrote: the trained splat and the extracted mesh."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from onyx_tools.errors import ToolError

MESH_NAME = "mesh_learnable_sdf.ply"
_ITERATION = re.compile(r"^iteration_(\d+)$")


@dataclass(frozen=True)
class MiloOutputs:
    point_cloud: Path
    iteration: int
    mesh: Path


def find_outputs(model: Path, iterations: int) -> MiloOutputs:
    """The splat of ``iterations`` (else the latest saved one, with its number) and the SDF mesh."""
    model = Path(model)
    saved = {}
    for folder in (model / "point_cloud").glob("iteration_*"):
        match = _ITERATION.match(folder.name)
        if match and (folder / "point_cloud.ply").is_file():
            saved[int(match.group(1))] = folder / "point_cloud.ply"
    if not saved:
        raise ToolError(f"MILo saved no point_cloud/iteration_*/point_cloud.ply in {model}: "
                        "training stopped early, see logs/milo.log")
    iteration = iterations if iterations in saved else max(saved)
    mesh = model / MESH_NAME
    if not mesh.is_file():
        others = sorted(p.name for p in model.glob("mesh*.ply"))
        raise ToolError(f"MILo wrote no {MESH_NAME} in {model} (found {others or 'no mesh'}): "
                        "mesh extraction failed, see logs/milo.log")
    return MiloOutputs(point_cloud=saved[iteration], iteration=iteration, mesh=mesh)


def ply_counts(path: Path) -> dict[str, int]:
    """Element counts from a PLY header (vertex, face): a mesh summary without loading it."""
    counts: dict[str, int] = {}
    with open(path, "rb") as handle:
        if handle.readline().strip() != b"ply":
            raise ToolError(f"{path} is not a PLY file")
        for raw in handle:
            parts = raw.decode("ascii", "replace").split()
            if parts[:1] == ["element"] and len(parts) == 3:
                counts[parts[1]] = int(parts[2])
            elif parts[:1] == ["end_header"]:
                break
    return counts
