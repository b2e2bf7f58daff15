"""photogrammetry-proto on the CPU path, on real photographs, through the real tool entrypoint."""


import sys
import time
from pathlib import Path

import numpy as np
import pytest


def _materialize(batch: Path, extras: dict) -> dict:
    """Run ``python -m onyx_openmvs`` as Dagster runs it (PipesSubprocessClient) and return its metadata."""
    from dagster import AssetExecutionContext, PipesSubprocessClient, asset, materialize

    @asset
    def reconstruction(context: AssetExecutionContext, pipes: PipesSubprocessClient):
        return pipes.run(context=context, command=[sys.executable, "-m", "onyx_openmvs"],
                         extras={"batch_dir": str(batch), **extras}).get_materialize_result()

    result = materialize([reconstruction], resources={"pipes": PipesSubprocessClient()})
    assert result.success
    events = result.get_asset_materialization_events()
    assert len(events) == 1, "the tool reports exactly one materialization"
    materialization = events[0].materialization
    metadata = {key: getattr(value, "value", value) for key, value in materialization.metadata.items()}
    metadata["__data_version__"] = materialization.tags.get("dagster/data_version")
    return metadata


@pytest.fixture(scope="module")
def proto_run(chair_batch):
    started = time.monotonic()
    metadata = _materialize(chair_batch, {"recipe": "photogrammetry-proto", "scene": "indoor", "backend": "cpu"})
    metadata["__wall_s__"] = time.monotonic() - started
    return chair_batch, metadata


def test_cpu_path_mesh_lies_on_the_sparse_points(proto_run):
    import open3d as o3d
    import pycolmap
    import trimesh

    batch, metadata = proto_run
    print("photogrammetry-proto (cpu-sgbm) metadata:", metadata)
    assert metadata["backend"] == "cpu-sgbm"
    assert metadata["mesh_path"] == "output/photogrammetry-proto/mesh.glb"
    assert metadata["mesh_ply_path"] == "output/photogrammetry-proto/mesh.ply"
    assert metadata["faces"] > 1000 and metadata["dense_points"] > 10_000
    assert metadata["__data_version__"]

    glb = trimesh.load(batch / metadata["mesh_path"], force="mesh")
    ply = trimesh.load(batch / metadata["mesh_ply_path"])
    assert len(glb.faces) == len(ply.faces) == metadata["faces"]
    assert len(ply.vertices) == metadata["vertices"]
    assert ply.visual.vertex_colors[:, :3].std() > 5, "vertex colours come from the photographs"

    model = pycolmap.Reconstruction(str(batch / "sparse" / "0"))
    sparse = np.array([p.xyz for p in model.points3D.values()])
    lo, hi = np.percentile(sparse, [2, 98], axis=0)
    scene_size = float(np.linalg.norm(hi - lo))
    raycast = o3d.t.geometry.RaycastingScene()
    raycast.add_triangles(o3d.core.Tensor(ply.vertices.astype(np.float32)),
                          o3d.core.Tensor(ply.faces.astype(np.uint32)))
    distance = raycast.compute_distance(o3d.core.Tensor(sparse.astype(np.float32))).numpy()
    median = float(np.median(distance)) / scene_size
    print(f"sparse->mesh distance: median {median:.4%}, p75 {np.percentile(distance, 75) / scene_size:.4%} "
          f"of scene size {scene_size:.2f}")
    assert median < 0.02


def test_cpu_path_outputs_and_scratch(proto_run):
    import cv2

    batch, metadata = proto_run
    preview = cv2.imread(str(batch / metadata["preview_path"]))
    assert preview is not None and preview.shape[1] == 640
    assert (preview.reshape(-1, 3) != 32).any(axis=1).mean() > 0.2, "the preview shows the mesh"
    assert set(metadata["timings"]) >= {"undistort_s", "depth_maps_s", "fusion_s", "meshing_s"}
    assert not list((batch / "output").glob(".tmp-*")), "publication leaves no temporaries"
    assert not (batch / ".work" / "openmvs-photogrammetry-proto").exists()
    log = (batch / "logs" / "openmvs.log").read_text()
    assert "recipe photogrammetry-proto, backend cpu-sgbm" in log and "openmvs finished" in log
