"""The build manifest, the Dockerfiles, and the offline CPU images built from them with a real dockerd."""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from onyx_dagster import images

REPO = Path(__file__).resolve().parents[2]


def test_manifest_has_every_tool_and_builds_base_first():
    services = images.load_manifest(env={})
    assert set(services) == {"base", *images.TOOLS}
    order = images.build_order(services, ["sfm", "ingest"])
    assert order == ["base", "sfm", "ingest"]
    for tool in images.TOOLS:
        assert services[tool].image == f"onyx-{tool}:latest"
        assert services[tool].dockerfile == f"containers/{tool}/Dockerfile"
        assert services[tool].context == "."
        assert services[tool].args["BASE_IMAGE"] == "onyx-base:latest"
        assert services[tool].depends_on == ("base",)
    assert services["base"].args["BASE_IMAGE"] == images.PRODUCTION_ROOT_IMAGE


def test_manifest_registry_prefix_tag_and_build_options():
    env = {"ONYX_REGISTRY": "ghcr.io/acme/", "ONYX_TAG": "v2", "ONYX_ROOT_IMAGE": "onyx-rootfs:bookworm",
           "ONYX_PIP_INDEX_URL": "https://mirror.example/simple", "ONYX_BUILD_NETWORK": "host"}
    services = images.load_manifest(env=env)
    assert services["sfm"].image == "ghcr.io/acme/onyx-sfm:v2"
    assert services["sfm"].args["BASE_IMAGE"] == "ghcr.io/acme/onyx-base:v2"
    assert services["sfm"].args["ONYX_PIP_INDEX_URL"] == "https://mirror.example/simple"
    assert services["sfm"].network == "host"
    assert services["base"].args["BASE_IMAGE"] == "onyx-rootfs:bookworm"
    assert images.image_name("sfm", "ghcr.io/acme", "v2") == "ghcr.io/acme/onyx-sfm:v2"


@pytest.mark.parametrize("tool", ["base", *images.TOOLS])
def test_dockerfiles_take_base_image_and_run_the_tool_as_non_root(tool):
    dockerfile = REPO / "containers" / tool / "Dockerfile"
    if not dockerfile.is_file():
        pytest.skip(f"{dockerfile.relative_to(REPO)} not written yet")
    text = dockerfile.read_text()
    first_from = text.index("\nFROM ")
    assert re.search(r"^ARG BASE_IMAGE=\S+", text[:first_from], re.M), "ARG BASE_IMAGE before the first FROM"
    assert "FROM ${BASE_IMAGE}" in text
    if tool in ("ingest", "sfm", "gsplat", "segformer"):
        assert "ARG BASE_IMAGE=onyx-base:latest" in text
        assert f'ENTRYPOINT ["python", "-m", "onyx_{tool}"]' in text
        assert re.search(r"^USER 1000:1000$", text, re.M)
        assert "dagster==" not in text and "pip install dagster " not in text



@pytest.mark.docker
def test_offline_images_are_built_and_minimal(onyx_images, docker_daemon, record_property):
    for service in ("base", "ingest", "sfm"):
        result = onyx_images.result(service)
        assert result and result.action in ("built", "present"), result
        record_property(f"{service}_size_mb", round((result.size_bytes or 0) / 1e6))
        record_property(f"{service}_build_s", round(result.seconds, 1))
    for tool in ("ingest", "sfm"):
        name = images.image_name(tool)
        config = docker_daemon.images.get(name).attrs["Config"]
        assert config["User"] == "1000:1000"
        assert config["Entrypoint"] == ["python", "-m", f"onyx_{tool}"]
        check = ("import importlib.util as u, os, shutil; "
                 "print(os.getuid(), u.find_spec('dagster') is None, u.find_spec('dagster_pipes') is not None, "
                 "bool(shutil.which('ffprobe')), os.path.exists('/tmp/build-ca'))")
        output = docker_daemon.containers.run(name, entrypoint=["python", "-c", check], remove=True,
                                              network_mode="none").decode().split()
        # uid 1000, no dagster, dagster-pipes, ffprobe, no build-time CA left in the image
        assert output == ["1000", "True", "True", "True", "False"], output
        versions = docker_daemon.containers.run(
            name, entrypoint=["python", "-c", "import numpy, cv2, pycolmap, dagster_pipes, importlib.metadata as m;"
                                              "print(numpy.__version__, cv2.__version__, pycolmap.__version__,"
                                              " m.version('dagster-pipes'))"],
            remove=True, network_mode="none").decode().split()
        assert versions == ["2.4.6", "5.0.0", "4.2.1", "1.13.27"], versions


@pytest.mark.docker
def test_install_skips_images_that_are_present(onyx_images, docker_daemon):
    lines: list[str] = []
    started = time.monotonic()
    report = images.install(build=True, tools=["ingest", "sfm"], cpu_base=True, out=lines.append)
    assert report.ok
    assert [(r.service, r.action) for r in report.results] == [("base", "present"), ("ingest", "present"),
                                                               ("sfm", "present")]
    assert time.monotonic() - started < 30
    assert any("onyx-sfm:latest: present, skipped" in line for line in lines)


@pytest.mark.docker
def test_install_says_what_is_missing(monkeypatch, tmp_path, docker_daemon):
    monkeypatch.setenv("PATH", str(tmp_path))          # no docker CLI
    with pytest.raises(images.NoDockerCli, match="no docker CLI on PATH: install Docker"):
        images.install(build=True, tools=["ingest"])
    monkeypatch.undo()
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/dead.sock")   # daemon not running
    with pytest.raises(images.DaemonNotRunning, match=r"Docker daemon at unix://.*dead.sock is not running"):
        images.install(build=True, tools=["ingest"])
    monkeypatch.undo()
    with pytest.raises(images.DockerProblem, match="pulling needs a registry"):
        images.install(build=False, tools=["ingest"], prefix="")


@pytest.mark.docker
def test_install_cli_entry(onyx_images):
    completed = subprocess.run(
        [os.environ.get("PYTHON", "python"), "-m", "onyx_dagster.images", "install", "--build", "--cpu-base",
         "--tools", "ingest"], capture_output=True, text=True, cwd=REPO, timeout=300,
        env={**os.environ, "PATH": f"{Path(os.sys.executable).parent}:{os.environ['PATH']}"})
    assert completed.returncode == 0, completed.stderr
    assert "onyx-ingest:latest: present, skipped" in completed.stdout
    assert "2 image(s) ready, 0 not" in completed.stdout
