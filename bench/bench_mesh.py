"""Photogrammetry: the real OpenMVS against the CPU plane sweep, on the classic MVS benchmark scene.

    .venv/bin/python -m bench mesh

Scene: ../shared/datasets/strecha_fountain_p11/fountain_p11_2fps.mp4 at ``--interval 0.5`` (its 11
photographs, 1024x682), recipe photogrammetry-proto. Each path gets a data root of its own and runs
``onyx run --until RECONSTRUCTION`` as a user would: with ONYX_RUNNER=docker every step runs in its image
and the reconstruction's backend ``auto`` is OpenMVS (DensifyPointCloud, ReconstructMesh, TextureMesh);
with the local runner there are no OpenMVS binaries, so ``auto`` is the CPU sweep (plane sweep, COLMAP
fusion, Poisson).

Rows, OpenMVS as "Onyx" and the CPU sweep as the baseline: the reconstruction tool's own time ("openmvs
finished in" in its log), its peak memory (the step's metadata), the mesh's faces, and how well each
textured mesh explains the photographs (``bench.mesh_quality``: each registered photograph against the mesh
ray-cast from its camera; PSNR over the covered pixels, and the covered fraction).

Needs dockerd and the onyx-ingest, onyx-sfm and onyx-openmvs images (``onyx install --build --cpu-base
--tools openmvs --openmvs-sources ../shared/vendor``; about 7 minutes on two idle cores with the Debian
packages cached). OpenMVS takes about 7 minutes here, the CPU sweep under one.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from .harness import DATASETS, OUT, REPO, Row

VIDEO = DATASETS / "strecha_fountain_p11" / "fountain_p11_2fps.mp4"
RECIPE = "photogrammetry-proto"
KEY = "fountain"
WORK = OUT / "mesh"
FINISHED = re.compile(r"openmvs finished in ([0-9.]+) s")


def reconstruct(runner: str) -> Path:
    """A fresh data root where ``onyx run`` made fountain-P11's mesh with ``runner``; returns the batch folder."""
    root = WORK / runner
    shutil.rmtree(root, ignore_errors=True)
    env = {k: v for k, v in os.environ.items() if k not in ("DAGSTER_HOME", "ONYX_DATA")}
    env.update({"ONYX_RUNNER": runner, "ONYX_GPU_POLICY": "prefer"})
    command = [sys.executable, "-m", "onyx_dagster.cli", "run", "--input", str(VIDEO), "--output", str(root / "data"),
               "--mode", "photogrammetry", "--scene", "outdoor", "--quality", "proto", "--interval", "0.5",
               "--batch", KEY, "--until", "RECONSTRUCTION", "-q"]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"onyx run with the {runner} runner failed: {(done.stderr or done.stdout)[-2000:]}")
    return root / "data" / KEY


def step_metadata(batch: Path) -> dict:
    """The reconstruction's materialisation metadata, from the instance beside the data root."""
    from dagster import DagsterInstance, MultiPartitionKey

    from onyx_dagster.operations.state import latest_materialization

    instance = DagsterInstance.from_config(str(batch.parent.parent / "dagster-home"))
    try:
        record = latest_materialization(instance, "reconstruction", MultiPartitionKey({"batch": KEY, "recipe": RECIPE}))
        metadata = record.event_log_entry.asset_materialization.metadata
        return {key: getattr(value, "value", value) for key, value in metadata.items()}
    finally:
        instance.dispose()


def measure(runner: str) -> dict:
    from .mesh_quality import mesh_quality

    batch = reconstruct(runner)
    seconds = [float(s) for s in FINISHED.findall((batch / "logs" / "openmvs.log").read_text(errors="replace"))]
    quality = mesh_quality(batch, RECIPE)
    metadata = step_metadata(batch)
    return {"seconds": seconds[-1], "quality": quality, "metadata": metadata}


def run() -> list[Row]:
    if not VIDEO.is_file():
        raise RuntimeError(f"{VIDEO} not found (../shared/datasets beside the repository)")
    from onyx_dagster.install.images import docker_client, image_present

    if not image_present(docker_client(), "onyx-openmvs:latest"):
        raise RuntimeError("onyx-openmvs:latest is not built: onyx install --build --cpu-base --tools openmvs "
                           "--openmvs-sources ../shared/vendor")
    openmvs, sweep = measure("docker"), measure("local")
    for name, result in (("openmvs", openmvs), ("cpu sweep", sweep)):
        print(f"  {name}: {result['seconds']:.1f} s, {result['quality']}, backend {result['metadata'].get('backend')}",
              file=sys.stderr, flush=True)
    if openmvs["metadata"].get("backend") != "openmvs" or sweep["metadata"].get("backend") != "cpu-sweep":
        raise RuntimeError(f"unexpected backends: docker ran {openmvs['metadata'].get('backend')}, "
                           f"local ran {sweep['metadata'].get('backend')}")
    o, s = openmvs["quality"], sweep["quality"]
    scene = f"fountain-P11, {o.images} photographs 1024x682, {RECIPE}"
    timings = {name: result["metadata"].get("timings") for name, result in (("OpenMVS", openmvs), ("sweep", sweep))}
    level = openmvs["metadata"].get("resolution_level")
    return [
        Row(f"reconstruction time, {scene} (OpenMVS vs CPU sweep)", openmvs["seconds"], sweep["seconds"], "s", "",
            f"the tool's own time; OpenMVS at resolution level {level} (chosen from memory); steps: {timings}"),
        Row(f"mesh PSNR at the registered cameras, {scene}", o.psnr_db, s.psnr_db, "dB", "higher is better",
            "mean over the photographs of the PSNR over the pixels the textured mesh covers (bench.mesh_quality)"),
        Row(f"mesh coverage of the photographs, {scene}", o.coverage, s.coverage, "fraction", "higher is better",
            "mean fraction of each photograph's pixels the mesh covers"),
        Row(f"reconstruction peak memory, {scene}", openmvs["metadata"].get("peak_memory_mib", 0.0),
            sweep["metadata"].get("peak_memory_mib", 0.0), "MiB", "", "the step's peak_memory_mib"),
        Row(f"mesh faces, {scene}", o.faces, s.faces, "faces", "",
            f"vertices {o.vertices} vs {s.vertices}; dense points {openmvs['metadata'].get('dense_points')} vs "
            f"{sweep['metadata'].get('dense_points')}"),
    ]
