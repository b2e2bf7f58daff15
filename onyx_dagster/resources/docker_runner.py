"""The docker runner: each step's tool in its own container, through ``dagster_docker.PipesDockerClient``.

What a step's container gets:
- the image ``{image_prefix}onyx-<tool>:{tag}`` (built or pulled by ``onyx install``; never pulled
  implicitly unless ``pull_missing``), entrypoint ``python -m onyx_<tool>``;
- the batch folder bind-mounted read-write at ``/data`` (``extras["batch_dir"] = "/data"``), each input
  file read-only at ``/inputs/<name>/<filename>`` (``extras["inputs"][name]``);
- the caller's ``uid:gid`` (or ``user``), ``HOME=/tmp``, ``init`` (tini as PID 1, so a stop signal
  reaches the tool at once), no network (``network_mode="none"``: tools need none at run time);
- GPUs through a device request when the step needs one; on a host without the NVIDIA runtime the step
  fails with a message saying so (``gpu_policy="require"``) or runs without a GPU (``"prefer"``);
- labels ``onyx.managed=true``, ``onyx.run_id``, ``onyx.batch``, ``onyx.partition``, ``onyx.tool``,
  ``onyx.asset``, so ``remove_leftover_containers()`` can find what a crashed orchestrator left.

The container is always removed when the step ends: success, failure, or cancellation (Dagster raises
``DagsterExecutionInterruptedError`` in the step; the container gets SIGTERM, SIGKILL after
``stop_timeout_s``, and is removed). PipesDockerClient itself only calls ``container.stop()`` (10 s
grace, never removes), so ``OnyxPipesDockerClient`` below overrides ``run`` and keeps its message
reader, context injector and container creation.
"""

from __future__ import annotations

import os
import re
import secrets
import stat
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from dagster import (
    DagsterExecutionInterruptedError,
    Failure,
    PipesClientCompletedInvocation,
    open_pipes_session,
)
from dagster_docker import PipesDockerClient
from dagster_docker.pipes import PipesDockerLogsMessageReader
from pydantic import Field

from ..dagster_internals import (
    DagsterPipesExecutionError,
    capture_interrupts,
    check_captured_interrupt,
)
from ..install.docker import (
    LABEL_MANAGED,
    DockerProblem,
    docker_client,
    image_name,
    image_present,
    missing_image_message,
    no_nvidia_message,
    short,
)
from ..install.images import pull_image
from ..settings import OnyxSettings
from .runners import ToolRunner

CONTAINER_DATA = "/data"
CONTAINER_INPUTS = "/inputs"
LABEL_PREFIX = "onyx."
MANAGED_LABEL = LABEL_MANAGED  # "onyx.managed"

GpuPolicy = Literal["require", "prefer"]


class GpuUnavailable(Failure):
    """A GPU step on a host whose Docker has no NVIDIA runtime, with gpu_policy='require'."""


def _is_gpu_driver_error(error: Exception) -> bool:
    text = str(error).lower()
    return ("could not select device driver" in text or "nvidia-container-cli" in text
            or "unknown or invalid runtime name: nvidia" in text)


def _remove_container(container, stop_timeout_s: int) -> None:
    """Stop (SIGTERM, SIGKILL after the timeout) and remove; quiet when it is already gone."""
    import docker.errors

    try:
        container.reload()
        if container.status in ("running", "restarting", "paused"):
            container.stop(timeout=stop_timeout_s)
    except docker.errors.NotFound:
        return
    except docker.errors.DockerException:
        pass
    try:
        container.remove(force=True)
    except docker.errors.NotFound:
        pass


class OnyxPipesDockerClient(PipesDockerClient):
    """PipesDockerClient that always removes its container and can fall back from a GPU request.

    ``run`` mirrors ``PipesDockerClient.run`` (same context injector, log message reader and
    ``_create_container``), with these differences: no implicit pull (a missing image is the caller's
    check), the container is removed in every case, a start refused for want of the NVIDIA runtime is
    retried without the device request when ``gpu_fallback`` (else ``GpuUnavailable``), and a non-zero
    exit raises ``DagsterPipesExecutionError`` (what ``ToolRunner.run`` turns into the tool's reason).
    """

    def __init__(self, *, docker_client=None, stop_timeout_s: int = 5, **kwargs):
        super().__init__(**kwargs)
        self._docker_client = docker_client
        self.stop_timeout_s = stop_timeout_s
        self.last_container_name: str | None = None
        self.used_gpu: bool | None = None

    def run(  # type: ignore[override]
        self,
        *,
        context,
        image: str,
        extras: Mapping[str, Any] | None = None,
        command: str | Sequence[str] | None = None,
        env: Mapping[str, str] | None = None,
        container_kwargs: Mapping[str, Any] | None = None,
        gpu_fallback: bool = False,
        registry: Mapping[str, str] | None = None,
    ) -> PipesClientCompletedInvocation:
        import docker.errors

        client = self._docker_client or docker_client()
        kwargs = dict(container_kwargs or {})
        with open_pipes_session(
            context=context,
            context_injector=self.context_injector,
            message_reader=self.message_reader,
            extras=extras,
        ) as session:
            def create(arguments):
                return self._create_container(
                    client=client, image=image, command=command, env=env,
                    open_pipes_session_env=session.get_bootstrap_env_vars(), container_kwargs=arguments)

            container = create(kwargs)
            self.last_container_name = container.name
            self.used_gpu = bool(kwargs.get("device_requests"))
            try:
                try:
                    container.start()
                except docker.errors.APIError as error:
                    if not (kwargs.get("device_requests") and _is_gpu_driver_error(error)):
                        raise
                    _remove_container(container, 0)
                    if not gpu_fallback:
                        raise GpuUnavailable(
                            description=f"{no_nvidia_message()} (Docker said: {short(error, 200)})"
                        ) from None
                    context.log.warning(
                        f"no NVIDIA runtime in Docker on this host: running {image} without a GPU "
                        "(gpu_policy=prefer)")
                    kwargs.pop("device_requests", None)
                    container = create(kwargs)
                    self.last_container_name = container.name
                    self.used_gpu = False
                    container.start()
                if isinstance(self.message_reader, PipesDockerLogsMessageReader):
                    self.message_reader.consume_docker_logs(container)
                result = container.wait()
                code = result.get("StatusCode")
                if code != 0:
                    reason = "killed (out of memory?)" if code == 137 else f"exit status {code}"
                    raise DagsterPipesExecutionError(f"container {container.name} ({image}) ended with {reason}")
            finally:
                self._dispose(container)
        return PipesClientCompletedInvocation(session)

    def _dispose(self, container) -> None:
        # Cleaning up must not itself be cut short by a second interrupt (the run being terminated
        # sends more than one): hold interrupts, then re-raise one that arrived meanwhile.
        interrupted = False
        with capture_interrupts():
            try:
                _remove_container(container, self.stop_timeout_s)
            finally:
                interrupted = check_captured_interrupt()
        if interrupted:
            raise DagsterExecutionInterruptedError()


def writable_by(path: Path, uid: int, gid: int) -> bool:
    """Whether uid:gid may create files in ``path`` (permission bits; root always may)."""
    if uid == 0:
        return True
    info = path.stat()
    mode = info.st_mode
    if info.st_uid == uid:
        return bool(mode & stat.S_IWUSR and mode & stat.S_IXUSR)
    if info.st_gid == gid:
        return bool(mode & stat.S_IWGRP and mode & stat.S_IXGRP)
    return bool(mode & stat.S_IWOTH and mode & stat.S_IXOTH)


def check_batch_dir(batch_dir: Path, uid: int, gid: int) -> None:
    """The batch folder, and the folders already in it, must be writable by the container's user."""
    if not batch_dir.is_dir():
        raise Failure(description=f"batch folder {batch_dir} does not exist")
    offenders = [batch_dir] if not writable_by(batch_dir, uid, gid) else []
    for child in sorted(batch_dir.iterdir()):
        if child.is_dir() and not child.is_symlink() and not writable_by(child, uid, gid):
            offenders.append(child)
    if offenders:
        first = offenders[0].stat()
        listed = ", ".join(str(path) for path in offenders[:4]) + (" ..." if len(offenders) > 4 else "")
        raise Failure(description=(
            f"batch folder not writable by the container user {uid}:{gid}: {listed} "
            f"(owner {first.st_uid}:{first.st_gid}, mode {stat.filemode(first.st_mode)}). The docker runner "
            f"runs tools as {uid}:{gid}: run the orchestrator as the folder's owner, `chown -R {uid}:{gid} "
            f"{batch_dir}`, or set ONYX_DOCKER_USER to the owner"))


def _label_value(value: object) -> str:
    return str(value)[:250]


def _name_part(value: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_.-]+", "-", value).strip("-.")[:40] or "x"


def _run_id(context) -> str:
    try:
        return context.run.run_id
    except Exception:
        return getattr(context, "run_id", "") or ""


def _step_labels(context, tool: str, batch_dir: Path) -> dict[str, str]:
    labels = {MANAGED_LABEL: "true", f"{LABEL_PREFIX}tool": tool, f"{LABEL_PREFIX}batch": batch_dir.name,
              f"{LABEL_PREFIX}run_id": _label_value(_run_id(context))}
    try:
        if context.has_partition_key:
            labels[f"{LABEL_PREFIX}partition"] = _label_value(context.partition_key)
    except Exception:
        pass
    try:
        labels[f"{LABEL_PREFIX}asset"] = _label_value(context.asset_key.to_user_string())
    except Exception:
        pass
    return labels


class DockerRunner(ToolRunner):
    """The production path: each tool in its own image, the batch folder mounted at /data."""

    image_prefix: str = Field("", description="registry prefix, e.g. 'ghcr.io/ORG/'")
    tag: str = Field("latest", description="image tag")
    user: str | None = Field(None, description="uid:gid the tools run as; None = the orchestrator's own")
    gpu_policy: GpuPolicy = Field(
        "prefer", description="GPU step without the NVIDIA runtime: 'require' fails, 'prefer' runs on the CPU")
    use_gpus: bool = Field(True, description="request GPUs for GPU steps at all (False: every step on the CPU)")
    gpu_device_ids: list[str] | None = Field(None, description="GPUs to expose (None = all)")
    network_mode: str = Field("none", description="container network; tools need none at run time")
    stop_timeout_s: int = Field(5, ge=0, le=60, description="grace between SIGTERM and SIGKILL on cancel")
    shm_size: str | None = Field("1g", description="/dev/shm size (PyTorch data loaders)")
    env: dict[str, str] = Field(default_factory=dict, description="extra environment for every tool")
    pull_missing: bool = Field(False, description="pull a missing image instead of failing")

    @classmethod
    def from_settings(cls, settings: OnyxSettings) -> DockerRunner:
        return cls(
            image_prefix=settings.image_prefix,
            tag=settings.image_tag,
            user=settings.docker_user,
            gpu_policy=settings.gpu_policy,
            use_gpus=settings.docker_gpus,
            network_mode=settings.docker_network,
            pull_missing=settings.docker_pull,
        )

    def image(self, tool: str) -> str:
        return image_name(tool, self.image_prefix, self.tag)

    def uid_gid(self) -> tuple[int, int]:
        if self.user:
            uid, _, gid = self.user.partition(":")
            return int(uid), int(gid or uid)
        return os.getuid(), os.getgid()

    def _ensure_image(self, client, tool: str, context) -> str:
        name = self.image(tool)
        if image_present(client, name):
            return name
        if self.pull_missing:
            context.log.info(f"pulling {name}")
            try:
                pull_image(client, name, out=context.log.info)
                return name
            except DockerProblem as error:
                raise Failure(description=f"{missing_image_message(name, tool)} (pull failed: {error})") from None
        raise Failure(description=missing_image_message(name, tool))

    def container_settings(self, context, *, tool: str, batch_dir: Path, inputs: Mapping[str, Path],
                           gpu: bool) -> tuple[dict[str, Any], dict[str, Any]]:
        """(container kwargs, extras) for one step: mounts, user, labels, GPU request."""
        import docker.types

        uid, gid = self.uid_gid()
        volumes: dict[str, dict[str, str]] = {str(batch_dir): {"bind": CONTAINER_DATA, "mode": "rw"}}
        container_inputs: dict[str, str] = {}
        for name, path in inputs.items():
            host = Path(path).resolve()
            if not host.exists():
                raise Failure(description=f"{tool}: input {name!r} {path} does not exist")
            inside = f"{CONTAINER_INPUTS}/{_name_part(name)}/{host.name}"
            volumes[str(host)] = {"bind": inside, "mode": "ro"}
            container_inputs[name] = inside
        kwargs: dict[str, Any] = {
            "volumes": volumes,
            "user": f"{uid}:{gid}",
            "init": True,
            "environment": {"HOME": "/tmp", **self.env},
            "labels": _step_labels(context, tool, batch_dir),
            "network_mode": self.network_mode,
            "working_dir": CONTAINER_DATA,
            "name": "onyx-{}-{}-{}-{}".format(
                tool, _name_part(batch_dir.name), (_run_id(context) or "x")[:8], secrets.token_hex(3)),
            "log_config": docker.types.LogConfig(type="json-file", config={"max-size": "100m"}),
        }
        if self.shm_size:
            kwargs["shm_size"] = self.shm_size
        if gpu and self.use_gpus:
            if self.gpu_device_ids:
                request = docker.types.DeviceRequest(device_ids=list(self.gpu_device_ids), capabilities=[["gpu"]])
            else:
                request = docker.types.DeviceRequest(count=-1, capabilities=[["gpu"]])
            kwargs["device_requests"] = [request]
        return kwargs, {"batch_dir": CONTAINER_DATA, "inputs": container_inputs}

    def launch(self, context, *, tool, batch_dir, params, inputs, gpu):
        batch_dir = Path(batch_dir).resolve()
        try:
            client = docker_client()
        except DockerProblem as error:
            raise Failure(description=f"{tool}: {error}") from None
        image = self._ensure_image(client, tool, context)
        uid, gid = self.uid_gid()
        check_batch_dir(batch_dir, uid, gid)
        kwargs, paths = self.container_settings(context, tool=tool, batch_dir=batch_dir, inputs=inputs, gpu=gpu)
        extras = {**params, **paths}
        pipes = OnyxPipesDockerClient(docker_client=client, stop_timeout_s=self.stop_timeout_s)
        context.log.info(f"{tool}: running {image} as {uid}:{gid}, {batch_dir} at {CONTAINER_DATA}"
                         + (" requesting GPUs" if kwargs.get("device_requests") else ""))
        try:
            return pipes.run(context=context, image=image, extras=extras, container_kwargs=kwargs,
                             gpu_fallback=self.gpu_policy == "prefer")
        finally:
            client.close()


def onyx_containers(client=None, *, run_id: str | None = None, include_running: bool = True) -> list:
    """The containers the docker runner started (label onyx.managed=true), optionally of one run."""
    client = client or docker_client()
    filters = {"label": [f"{MANAGED_LABEL}=true"] + ([f"{LABEL_PREFIX}run_id={run_id}"] if run_id else [])}
    containers = client.containers.list(all=True, filters=filters, ignore_removed=True)
    if not include_running:
        containers = [c for c in containers if c.status not in ("running", "restarting")]
    return containers


def remove_leftover_containers(client=None, *, instance=None, run_id: str | None = None,
                               stop_timeout_s: int = 5) -> list[str]:
    """Stop and remove the onyx-labelled containers a crashed or killed orchestrator left behind.

    With ``instance`` (a DagsterInstance), containers of runs that are still in progress there are
    kept; without it every onyx container goes (or those of ``run_id``). Returns the names removed.
    """
    from dagster import DagsterRunStatus

    client = client or docker_client()
    alive = {DagsterRunStatus.STARTED, DagsterRunStatus.STARTING, DagsterRunStatus.QUEUED,
             DagsterRunStatus.NOT_STARTED, DagsterRunStatus.CANCELING}
    removed = []
    for container in onyx_containers(client, run_id=run_id):
        owner = (container.labels or {}).get(f"{LABEL_PREFIX}run_id")
        if instance is not None and owner:
            run = instance.get_run_by_id(owner)
            if run is not None and run.status in alive:
                continue
        _remove_container(container, stop_timeout_s)
        removed.append(container.name)
    return removed
