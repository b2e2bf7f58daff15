"""Fixtures shared by every test: real data from ../shared, real Dagster instances."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATASETS = (REPO / ".." / "shared" / "datasets").resolve()

# Tests never reach a model hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def datasets() -> Path:
    """../shared/datasets (real photographs and videos); tests that need it skip without it."""
    if not DATASETS.is_dir():
        pytest.skip(f"real test data not found at {DATASETS} (the ../shared checkout beside the repo)")
    return DATASETS


@pytest.fixture
def dagster_instance(tmp_path):
    """A real, persistent (SQLite) Dagster instance in a temporary DAGSTER_HOME."""
    from dagster import instance_for_test

    home = tmp_path / "dagster-home"
    home.mkdir()
    with instance_for_test(temp_dir=str(home)) as instance:
        yield instance


@pytest.fixture
def data_root(tmp_path) -> Path:
    root = tmp_path / "onyx-data"
    root.mkdir()
    return root
