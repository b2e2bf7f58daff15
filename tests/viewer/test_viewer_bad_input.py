"""Bad reconstructions: the viewer step fails with the reason, and nothing of the batch changes.

A copy of the demo's batch (its frames, sparse model, splat and viewer folder) in a fresh
data root and Dagster instance; the viewer asset is materialised through the real local runner.
"""

from __future__ import annotations

import hashlib
import shutil

import numpy as np
import pytest
from dagster import MultiPartitionKey

from onyx_tools.layout import BatchLayout

pytestmark = pytest.mark.slow  # shares the demo run (tests/viewer/conftest.py)


def snapshot(folder) -> dict[str, str]:
    """Every file under ``folder`` but the logs, with its content's hash."""
    return {path.relative_to(folder).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(folder.rglob("*")) if path.is_file() and "logs" not in path.relative_to(folder).parts}


def failure_text(result) -> str:
    failures = [event for event in result.all_events if event.event_type_value == "STEP_FAILURE"]
    assert failures, "the step did not fail"
    return " ".join(str(event.event_specific_data) for event in failures)


def spoil_splat(path, case: str) -> None:
    data = path.read_bytes()
    header, body = data.split(b"end_header\n", 1)
    if case == "nan":
        values = np.frombuffer(body, "<f4").copy()
        values[7] = np.nan
        path.write_bytes(header + b"end_header\n" + values.tobytes())
    else:  # no Gaussians: the same properties, zero vertices
        count = header.split(b"element vertex ")[1].split(b"\n")[0]
        path.write_bytes(header.replace(b"element vertex " + count, b"element vertex 0") + b"end_header\n")


@pytest.mark.parametrize(("case", "recipe", "reason"), [
    ("nan", "gaussian-proto", "NaN or infinite values"),
    ("empty", "gaussian-proto", "holds no Gaussians"),
    ("no-faces", "photogrammetry-proto", "has no faces"),
])
def test_bad_reconstruction_fails_the_step_and_leaves_the_batch(case, recipe, reason, demo, dagster_instance,
                                                                 data_root, materialize_partition):
    layout = BatchLayout(data_root / demo.key)
    shutil.copytree(demo.layout.root, layout.root)
    output = layout.recipe_output(recipe)
    if case == "no-faces":  # a recipe folder holding only a mesh without faces
        shutil.rmtree(output, ignore_errors=True)
        output.mkdir(parents=True)
        points = "\n".join("0 0 0" for _ in range(3))
        (output / "mesh.ply").write_text("ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\n"
                                         f"property float z\nelement face 0\nproperty list uchar int vertex_indices\n"
                                         f"end_header\n{points}\n")
    else:
        spoil_splat(output / "splat.ply", case)
        assert (output / "viewer" / "viewer.html").is_file()  # the demo's page: it must survive
    before = snapshot(layout.root)
    dagster_instance.add_dynamic_partitions("batches", [demo.key])
    result = materialize_partition(["viewer"], MultiPartitionKey({"batch": demo.key, "recipe": recipe}),
                                   raise_on_error=False)
    assert not result.success
    text = failure_text(result)
    assert "viewer failed: " in text and reason in text, text
    assert snapshot(layout.root) == before  # no half-written viewer/, the old one kept, nothing else touched
    attempt = (layout.logs / "viewer.log").read_text().rsplit(" viewer started with ", 1)[1]  # this run's lines
    assert reason in attempt and "Traceback" not in attempt
