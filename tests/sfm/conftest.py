"""Shared fixtures of the sfm tests: the real datasets (skipped with a reason where absent)."""

from __future__ import annotations

import onyx_tools.native_order  # noqa: F401,I001  (before any pycolmap import: see that module)

from pathlib import Path

import pytest

from components import require

DATASETS = Path(__file__).resolve().parents[2] / ".." / "shared" / "datasets"


@pytest.fixture(scope="session")
def datasets() -> Path:
    require("datasets", DATASETS.is_dir(),
            f"real test data not found at {DATASETS.resolve()} (../shared/datasets beside the repo)")
    return DATASETS


@pytest.fixture(scope="session")
def chair_images(datasets: Path) -> Path:
    folder = datasets / "chair_images"
    require("datasets", any(folder.glob("*.jpg")), f"{folder} holds no JPEGs")
    return folder
