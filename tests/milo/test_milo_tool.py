"""``python -m onyx_milo`` end to end under Dagster Pipes, with stand-ins for what cannot exist here:
a GPU (``onyx_tools.gpu.cuda_available`` patched in the tool process) and MILo (two scripts with MILo's CLI)."""

import sys
import textwrap
from pathlib import Path

import pytest

FAKE_TRAIN = textwrap.dedent('''
    """Stand-in for MILo's train.py: checks the dataset layout, prints Step lines, saves a splat."""
    import argparse, sys
    from pathlib import Path
    import numpy as np
    import pycolmap
    from onyx_tools.splat_ply import GaussianCloud, write_splat_ply
    p = argparse.ArgumentParser()
    p.add_argument("-s"); p.add_argument("-m"); p.add_argument("--imp_metric"); p.add_argument("--rasterizer")
    p.add_argument("--mesh_config"); p.add_argument("--iterations", type=int); p.add_argument("--dense_gaussians", action="store_true")
    a = p.parse_args()
    rec = pycolmap.Reconstruction(str(Path(a.s) / "sparse" / "0"))
    assert all(c.model.name == "PINHOLE" for c in rec.cameras.values()), "MILo reads PINHOLE only"
    assert all((Path(a.s) / "images" / i.name).is_file() for i in rec.images.values())
    for step in range(0, a.iterations + 1, a.iterations // 4):
        print(f"Step: {step}/{a.iterations} | loss 0.1", flush=True)
    n = 64; rng = np.random.default_rng(0)
    cloud = GaussianCloud(rng.normal(size=(n, 3)), rng.normal(size=(n, 3)), np.zeros((n, 15, 3)),
                          rng.normal(size=n), rng.normal(size=(n, 3)) - 4, rng.normal(size=(n, 4)))
    write_splat_ply(Path(a.m) / "point_cloud" / f"iteration_{a.iterations}" / "point_cloud.ply", cloud)
''')

FAKE_MESH = textwrap.dedent('''
    """Stand-in for MILo's mesh_extract_sdf.py."""
    import argparse
    from pathlib import Path
    import trimesh
    p = argparse.ArgumentParser(); p.add_argument("-s"); p.add_argument("-m"); p.add_argument("--rasterizer"); p.add_argument("--config")
    a = p.parse_args()
    trimesh.creation.icosphere(subdivisions=2).export(Path(a.m) / "mesh_learnable_sdf.ply")
''')

WITH_FAKE_GPU = ("import runpy, onyx_tools.gpu as gpu; gpu.cuda_available = lambda: True; "
                 "runpy.run_module('onyx_milo', run_name='__main__')")


@pytest.fixture
def synthetic_batch(tmp_path) -> Path:
    """A small synthetic COLMAP model (SIMPLE_RADIAL, as SfM writes) with rendered images."""
    import pycolmap

    options = pycolmap.SyntheticDatasetOptions()
    options.num_rigs, options.num_frames_per_rig, options.num_points3D = 1, 4, 60
    options.camera_width, options.camera_height = 160, 120
    options.camera_params = [200.0, 80.0, 60.0, 0.02]
    model = pycolmap.synthesize_dataset(options)
    batch = tmp_path / "batch"
    (batch / "images").mkdir(parents=True)
    pycolmap.synthesize_images(pycolmap.SyntheticImageOptions(), model, batch / "images")
    (batch / "sparse" / "0").mkdir(parents=True)
    model.write(batch / "sparse" / "0")
    return batch


def _materialize(batch: Path, extras: dict, command: list[str]):
    from dagster import AssetExecutionContext, PipesSubprocessClient, asset, materialize

    @asset
    def reconstruction(context: AssetExecutionContext, pipes: PipesSubprocessClient):
        return pipes.run(context=context, command=command,
                         extras={"batch_dir": str(batch), **extras}).get_materialize_result()

    return materialize([reconstruction], resources={"pipes": PipesSubprocessClient()}, raise_on_error=False)


def test_milo_tool_with_fake_gpu_and_fake_milo(synthetic_batch, tmp_path, capfd):
    home = tmp_path / "milo"
    home.mkdir()
    (home / "train.py").write_text(FAKE_TRAIN)
    (home / "mesh_extract_sdf.py").write_text(FAKE_MESH)
    result = _materialize(synthetic_batch, {"recipe": "gaussian-production", "scene": "indoor", "iterations": 400,
                                            "milo_home": str(home)}, [sys.executable, "-c", WITH_FAKE_GPU])
    assert result.success
    events = result.get_asset_materialization_events()
    assert len(events) == 1
    metadata = {k: getattr(v, "value", v) for k, v in events[0].materialization.metadata.items()}
    assert metadata["splat_path"] == "output/gaussian-production/point_cloud/iteration_400/point_cloud.ply"
    assert metadata["mesh_path"] == "output/gaussian-production/mesh_learnable_sdf.ply"
    assert metadata["gaussians"] == 64 and metadata["sh_degree"] == 3
    assert metadata["faces"] == 320 and metadata["iteration"] == 400
    assert (synthetic_batch / metadata["splat_path"]).is_file()
    log = (synthetic_batch / "logs" / "milo.log").read_text()
    assert "Step: 400/400" in log
    # progress goes through Pipes into Dagster's log (printed by the in-process instance)
    assert '"stage": "train", "done": 400, "total": 400' in capfd.readouterr().err
    assert "--dense_gaussians" in log


def test_milo_tool_without_gpu_fails_with_the_message(synthetic_batch, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    result = _materialize(synthetic_batch, {"recipe": "gaussian-production", "scene": "outdoor"},
                          [sys.executable, "-m", "onyx_milo"])
    assert not result.success
    log = (synthetic_batch / "logs" / "milo.log").read_text()
    assert "milo needs an NVIDIA GPU with CUDA and none is visible here: MILo's rasterizers are CUDA only; use recipe gaussian-proto on CPU-only hosts" in log
    assert not (synthetic_batch / "output").exists()
