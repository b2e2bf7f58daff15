"""Fixtures for the gsplat tool: a real batch folder (chair photographs + a COLMAP model made here)."""

import shutil
import sys
from pathlib import Path

import pytest
import torch
from dagster import AssetExecutionContext, DagsterInstance, PipesSubprocessClient, asset, materialize

# Two cores shared by several people: one thread each. Measured here under that load, two
# threads made the CPU rasterizer about 8x slower (OpenMP threads waiting on each other).
THREADS = "1"
torch.set_num_threads(int(THREADS))


def _sfm(images: Path, work: Path, sparse: Path) -> None:
    """pycolmap SfM as the sfm step does it for a small set: SIFT, exhaustive matching, incremental mapping."""
    import pycolmap

    database = work / "database.db"
    pycolmap.extract_features(database, images, camera_mode=pycolmap.CameraMode.SINGLE,
                              extraction_options=pycolmap.FeatureExtractionOptions(num_threads=2))
    pycolmap.match_exhaustive(database, matching_options=pycolmap.FeatureMatchingOptions(num_threads=2))
    models = pycolmap.incremental_mapping(database, images, work / "models",
                                          options=pycolmap.IncrementalPipelineOptions(num_threads=2))
    assert models, "SfM on chair_images found no model"
    best = max(models.values(), key=lambda m: m.num_reg_images())
    sparse.mkdir(parents=True)
    best.write(sparse)


@pytest.fixture(scope="session")
def chair_batch_template(datasets, tmp_path_factory) -> Path:
    """A batch folder with images/ (the 21 chair photographs) and sparse/0 from SfM; made once, never modified."""
    root = tmp_path_factory.mktemp("chair") / "batch"
    (root / "images").mkdir(parents=True)
    for image in sorted((datasets / "chair_images").glob("*.jpg")):
        shutil.copy(image, root / "images" / image.name)
    work = root.parent / "sfm-work"
    work.mkdir()
    _sfm(root / "images", work, root / "sparse" / "0")
    return root


@pytest.fixture
def chair_batch(chair_batch_template, tmp_path) -> Path:
    """A private copy of the chair batch folder that a test may change."""
    root = tmp_path / "batch"
    shutil.copytree(chair_batch_template, root)
    return root


def run_gsplat_tool(extras: dict):
    """Run ``python -m onyx_gsplat`` through Dagster Pipes as the reconstruction asset does.

    Returns (success, metadata as plain values, data_version, error text).
    """
    @asset(name="gsplat_reconstruction")
    def _reconstruction(context: AssetExecutionContext, pipes: PipesSubprocessClient):
        return pipes.run(context=context, command=[sys.executable, "-m", "onyx_gsplat"],
                         extras=extras).get_materialize_result()

    env = {"OMP_NUM_THREADS": THREADS, "MKL_NUM_THREADS": THREADS}  # merged into os.environ by the client
    instance = DagsterInstance.ephemeral()
    result = materialize([_reconstruction], resources={"pipes": PipesSubprocessClient(env=env)},
                         instance=instance, raise_on_error=False)
    if not result.success:
        # The tool's ToolError reaches Dagster as its own error log line and as the Pipes
        # "closed with exception" engine event; gather every message of the run.
        texts = []
        for record in instance.all_logs(result.run_id):
            texts.append(record.user_message or "")
            error = getattr(getattr(record.dagster_event, "event_specific_data", None), "error", None)
            if error is not None:
                texts.append(error.message)
        return False, {}, None, "\n".join(texts)
    (event,) = result.asset_materializations_for_node("gsplat_reconstruction")
    metadata = {key: getattr(value, "value", value) for key, value in event.metadata.items()}
    version = event.tags.get("dagster/data_version")
    return True, metadata, version, ""


@pytest.fixture
def gsplat_tool():
    """``gsplat_tool(extras) -> (success, metadata, data_version, error text)``; see ``run_gsplat_tool``."""
    return run_gsplat_tool
