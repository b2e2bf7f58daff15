"""Fixtures shared by every test: real data from ../shared, real Dagster instances."""

from __future__ import annotations

import onyx_tools.native_order  # noqa: F401,I001  (before any pycolmap import: see that module)

import os
from pathlib import Path

import pytest

from components import check_marks, require, require_module

REPO = Path(__file__).resolve().parents[1]
DATASETS = (REPO / ".." / "shared" / "datasets").resolve()

# Tests never reach a model hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def datasets() -> Path:
    """../shared/datasets (real photographs and videos); tests that need it skip without it (fail in CI)."""
    require("datasets", DATASETS.is_dir(), f"real test data not found at {DATASETS} (the ../shared checkout beside "
                                           "the repo)")
    return DATASETS


def pytest_addoption(parser):
    parser.addoption("--image-builds", action="store_true",
                     help="also run the tests that compile a tool image from source "
                          "(minutes on idle cores, an hour on busy ones)")


# Directories whose modules share an expensive session fixture (a finished batch, built images,
# a running site): under ``pytest -n N`` their tests go to one worker together, so the fixture is
# made once. Everywhere else each module is a unit of its own.
SHARED_SETUP = {"faults", "viewer", "docker", "ui", "sample", "gsplat", "deploy"}


def work_unit(nodeid: str) -> str:
    """The unit of work a test belongs to under xdist: its directory in SHARED_SETUP, else its module."""
    path = nodeid.split("::", 1)[0]
    parts = Path(path).parts
    area = parts[1] if len(parts) > 2 and parts[0] == "tests" else ""
    return area if area in SHARED_SETUP else path


@pytest.hookimpl(optionalhook=True)  # an xdist hook: unknown under `-p no:xdist`
def pytest_xdist_make_scheduler(config, log):
    """``--dist loadgroup`` with the groups above. (xdist's own loadgroup reads ``xdist_group`` marks
    through a node attribute pytest 9 no longer has, and silently schedules test by test.)"""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class ByGroup(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid)

    config.option.loadscopereorder = False   # keep the collection order: longest groups first (below)
    return ByGroup(config, log)


def pytest_collection_modifyitems(config, items):
    """The longest groups first: xdist hands groups out greedily in collection order, so a long
    group drawn last keeps one worker busy while the others idle. A group's length is estimated
    (a slow-marked test counts as a minute, any other as a second); the sort is stable, so the
    order within a group is kept."""
    weight: dict[str, int] = {}
    for item in items:
        group = work_unit(item.nodeid)
        weight[group] = weight.get(group, 0) + (60 if item.get_closest_marker("slow") else 1)
    items.sort(key=lambda item: -weight[work_unit(item.nodeid)])


def pytest_runtest_setup(item):
    # An hour of compiling does not belong in every run of the suite (CI included): it is asked for by name.
    if item.get_closest_marker("image_build") and not item.config.getoption("--image-builds"):
        pytest.skip("compiles an image from source: scripts/test --image-builds tests/openmvs")
    check_marks(item)  # tests/components.py: a missing component skips, or fails with CI=true


@pytest.fixture(scope="session")
def tiny_segformer(tmp_path_factory) -> Path:
    """FAKE weights (the only fake): a tiny random SegFormer with ADE20K's 150 labels, written by
    ``save_pretrained`` as a real checkpoint is, in a subprocess so the test process never imports torch."""
    import subprocess
    import sys

    for module in ("torch", "transformers"):
        require_module(module, "torch/transformers are not installed (pip install -e .[ml]): masks cannot run")
    folder = tmp_path_factory.mktemp("tiny-segformer")
    code = (
        "import sys, torch\n"
        "from transformers import SegformerConfig, SegformerForSemanticSegmentation\n"
        "torch.manual_seed(0)\n"
        "c = SegformerConfig(hidden_sizes=[8, 16, 32, 64], depths=[1, 1, 1, 1], num_attention_heads=[1, 1, 2, 4],"
        " decoder_hidden_size=32, num_labels=150)\n"
        "SegformerForSemanticSegmentation(c).save_pretrained(sys.argv[1])\n"
    )
    environ = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "2"}
    subprocess.run([sys.executable, "-c", code, str(folder)], check=True, env=environ, capture_output=True,
                   timeout=300)
    return folder


@pytest.fixture(scope="session")
def installed_weights(tiny_segformer, tmp_path_factory) -> Path:
    """An ONYX_WEIGHTS folder with the tiny SegFormer installed by `onyx install --weights --weights-from`:
    the real install path (copy with a progress bar, sha256 record, verify, load). Only the model hub
    download is not run by the tests (no network)."""
    import subprocess
    import sys

    root = tmp_path_factory.mktemp("weights")
    environ = {**os.environ, "ONYX_WEIGHTS": str(root), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-m", "onyx_dagster.cli", "install", "--weights", "--weights-from",
                           str(tiny_segformer)], env=environ, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    return root


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
