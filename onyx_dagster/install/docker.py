"""Talking to Docker: the client, what the daemon can do, the tool images' names.

Problems are ``DockerProblem`` subclasses whose message says what to do: no docker CLI,
daemon not running, image missing, no NVIDIA runtime.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
START_DOCKERD = REPO / "scripts" / "docker" / "start-dockerd.sh"
INSTALL_HINT = "onyx install --build (or: python -m onyx_dagster.install install --build)"

# The label every container the docker runner starts carries (see resources/docker_runner.py).
LABEL_MANAGED = "onyx.managed"


def short(error: object, limit: int = 300) -> str:
    text = " ".join(str(error).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def human_size(size: int | None) -> str:
    return "?" if size is None else f"{size / 1e9:.2f} GB" if size >= 1e9 else f"{size / 1e6:.0f} MB"


class DockerProblem(RuntimeError):
    """Docker cannot do what was asked; the message says why and what to do."""


class NoDockerCli(DockerProblem):
    pass


class DaemonNotRunning(DockerProblem):
    pass


class ImageMissing(DockerProblem):
    pass


class NoNvidiaRuntime(DockerProblem):
    pass


def docker_host() -> str:
    return os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


def require_cli() -> str:
    path = shutil.which("docker")
    if not path:
        raise NoDockerCli(
            "no docker CLI on PATH: install Docker (Debian/Ubuntu: apt-get install docker.io; or Docker "
            f"Engine from docs.docker.com; on this project's machines: sudo {START_DOCKERD.relative_to(REPO)})")
    return path


def daemon_down_message(error: object | None = None) -> str:
    detail = f" ({short(error)})" if error else ""
    return (f"the Docker daemon at {docker_host()} is not running or not reachable{detail}: start it "
            f"(sudo systemctl start docker; on machines without systemd: sudo "
            f"{START_DOCKERD.relative_to(REPO)}), check DOCKER_HOST and that your user may use the socket "
            "(the docker group), or run the steps without Docker (ONYX_RUNNER=local)")


def docker_client(timeout: int = 60):
    """A docker SDK client that has answered a ping, or DaemonNotRunning."""
    import docker
    import docker.errors

    try:
        client = docker.from_env(timeout=timeout)
        client.ping()
    except docker.errors.DockerException as error:
        raise DaemonNotRunning(daemon_down_message(error)) from None
    except Exception as error:  # requests' connection errors, a bad DOCKER_HOST, ...
        raise DaemonNotRunning(daemon_down_message(error)) from None
    return client


def has_nvidia_runtime(client) -> bool:
    """Whether containers on this daemon can get NVIDIA GPUs (--gpus / device requests).

    True when the daemon lists an ``nvidia`` runtime or the NVIDIA container hook is installed next to
    a local daemon (that is what serves ``--gpus`` with the default runc runtime).
    """
    try:
        runtimes = client.info().get("Runtimes") or {}
    except Exception:
        runtimes = {}
    if "nvidia" in runtimes:
        return True
    local = docker_host().startswith("unix://")
    return local and bool(shutil.which("nvidia-container-runtime-hook") or shutil.which("nvidia-ctk"))


def no_nvidia_message() -> str:
    return ("no NVIDIA runtime in Docker: GPU steps cannot get a GPU on this host. Install the NVIDIA "
            "driver and nvidia-container-toolkit (nvidia-ctk runtime configure --runtime=docker; restart "
            "dockerd), or set the docker runner's gpu_policy to 'prefer' (ONYX_GPU_POLICY=prefer) to run "
            "those steps on the CPU where the tool supports it")


def image_name(tool: str, prefix: str = "", tag: str = "latest") -> str:
    if prefix and not prefix.endswith(("/", "-", "_")):
        prefix += "/"
    return f"{prefix}onyx-{tool}:{tag}"


def image_present(client, name: str) -> bool:
    import docker.errors

    try:
        client.images.get(name)
        return True
    except docker.errors.ImageNotFound:
        return False


def missing_image_message(name: str, tool: str) -> str:
    return (f"Docker image {name} is not installed: build it with `onyx install --build --tools {tool}` "
            f"(python -m onyx_dagster.install install --build --tools {tool}), "
            "or pull it with `onyx install` from a registry (--prefix / ONYX_IMAGE_PREFIX)")


def image_size(client, name: str) -> int | None:
    try:
        return int(client.images.get(name).attrs.get("Size") or 0)
    except Exception:
        return None
