"""The slow suite of the photogrammetry recipes on the real OpenMVS (``scripts/test --image-builds tests/openmvs``).

1. A tampered source tarball fails the image build with the sha256 named (the cached layers make this
   seconds once the image has been built).
2. The onyx-openmvs image builds from ../shared/vendor's tarballs through ``onyx install --build``
   (Docker's layer cache: seconds when nothing changed; about an hour of compiling on two cores the
   first time).
3. photogrammetry-proto on strecha_fountain_p11 through Dagster with ONYX_RUNNER=docker (the `onyx`
   command, every step in its image: ingest, sfm, openmvs; ``--until RECONSTRUCTION``: the masks and
   viewer images, whose builds fetch model weights and web packages, are not this suite's subject):
   OpenMVS runs DensifyPointCloud, ReconstructMesh and TextureMesh, and the textured mesh, rendered at
   the registered cameras, explains the photographs (bench.mesh_quality: coverage and PSNR).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
VENDOR = (REPO / ".." / "shared" / "vendor").resolve()
FOUNTAIN = (REPO / ".." / "shared" / "datasets" / "strecha_fountain_p11").resolve()

pytestmark = [pytest.mark.slow, pytest.mark.docker]


@pytest.fixture(scope="module")
def docker_ready():
    script = REPO / "scripts" / "docker" / "start-dockerd.sh"
    completed = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=900)
    if completed.returncode != 0:
        pytest.skip(f"Docker could not be started: {(completed.stderr.strip().splitlines() or ['?'])[-1]}")
    if not (VENDOR / "openMVS-v2.3.0.tar.gz").is_file():
        pytest.skip(f"the vendored OpenMVS sources are not at {VENDOR}")


def _ca_bundle() -> str | None:
    path = "/etc/ssl/certs/ca-certificates.crt"
    return path if Path(path).is_file() else None


def test_tampered_tarball_fails_the_build_naming_the_checksum(docker_ready, tmp_path):
    # a build context of its own: the Dockerfile, the (empty) CA folder and a tarball that is not the vendored one
    context = tmp_path / "context"
    (context / "containers" / "openmvs" / "sources").mkdir(parents=True)
    shutil.copytree(REPO / "containers" / "base" / "build-ca", context / "containers" / "base" / "build-ca",
                    ignore=shutil.ignore_patterns("ca.crt"))
    shutil.copy2(VENDOR / "VCG-658ba36d.tar.gz", context / "containers" / "openmvs" / "sources")
    fake = context / "containers" / "openmvs" / "sources" / "openMVS-v2.3.0.tar.gz"
    with tarfile.open(fake, "w:gz") as archive:
        archive.add(REPO / "README.md", arcname="openMVS/CMakeLists.txt")
    from onyx_dagster.install import load_manifest
    from onyx_dagster.install.images import docker_client, image_present
    from onyx_dagster.settings import OnyxSettings

    # the build arguments `onyx install --build --cpu-base` gives, so the layers before the check are cached
    args = load_manifest(env={"ONYX_ROOT_IMAGE": OnyxSettings.from_env().rootfs_image}).get("openmvs").args
    if not image_present(docker_client(), args["OPENMVS_BUILD_IMAGE"]):
        pytest.skip(f"{args['OPENMVS_BUILD_IMAGE']} is not there (onyx install --build --cpu-base --tools openmvs)")
    build_args = [part for key, value in args.items() for part in ("--build-arg", f"{key}={value}")]
    result = subprocess.run(
        ["docker", "build", "--target", "openmvs", *build_args,
         "-f", str(REPO / "containers" / "openmvs" / "Dockerfile"), str(context)],
        capture_output=True, text=True, timeout=3600)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "openMVS-v2.3.0.tar.gz: FAILED" in output and "sha256 mismatch" in output, output[-2000:]


@pytest.fixture(scope="module")
def openmvs_image(docker_ready):
    from onyx_dagster import install

    lines: list[str] = []
    report = install.install(build=True, tools=["openmvs", "ingest", "sfm"], cpu_base=True, force=True,
                             openmvs_sources=VENDOR, ca_bundle=_ca_bundle(), out=lines.append)
    print("\n".join(lines))
    assert report.ok, "\n".join(lines)
    return report.result("openmvs")


@pytest.mark.image_build
def test_image_built_from_the_vendored_tarballs(openmvs_image):
    assert openmvs_image.action in ("built", "present")
    assert not list((REPO / "containers" / "openmvs" / "sources").glob("*.tar.gz")), "staged tarballs removed"
    for binary in ("InterfaceCOLMAP", "DensifyPointCloud", "ReconstructMesh", "RefineMesh", "TextureMesh"):
        run = subprocess.run(["docker", "run", "--rm", "--network", "none", "--entrypoint", "sh", openmvs_image.image,
                              "-c", f"command -v {binary} && ! ldd $(command -v {binary}) | grep 'not found'"],
                             capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stdout + run.stderr


@pytest.mark.image_build
def test_fountain_photogrammetry_through_dagster_on_docker(openmvs_image, tmp_path):
    if not FOUNTAIN.is_dir():
        pytest.skip(f"real test data absent: {FOUNTAIN}")
    from bench.mesh_quality import mesh_quality

    data = tmp_path / "onyx-data"
    env = {k: v for k, v in os.environ.items() if k not in ("DAGSTER_HOME", "ONYX_DATA")}
    env.update({"ONYX_RUNNER": "docker", "ONYX_GPU_POLICY": "prefer"})
    result = subprocess.run(
        [sys.executable, "-m", "onyx_dagster.cli", "run", "--input", str(FOUNTAIN / "fountain_p11_2fps.mp4"),
         "--output", str(data), "--mode", "photogrammetry", "--scene", "outdoor", "--quality", "proto",
         "--interval", "0.5", "--batch", "fountain", "--until", "RECONSTRUCTION"],
        capture_output=True, text=True, timeout=5400, env=env)
    print(result.stdout[-4000:], result.stderr[-4000:])
    assert result.returncode == 0
    batch = data / "fountain"
    log = (batch / "logs" / "openmvs.log").read_text()
    assert "backend openmvs" in log and "DensifyPointCloud" in log and "TextureMesh" in log
    quality = mesh_quality(batch, "photogrammetry-proto")
    print("fountain photogrammetry-proto (OpenMVS):", json.dumps(quality.__dict__))
    assert quality.images == 11
    assert quality.faces > 10_000
    assert quality.coverage > 0.5 and quality.psnr_db > 15
