"""Installing what the tools need: their images and model weights.

- ``docker``: the Docker client, what the daemon can do, the images' names;
- ``manifest``: the build manifest (docker-compose.yml);
- ``images``: pulling or building the images (``onyx install``);
- ``cli``: the ``onyx install`` command.
"""

from .docker import (
    LABEL_MANAGED,
    DaemonNotRunning,
    DockerProblem,
    NoDockerCli,
    docker_client,
    has_nvidia_runtime,
    image_name,
    image_present,
)
from .images import BASE, PRODUCTION_ROOT_IMAGE, TOOLS, InstallReport, install
from .manifest import MANIFEST, build_order, interpolate, load_manifest

__all__ = [
    "BASE", "LABEL_MANAGED", "MANIFEST", "PRODUCTION_ROOT_IMAGE", "TOOLS", "DaemonNotRunning", "DockerProblem",
    "InstallReport", "NoDockerCli", "build_order", "docker_client", "has_nvidia_runtime", "image_name",
    "image_present", "install", "interpolate", "load_manifest",
]
