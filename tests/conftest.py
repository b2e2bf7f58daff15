"""Fixtures shared by every test: real data from ../shared, real Dagster instances."""

from __future__ import annotations

import onyx_tools.native_order  # noqa: F401,I001  (before any pycolmap import: see that module)

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


@pytest.fixture
def materialize_partition(dagster_instance, data_root):
    """Materialise assets of the real code location for one partition, in this process,
    against the test's instance and data root (the local runner: tools as subprocesses)."""
    from dagster import materialize

    from onyx_dagster import definitions
    from onyx_dagster.resources import BatchStorage, LocalRunner

    assets = list(definitions.defs.assets)
    resources = {"storage": BatchStorage(data_root=str(data_root)), "runner": LocalRunner()}

    def run(selection: list[str], partition_key, run_config=None, raise_on_error=True):
        return materialize(assets, selection=selection, partition_key=partition_key, instance=dagster_instance,
                           resources=resources, run_config=run_config or {}, raise_on_error=raise_on_error,
                           tags={"onyx/batch": str(partition_key).split("|")[-1]})

    return run


@pytest.fixture
def latest_metadata(dagster_instance):
    """metadata(asset, partition): the latest materialisation's metadata, as plain values."""
    return lambda asset, partition: _latest_metadata(dagster_instance, asset, partition)


@pytest.fixture
def materialization_count(dagster_instance):
    """count(asset, partition): how many times the partition was materialised (event log)."""
    from dagster import AssetKey, AssetRecordsFilter

    def count(asset, partition) -> int:
        return len(dagster_instance.fetch_materializations(
            AssetRecordsFilter(asset_key=AssetKey(asset), asset_partitions=[str(partition)]), limit=1000).records)

    return count


def _latest_metadata(instance, asset: str, partition) -> dict:
    from dagster import AssetKey, AssetRecordsFilter

    records = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=AssetKey(asset), asset_partitions=[str(partition)]), limit=1).records
    event = records[0].event_log_entry if records else None
    assert event is not None, f"{asset} [{partition}] was never materialised"
    materialization = event.asset_materialization
    return {key: getattr(value, "value", value) for key, value in materialization.metadata.items()}
