"""Every ``ONYX_*`` environment variable the platform reads, in one model, read in one place.

``OnyxSettings.from_env()`` is called where a process starts its work (the code location
when Dagster loads the definitions, the ``onyx`` command, ``onyx install``); everything else
receives the settings or the resources built from them. Each field's variable is
``ONYX_`` + its name in upper case; ``docs/settings.md`` is the table of them all
(``python -m onyx_dagster.settings`` prints it, and a test keeps the two equal).

Renamed variables keep working for one release with a warning: ``ONYX_REGISTRY`` is
``ONYX_IMAGE_PREFIX`` and ``ONYX_TAG`` is ``ONYX_IMAGE_TAG``.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from onyx_tools.config import explain
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

PREFIX = "ONYX_"
RENAMED = {"ONYX_REGISTRY": "ONYX_IMAGE_PREFIX", "ONYX_TAG": "ONYX_IMAGE_TAG"}


class OnyxSettingsWarning(UserWarning):
    """A setting that works but should be changed (a renamed variable)."""


class SettingsError(ValueError):
    """An ONYX_* variable with a value Onyx cannot use; the message names it and the choices."""


def _flag(value: object) -> object:
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
    return value


class OnyxSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    # -- where things are ------------------------------------------------------------------
    data: Path = Field(Path("onyx-data"), description="data root: one folder per batch")
    drop: Path = Field(Path("onyx-drop"), description="drop folder the `drop_folder` sensor watches")
    weights: Path = Field(Path("~/.cache/onyx/weights"),
                          description="model weights `onyx install --weights` fetches and the local runner loads "
                                      "(SegFormer in `segformer/`)")
    masks: bool = Field(True, description="`off`: run, resume, fork and the drop-folder sensor plan without the "
                                          "masks step and say so (as `--masks off`)")
    disk_check: bool = Field(True, description="`off`: runs start without comparing the data root's free space with "
                                               "the run's estimate (quotas, thin provisioning, compressing file "
                                               "systems); a disk that fills up still fails its step, saying so")
    definitions: str | None = Field(
        None, description="code location of the `onyx` command, `module:attribute` (default the Onyx one)")

    # -- where steps run -------------------------------------------------------------------
    runner: Literal["local", "docker", "k8s"] = Field(
        "local", description="where tools run: a local subprocess, a Docker container, a Kubernetes pod")
    executor: Literal["default", "in_process", "multiprocess", "celery"] = Field(
        "default", description="where a run's steps execute: `default` = `in_process` (one after another in the "
                               "run's process), Dagster's multiprocess executor, or Celery workers")
    image_prefix: str = Field("", description="registry prefix of the tool images, e.g. `ghcr.io/org/`")
    image_tag: str = Field("latest", description="tag of the tool images")

    # -- the docker runner -----------------------------------------------------------------
    gpu_policy: Literal["prefer", "require"] = Field(
        "prefer", description="a GPU step where Docker has no NVIDIA runtime: `prefer` runs it on the CPU, "
                              "`require` fails it")
    docker_user: str | None = Field(None, description="`uid:gid` the tool containers run as (default: the caller's)")
    docker_gpus: bool = Field(True, description="request GPUs for GPU steps at all")
    docker_network: str = Field("none", description="network of the tool containers (they need none)")
    docker_pull: bool = Field(False, description="pull a missing tool image instead of failing the step")

    # -- the k8s runner --------------------------------------------------------------------
    k8s_namespace: str | None = Field(None, description="namespace of the step pods (default: Dagster's own)")
    k8s_data_claim: str = Field("onyx-data", description="ReadWriteMany PersistentVolumeClaim holding the data root")
    k8s_data_mount: str = Field("/onyx", description="where Dagster's pods mount that claim")
    k8s_gpus: int = Field(1, ge=0, description="`nvidia.com/gpu` limit of a GPU step (0: none)")
    k8s_gpu_node_selector: str = Field("onyx/gpu=true", description="`label=value,...` GPU steps are scheduled by")
    k8s_pull_secrets: str | None = Field(None, description="comma-separated image pull secrets")
    k8s_run_as: str = Field("1000:1000", description="`uid:gid` of the step pods (owner of the data volume)")

    # -- the Celery executor ---------------------------------------------------------------
    celery_broker: str | None = Field(None, description="broker URL, e.g. `redis://control:6379/0`")
    celery_backend: str | None = Field(None, description="result backend URL (default: the broker)")
    celery_queues: str | None = Field(None, description="comma-separated host queues batches are routed to")
    celery_worker_lost_s: float = Field(60.0, gt=0, description="a started step whose worker is silent this "
                                                                "long fails")

    # -- onyx install: building the images -------------------------------------------------
    root_image: str | None = Field(None, description="what onyx-base is built from (default the CUDA/PyTorch "
                                                     "runtime image)")
    rootfs_image: str = Field("onyx-rootfs:bookworm", description="the offline Debian root image "
                                                                  "(`onyx install --build --cpu-base`)")
    build_network: str | None = Field(None, description="network of image build steps: `default` or `host`")
    build_ca_bundle: Path | None = Field(None, description="CA bundle pip trusts inside image builds")
    openmvs_sources: Path | None = Field(None, description="folder with the OpenMVS and VCG source tarballs: the "
                                                           "openmvs image compiles them instead of cloning GitHub")
    pip_index_url: str | None = Field(None, description="pip index inside image builds")
    pip_extra_index_url: str | None = Field(None, description="extra pip index inside image builds")
    pip_trusted_host: str | None = Field(None, description="pip trusted host inside image builds")
    docker_cache: Path | None = Field(None, description="build logs and the root file system cache "
                                                        "(default `~/.cache/onyx-docker`)")

    _flags = field_validator("docker_gpus", "docker_pull", "masks", "disk_check", mode="before")(_flag)

    @field_validator("data", "drop", "weights", mode="after")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return Path(os.path.abspath(os.path.expanduser(str(value))))

    @classmethod
    def variable(cls, field: str) -> str:
        return PREFIX + field.upper()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> OnyxSettings:
        """The settings from the environment; empty variables count as unset."""
        env = os.environ if environ is None else environ
        values: dict[str, str] = {}
        for old, new in RENAMED.items():
            if env.get(old) and not env.get(new):
                warnings.warn(f"{old} is renamed {new}; {old} stops working in the next release",
                              OnyxSettingsWarning, stacklevel=2)
                values[new.removeprefix(PREFIX).lower()] = env[old]
        for field in cls.model_fields:
            value = env.get(cls.variable(field))
            if value:
                values[field] = value
        try:
            return cls.model_validate(values)
        except ValidationError as error:
            named = explain(error, "Onyx settings", ())
            for field in cls.model_fields:
                named = named.replace(f"\n  {field}:", f"\n  {cls.variable(field)}:")
            raise SettingsError(named) from None


def markdown_table() -> str:
    """The table of docs/settings.md."""
    lines = ["| variable | default | what it sets |", "|---|---|---|"]
    for name, field in OnyxSettings.model_fields.items():
        default = field.default
        shown = "" if default in (None, "") else f"`{default}`"
        lines.append(f"| `{OnyxSettings.variable(name)}` | {shown} | {field.description} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # python -m onyx_dagster.settings > the table in docs/settings.md
    sys.stdout.write(markdown_table())
