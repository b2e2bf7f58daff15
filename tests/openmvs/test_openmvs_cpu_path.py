"""photogrammetry-proto on the CPU path, on real photographs, through the real tool entrypoint."""


import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow


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
    print("photogrammetry-proto (cpu-sweep) metadata:", metadata)
    assert metadata["backend"] == "cpu-sweep"
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
    assert "recipe photogrammetry-proto, backend cpu-sweep" in log and "openmvs finished" in log


@pytest.fixture(scope="module")
def castle_forward(datasets, tmp_path_factory):
    """Five castle-P30 photographs where the camera walks mostly forwards (its baseline 40-50 degrees off
    the optical axis: rectified two-view stereo degenerates there), undistorted, with their sparse model."""
    import pycolmap

    from onyx_openmvs.views import load_sparse_scene

    source = datasets / "strecha_castle_p30" / "images"
    if not source.is_dir():
        pytest.skip(f"{source} is missing")
    root = tmp_path_factory.mktemp("castle")
    images = root / "images"
    images.mkdir()
    for number in range(13, 18):
        shutil.copyfile(source / f"{number:04d}.jpg", images / f"{number:04d}.jpg")
    pycolmap.extract_features(root / "sfm.db", images, camera_mode=pycolmap.CameraMode.SINGLE)
    pycolmap.match_exhaustive(root / "sfm.db")
    models = pycolmap.incremental_mapping(root / "sfm.db", images, root / "sfm")
    model = max(models.values(), key=lambda rec: rec.num_reg_images())
    assert model.num_reg_images() == 5
    (root / "sparse").mkdir()
    model.write(root / "sparse")
    workspace = root / "undistorted"
    pycolmap.undistort_images(str(workspace), str(root / "sparse"), str(images),
                              undistort_options=pycolmap.UndistortCameraOptions(max_image_size=512))
    return workspace, load_sparse_scene(workspace / "sparse")


def test_forward_motion_gets_depth_that_matches_the_sparse_points(castle_forward):
    """Every view gets a depth map from the plane sweep, and where a sparse point projects, the depth there
    is the point's depth (the old rectified SGBM gave these views none, or asked OpenCV for a negative size)."""
    import cv2

    from onyx_openmvs.stereo import SweepConfig, choose_neighbours, sweep_depth

    workspace, scene = castle_forward
    config = SweepConfig()
    for ref in scene.views:
        neighbours = [scene.views[j] for j in choose_neighbours(scene, ref, config)]
        assert neighbours, f"{ref.name} found no neighbour"
        baseline = ref.R @ (neighbours[0].center - ref.center)
        read = lambda view: cv2.imread(str(workspace / "images" / view.name), cv2.IMREAD_GRAYSCALE)  # noqa: E731
        depth, _ = sweep_depth(ref, neighbours, read(ref), [read(v) for v in neighbours], scene.points_of(ref), config)
        cam = scene.points_of(ref) @ ref.R.T + ref.t
        u = np.round(cam[:, 0] / cam[:, 2] * ref.K[0, 0] + ref.K[0, 2]).astype(int)
        v = np.round(cam[:, 1] / cam[:, 2] * ref.K[1, 1] + ref.K[1, 2]).astype(int)
        inside = (cam[:, 2] > 0) & (u >= 0) & (u < ref.width) & (v >= 0) & (v < ref.height)
        at_points = depth[v[inside], u[inside]]
        known = at_points > 0
        error = np.abs(at_points[known] - cam[inside, 2][known]) / cam[inside, 2][known]
        print(f"{ref.name}: baseline {np.degrees(np.arccos(abs(baseline[2]) / np.linalg.norm(baseline))):.0f} deg "
              f"off the axis, depth for {(depth > 0).mean():.0%} of pixels, {known.mean():.0%} of sparse points, "
              f"median error {np.median(error):.2%}")
        assert (depth > 0).mean() > 0.3
        assert known.mean() > 0.3 and np.median(error) < 0.02
