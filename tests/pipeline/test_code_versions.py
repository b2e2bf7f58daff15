"""Code versions follow the code: a changed tool makes its step stale, and the resume redoes
that step and everything after it, nothing before it.

A real batch is materialised end to end; then, in a copy of the repository where one line
of the sfm tool changed, Dagster's own staleness (what the UI shows) reports sparse_model
stale by its code version and video and frames fresh. Dagster 1.13 marks what is downstream
of a stale asset stale only once that asset has new data (a new data version), so
reconstruction and masks still read fresh there; ``onyx resume`` plans them with it (and the
viewer, never made here), and re-materialises exactly those.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from dagster import MultiPartitionKey

from onyx_dagster.batches import add_batch, parse_settings
from onyx_sample import make_sample_video

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
ASSETS = ["video", "frames", "sparse_model", "reconstruction", "masks"]

PROBE = """
import json, sys
from dagster import AssetKey, DagsterInstance, MultiPartitionKey
from dagster._core.definitions.data_version import CachingStaleStatusResolver
from dagster._core.loader import LoadingContextForTest
from onyx_dagster.definitions import defs
from onyx_dagster.operations.context import Onyx
from onyx_dagster.operations.verbs import plan_resume

home, root, key = sys.argv[1:4]
instance = DagsterInstance.from_config(home)
graph = defs.resolve_asset_graph()
resolver = CachingStaleStatusResolver(instance, graph, LoadingContextForTest(instance))
recipe = MultiPartitionKey({"batch": key, "recipe": "gaussian-proto"})
dagster = {}
for name in ("video", "frames", "sparse_model", "reconstruction", "masks"):
    partition = recipe if name in ("reconstruction", "masks") else key
    dagster[name] = resolver.get_status(AssetKey(name), partition).value
with Onyx(root) as onyx:
    onyx._instance = instance
    plan = plan_resume(onyx, key)
print(json.dumps({"dagster": dagster, "onyx": sorted(a for run in plan.runs for a in run.assets),
                  "sfm_version": graph.get(AssetKey("sparse_model")).code_version}))
"""


def copy_of_repository(target: Path) -> Path:
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True,
                           text=True, check=True).stdout.split("\n")
    for name in filter(None, files):
        source = REPO / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            (target / name).write_bytes(source.read_bytes())
    return target


def python_path(root: Path) -> str:
    """The copy's package folders first, so its sources are what Python imports."""
    where = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["where"]
    return os.pathsep.join(str((root / folder).resolve()) for folder in where)


def test_a_changed_tool_marks_its_step_and_everything_downstream_stale(
        tmp_path, dagster_instance, data_root, materialize_partition, materialization_count):
    sample = make_sample_video(tmp_path / "video", frames=14, width=320, height=180, fps=4)
    add_batch(dagster_instance, data_root, "room", parse_settings(
        {"input": str(sample.path), "scene": "indoor", "mode": "gaussian", "quality": "proto"}))
    materialize_partition(["video", "frames", "sparse_model"], "room")
    recipe = MultiPartitionKey({"batch": "room", "recipe": "gaussian-proto"})
    materialize_partition(["reconstruction", "masks"], recipe,
                          run_config={"ops": {"reconstruction": {"config": {"settings": {"iterations": 30}}}}})

    copy = copy_of_repository(tmp_path / "repo")
    tool = copy / "containers" / "sfm" / "onyx_sfm" / "tool.py"
    tool.write_text(tool.read_text() + "\n# a changed line\n")
    home = Path(dagster_instance.root_directory)
    env = {**os.environ, "PYTHONPATH": python_path(copy), "DAGSTER_HOME": str(home)}
    env.pop("ONYX_DATA", None)

    def probe() -> dict:
        done = subprocess.run([sys.executable, "-c", PROBE, str(home), str(data_root), "room"], env=env, cwd=copy,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        return json.loads(done.stdout.strip().splitlines()[-1])

    before = probe()
    from onyx_dagster.definitions import defs

    assert before["sfm_version"] != defs.resolve_asset_graph().get(
        __import__("dagster").AssetKey("sparse_model")).code_version, "the copy's sfm code version did not change"
    assert before["dagster"] == {"video": "FRESH", "frames": "FRESH", "sparse_model": "STALE",
                                 "reconstruction": "FRESH", "masks": "FRESH"}, before
    assert before["onyx"] == ["masks", "reconstruction", "sparse_model", "viewer"], before

    # The resume trains the splat with the recipe's preset: a short one here (this makes the
    # reconstruction stale by its code version as well, which changes nothing that is redone).
    recipes = copy / "onyx_dagster" / "recipes.py"
    preset = 'preset={"cpu_budget_s": 120}'
    assert preset in recipes.read_text()
    recipes.write_text(recipes.read_text().replace(preset, 'preset={"cpu_budget_s": 120, "iterations": 30}'))
    # (the viewer is planned either way; its fly-through video is not this test's subject)
    done = subprocess.run([sys.executable, "-m", "onyx_dagster.cli", "resume", "room", "-d", str(data_root), "-q",
                           "--set", "viewer.flythrough=false"],
                          env=env, cwd=copy, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    counts = {name: materialization_count(name, recipe if name in ("reconstruction", "masks", "viewer") else "room")
              for name in [*ASSETS, "viewer"]}
    assert counts == {"video": 1, "frames": 1, "sparse_model": 2, "reconstruction": 2, "masks": 2, "viewer": 1}, counts
    after = probe()
    assert set(after["dagster"].values()) == {"FRESH"} and after["onyx"] == [], after
