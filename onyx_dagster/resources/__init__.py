"""The resources the assets get injected, chosen from the settings, never by code in an asset."""

from __future__ import annotations

from ..settings import OnyxSettings
from .docker_runner import DockerRunner
from .drop_folder import DropFolder
from .k8s_runner import K8sRunner
from .runners import LocalRunner, ToolRunner
from .storage import BatchStorage

__all__ = ["BatchStorage", "DockerRunner", "DropFolder", "K8sRunner", "LocalRunner", "ToolRunner",
           "resources_from_settings", "runner_from_settings"]


def runner_from_settings(settings: OnyxSettings) -> ToolRunner:
    """ONYX_RUNNER: local (default), docker (one container per step) or k8s (one pod per step)."""
    runners = {
        "local": lambda: LocalRunner(weights=str(settings.weights)),
        "docker": lambda: DockerRunner.from_settings(settings),
        "k8s": lambda: K8sRunner.from_settings(settings),
    }
    return runners[settings.runner]()


def resources_from_settings(settings: OnyxSettings) -> dict:
    return {
        "storage": BatchStorage(data_root=str(settings.data)),
        "runner": runner_from_settings(settings),
        "drop": DropFolder(folder=str(settings.drop)),
    }
