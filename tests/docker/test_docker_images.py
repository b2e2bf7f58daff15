"""The build manifest, the Dockerfiles, and the offline CPU images built from them with a real dockerd."""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from components import require

from onyx_dagster import install

REPO = Path(__file__).resolve().parents[2]


def test_manifest_has_every_tool_and_builds_base_first():
    services = install.load_manifest(env={})
    assert set(services) == {"base", "base-milo", *install.TOOLS}
    order = install.build_order(services, ["sfm", "ingest"])
    assert order == ["base", "sfm", "ingest"]
    assert install.build_order(services, ["milo"]) == ["base-milo", "milo"]
    for tool in install.TOOLS:
        base = "base-milo" if tool == "milo" else "base"
        assert services[tool].image == f"onyx-{tool}:latest"
        assert services[tool].dockerfile == f"containers/{tool}/Dockerfile"
        assert services[tool].context == "."
        assert services[tool].args["BASE_IMAGE"] == f"onyx-{base}:latest"
        assert services[tool].depends_on == (base,)
    assert services["base"].args["BASE_IMAGE"] == install.PRODUCTION_ROOT_IMAGE
    # MILo's base: the same Dockerfile on the PyTorch its CUDA extensions are written for
    assert services["base-milo"].dockerfile == services["base"].dockerfile
    assert services["base-milo"].args["BASE_IMAGE"].startswith("pytorch/pytorch:2.3.1-")
    # OpenMVS compiles on onyx-base's root, not on onyx-base: onyx_tools changes do not recompile it
    assert services["openmvs"].args["OPENMVS_BUILD_IMAGE"] == services["base"].args["BASE_IMAGE"]


def test_manifest_interpolation_resolves_nested_defaults():
    assert install.interpolate("${A:-${B:-}x:${C:-latest}}", {}) == "x:latest"
    assert install.interpolate("${A:-${B:-}x:${C:-latest}}", {"B": "r/", "C": "v2"}) == "r/x:v2"
    assert install.interpolate("${A:-${B:-}x}", {"A": "mine"}) == "mine"
    assert install.interpolate("${A-dflt} $$HOME ${A:-dflt}", {"A": ""}) == " $HOME dflt"
    services = install.load_manifest(env={"ONYX_OPENMVS_BUILD_IMAGE": "pytorch/pytorch:2.13.0-cuda12.8-cudnn9-devel",
                                         "ONYX_OPENMVS_CUDA": "ON", "ONYX_REGISTRY": "ghcr.io/acme/"})
    assert services["openmvs"].args["OPENMVS_BUILD_IMAGE"] == "pytorch/pytorch:2.13.0-cuda12.8-cudnn9-devel"
    assert services["openmvs"].args["OPENMVS_CUDA"] == "ON"
    assert services["openmvs"].args["BASE_IMAGE"] == "ghcr.io/acme/onyx-base:latest"


def _declared_args(text: str) -> set[str]:
    return set(re.findall(r"^ARG ([A-Za-z_][A-Za-z0-9_]*)", text, re.M))


@pytest.mark.parametrize("service", ["base", "base-milo", *install.TOOLS])
def test_every_build_arg_of_the_manifest_is_declared_by_its_dockerfile(service):
    # an undeclared build arg is silently ignored by docker build: the image would quietly be built
    # from the Dockerfile's default instead of what the manifest asked for
    spec = install.load_manifest(env={})[service]
    text = (REPO / spec.dockerfile).read_text()
    declared = _declared_args(text)
    assert set(spec.args) <= declared, f"{spec.dockerfile} does not declare {sorted(set(spec.args) - declared)}"
    for image in re.findall(r"^FROM \$\{(\w+)\}", text, re.M):
        assert image in declared


def test_manifest_registry_prefix_tag_and_build_options():
    env = {"ONYX_REGISTRY": "ghcr.io/acme/", "ONYX_TAG": "v2", "ONYX_ROOT_IMAGE": "onyx-rootfs:bookworm",
           "ONYX_PIP_INDEX_URL": "https://mirror.example/simple", "ONYX_BUILD_NETWORK": "host"}
    services = install.load_manifest(env=env)
    assert services["sfm"].image == "ghcr.io/acme/onyx-sfm:v2"
    assert services["sfm"].args["BASE_IMAGE"] == "ghcr.io/acme/onyx-base:v2"
    assert services["sfm"].args["ONYX_PIP_INDEX_URL"] == "https://mirror.example/simple"
    assert services["sfm"].network == "host"
    assert services["base"].args["BASE_IMAGE"] == "onyx-rootfs:bookworm"
    assert install.image_name("sfm", "ghcr.io/acme", "v2") == "ghcr.io/acme/onyx-sfm:v2"


@pytest.mark.parametrize("tool", ["base", *install.TOOLS])
def test_dockerfiles_take_base_image_and_run_the_tool_as_non_root(tool):
    dockerfile = REPO / "containers" / tool / "Dockerfile"
    require("checkout", dockerfile.is_file(), f"{dockerfile.relative_to(REPO)} not written yet")
    text = dockerfile.read_text()
    first_from = text.index("\nFROM ")
    assert re.search(r"^ARG BASE_IMAGE=\S+", text[:first_from], re.M), "ARG BASE_IMAGE before the first FROM"
    assert "FROM ${BASE_IMAGE}" in text
    if tool != "base":
        assert f"ARG BASE_IMAGE=onyx-base{'-milo' if tool == 'milo' else ''}:latest" in text
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
        name = install.image_name(tool)
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
        # The tools' settings models load (pydantic comes with onyx-base): a tool that cannot parse
        # its settings fails before it can tell Dagster why.
        settings = docker_daemon.containers.run(
            name, entrypoint=["python", "-c", "from onyx_tools.config import ToolConfig; print(ToolConfig.__name__)"],
            remove=True, network_mode="none").decode().split()
        assert settings == ["ToolConfig"], settings


@pytest.mark.docker
def test_install_skips_images_that_are_present(onyx_images, docker_daemon):
    lines: list[str] = []
    started = time.monotonic()
    report = install.install(build=True, tools=["ingest", "sfm"], cpu_base=True, out=lines.append)
    assert report.ok
    assert [(r.service, r.action) for r in report.results] == [("base", "present"), ("ingest", "present"),
                                                               ("sfm", "present")]
    assert time.monotonic() - started < 30
    assert any("onyx-sfm:latest: present, skipped" in line for line in lines)


@pytest.mark.docker
def test_install_says_what_is_missing(monkeypatch, tmp_path, docker_daemon):
    monkeypatch.setenv("PATH", str(tmp_path))          # no docker CLI
    with pytest.raises(install.NoDockerCli, match="no docker CLI on PATH: install Docker"):
        install.install(build=True, tools=["ingest"])
    monkeypatch.undo()
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/dead.sock")   # daemon not running
    with pytest.raises(install.DaemonNotRunning, match=r"Docker daemon at unix://.*dead.sock is not running"):
        install.install(build=True, tools=["ingest"])
    monkeypatch.undo()
    with pytest.raises(install.DockerProblem, match="pulling needs a registry"):
        install.install(build=False, tools=["ingest"], prefix="")


@pytest.mark.docker
def test_install_cli_entry(onyx_images):
    completed = subprocess.run(
        [os.environ.get("PYTHON", "python"), "-m", "onyx_dagster.install", "install", "--build", "--cpu-base",
         "--tools", "ingest"], capture_output=True, text=True, cwd=REPO, timeout=300,
        env={**os.environ, "PATH": f"{Path(os.sys.executable).parent}:{os.environ['PATH']}"})
    assert completed.returncode == 0, completed.stderr
    assert "onyx-ingest:latest: present, skipped" in completed.stdout
    assert "2 image(s) ready, 0 not" in completed.stdout


def test_a_build_failing_on_the_proxys_certificate_names_the_fix():
    """The pip failure as a TLS-intercepting proxy makes it (lines of a real build log), and another one."""
    from onyx_dagster.install.images import build_failure_hint

    log = ("Step 26/38 : RUN onyx-pip -r /tmp/requirements.txt\n"
           "Could not fetch URL https://pypi.org/simple/pycolmap/: There was a problem confirming the ssl "
           "certificate: HTTPSConnectionPool(host='pypi.org', port=443): Max retries exceeded with url: "
           "/simple/pycolmap/ (Caused by SSLError(SSLCertVerificationError(1, '[SSL: CERTIFICATE_VERIFY_FAILED] "
           "certificate verify failed: self-signed certificate in certificate chain (_ssl.c:992)'))) - skipping\n"
           "ERROR: No matching distribution found for pycolmap==4.2.1\n")
    hint = build_failure_hint(log)
    assert hint and "--ca-bundle /etc/ssl/certs/ca-certificates.crt" in hint and "ONYX_BUILD_CA_BUNDLE" in hint
    assert build_failure_hint("E: Unable to locate package libcgal-dev\n") is None
