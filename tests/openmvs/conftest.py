"""A real batch for the photogrammetry tests: the chair photographs and their COLMAP model."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from components import require


@pytest.fixture(scope="module")
def chair_batch(datasets, tmp_path_factory) -> Path:
    """images/ + sparse/0 of ../shared/datasets/chair_images, from pycolmap SfM (exhaustive, ~6-8 s)."""
    import pycolmap

    source = datasets / "chair_images"
    require("datasets", source.is_dir(), f"{source} is missing")
    root = tmp_path_factory.mktemp("chair") / "batch"
    images = root / "images"
    images.mkdir(parents=True)
    for path in sorted(source.glob("*.jpg")):
        shutil.copyfile(path, images / path.name)
    database = root / ".work" / "sfm.db"
    database.parent.mkdir()
    pycolmap.extract_features(database, images, camera_mode=pycolmap.CameraMode.SINGLE)
    pycolmap.match_exhaustive(database)
    models = pycolmap.incremental_mapping(database, images, root / ".work" / "sfm")
    model = max(models.values(), key=lambda rec: rec.num_reg_images())
    assert model.num_reg_images() >= 18
    (root / "sparse" / "0").mkdir(parents=True)
    model.write(root / "sparse" / "0")
    shutil.rmtree(root / ".work")
    return root
