"""The k8s runner: each step's tool in its own pod, through ``dagster_k8s.PipesK8sClient``.

Phase 3 (deploy/k8s). The same images as the docker runner (``{image_prefix}onyx-<tool>:{tag}``,
entrypoint ``python -m onyx_<tool>``); what a step's pod gets:

- the shared data volume (a ReadWriteMany PVC, ``data_claim``) that Dagster's own pods mount at
  ``data_mount`` (ONYX_DATA lives under it, e.g. ``/onyx/data``). The tool pod mounts only the
  batch folder of it, read-write at ``/data`` (``subPath``), and each input file read-only at
  ``/inputs/<name>/<filename>``; inputs must therefore be on that volume (the drop folder is);
- ``nvidia.com/gpu: <gpus>`` in its limits and the GPU node selector/tolerations when the step
  needs a GPU (sparse_model, reconstruction, masks); CPU steps get the CPU selector, if any;
- ``runAsUser``/``runAsGroup``/``fsGroup`` (the volume's owner), ``HOME=/tmp``, labels
  ``onyx/tool``, ``onyx/batch``, ``onyx/run-id`` (so ``kubectl delete pod -l onyx/managed=true``
  finds leftovers), ``restartPolicy: Never``; the pod is deleted when the step ends, however it ends.

A failed pod (tool exit status != 0, OOM kill, eviction) becomes ``DagsterPipesExecutionError``,
which ``ToolRunner.run`` turns into the tool's own one-line reason read from the batch folder.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from dagster import Failure
from pydantic import Field

from ..dagster_internals import DagsterPipesExecutionError
from ..install.docker import image_name
from ..settings import OnyxSettings
from .runners import ToolRunner

CONTAINER_DATA = "/data"
CONTAINER_INPUTS = "/inputs"
DATA_VOLUME = "onyx-data"
GPU_RESOURCE = "nvidia.com/gpu"


def _label(value: object) -> str:
    """A valid label value: <= 63 characters of [A-Za-z0-9_.-], alphanumeric at both ends."""
    text = re.sub(r"[^A-Za-z0-9_.-]+", "-", str(value))[:63]
    return text.strip("-_.") or "x"


def _name_part(value: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_.-]+", "-", value).strip("-.")[:40] or "x"


class K8sRunner(ToolRunner):
    """Each tool in a pod on the cluster; the batch folder from the shared PVC at /data."""

    image_prefix: str = Field("", description="registry prefix, e.g. 'ghcr.io/ORG/'")
    tag: str = Field("latest", description="image tag")
    namespace: str | None = Field(None, description="None: the namespace this pod runs in")
    data_claim: str = Field("onyx-data", description="the ReadWriteMany PVC holding ONYX_DATA")
    data_mount: str = Field("/onyx", description="where Dagster's pods mount data_claim")
    gpus: int = Field(1, ge=0, description="nvidia.com/gpu limit of a GPU step (0: none)")
    gpu_node_selector: dict[str, str] = Field(
        default_factory=lambda: {"onyx/gpu": "true"}, description="nodeSelector of GPU steps")
    gpu_tolerations: list[dict[str, Any]] = Field(
        default_factory=lambda: [{"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}])
    cpu_node_selector: dict[str, str] = Field(default_factory=dict, description="nodeSelector of CPU steps")
    gpu_resources: dict[str, dict[str, str]] = Field(
        default_factory=lambda: {"requests": {"cpu": "4", "memory": "16Gi"}, "limits": {"memory": "48Gi"}})
    cpu_resources: dict[str, dict[str, str]] = Field(
        default_factory=lambda: {"requests": {"cpu": "2", "memory": "4Gi"}, "limits": {"memory": "16Gi"}})
    run_as_user: int | None = Field(1000, description="uid of the tools (owner of the data volume)")
    run_as_group: int | None = Field(1000)
    image_pull_policy: str = Field("IfNotPresent")
    image_pull_secrets: list[str] = Field(default_factory=list)
    service_account: str | None = Field(None, description="serviceAccountName of tool pods (none needed)")
    shm_size: str | None = Field("1Gi", description="/dev/shm (memory emptyDir) for PyTorch data loaders")
    env: dict[str, str] = Field(default_factory=dict, description="extra environment for every tool")
    pod_wait_timeout_s: float = Field(24 * 3600, gt=0)
    kubeconfig_file: str | None = Field(None, description="None: in-cluster config (else ~/.kube/config)")

    @classmethod
    def from_settings(cls, settings: OnyxSettings) -> K8sRunner:
        pairs = [item.split("=", 1) for item in settings.k8s_gpu_node_selector.split(",") if "=" in item]
        uid, _, gid = settings.k8s_run_as.partition(":")
        return cls(
            image_prefix=settings.image_prefix,
            tag=settings.image_tag,
            namespace=settings.k8s_namespace,
            data_claim=settings.k8s_data_claim,
            data_mount=settings.k8s_data_mount,
            gpus=settings.k8s_gpus,
            gpu_node_selector={key.strip(): value.strip() for key, value in pairs},
            run_as_user=int(uid),
            run_as_group=int(gid or uid),
            image_pull_secrets=[s.strip() for s in (settings.k8s_pull_secrets or "").split(",") if s.strip()],
        )

    def image(self, tool: str) -> str:
        return image_name(tool, self.image_prefix, self.tag)

    def volume_path(self, path: Path, what: str) -> str:
        """``path`` (as Dagster's pods see it) relative to the data volume: the pod's subPath."""
        mount = PurePosixPath(os.path.normpath(self.data_mount))
        resolved = PurePosixPath(os.path.normpath(os.path.abspath(str(path))))
        try:
            relative = resolved.relative_to(mount)
        except ValueError:
            raise Failure(description=(
                f"{what} {path} is not on the shared data volume {self.data_claim} (mounted at {mount}): "
                f"tool pods can only see that volume; set ONYX_DATA under {mount}, and put input videos "
                f"there (e.g. the drop folder {mount}/drop)")) from None
        return str(relative)

    def pod_settings(self, context, *, tool: str, batch_dir: Path, inputs: Mapping[str, Path],
                     gpu: bool) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        """(base_pod_meta, base_pod_spec, extras paths) for one step."""
        mounts = [{"name": DATA_VOLUME, "mountPath": CONTAINER_DATA,
                   "subPath": self.volume_path(batch_dir, "batch folder")}]
        container_inputs: dict[str, str] = {}
        for name, path in inputs.items():
            inside = f"{CONTAINER_INPUTS}/{_name_part(name)}/{Path(path).name}"
            mounts.append({"name": DATA_VOLUME, "mountPath": inside, "readOnly": True,
                           "subPath": self.volume_path(Path(path), f"input {name!r}")})
            container_inputs[name] = inside
        volumes: list[dict[str, Any]] = [
            {"name": DATA_VOLUME, "persistentVolumeClaim": {"claimName": self.data_claim}}]
        if self.shm_size:
            volumes.append({"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": self.shm_size}})
            mounts.append({"name": "dshm", "mountPath": "/dev/shm"})

        use_gpu = gpu and self.gpus > 0
        resources = {section: dict(values) for section, values in
                     (self.gpu_resources if use_gpu else self.cpu_resources).items()}
        if use_gpu:
            resources.setdefault("limits", {})[GPU_RESOURCE] = str(self.gpus)
        container: dict[str, Any] = {
            "name": "tool",
            "imagePullPolicy": self.image_pull_policy,
            "workingDir": CONTAINER_DATA,
            "volumeMounts": mounts,
            "resources": resources,
            "securityContext": {"allowPrivilegeEscalation": False},
        }
        spec: dict[str, Any] = {
            "containers": [container],
            "volumes": volumes,
            "restartPolicy": "Never",
            "enableServiceLinks": False,
        }
        security: dict[str, Any] = {}
        if self.run_as_user is not None:
            security.update(runAsUser=self.run_as_user, runAsNonRoot=self.run_as_user != 0)
        if self.run_as_group is not None:
            security.update(runAsGroup=self.run_as_group, fsGroup=self.run_as_group)
        if security:
            spec["securityContext"] = security
        selector = self.gpu_node_selector if use_gpu else self.cpu_node_selector
        if selector:
            spec["nodeSelector"] = dict(selector)
        if use_gpu and self.gpu_tolerations:
            spec["tolerations"] = [dict(item) for item in self.gpu_tolerations]
        if self.image_pull_secrets:
            spec["imagePullSecrets"] = [{"name": name} for name in self.image_pull_secrets]
        if self.service_account:
            spec["serviceAccountName"] = self.service_account
        else:
            spec["automountServiceAccountToken"] = False

        labels = {"onyx/managed": "true", "onyx/tool": _label(tool), "onyx/batch": _label(batch_dir.name),
                  "onyx/gpu": "true" if use_gpu else "false"}
        run_id = getattr(getattr(context, "run", None), "run_id", None) or getattr(context, "run_id", None)
        if run_id:
            labels["onyx/run-id"] = _label(run_id)
        meta = {"labels": labels, "annotations": {"onyx/batch-dir": str(batch_dir)}}
        return meta, spec, {"batch_dir": CONTAINER_DATA, "inputs": container_inputs}

    def pipes_client(self):
        from dagster_k8s import PipesK8sClient

        return PipesK8sClient(kubeconfig_file=self.kubeconfig_file,
                              load_incluster_config=None if self.kubeconfig_file is None else False)

    def preflight(self, context, batch_dir):
        """Nothing to ask from here: the cluster schedules the GPUs (node selector), pulls the images and
        mounts the data volume in the pod; a missing one is the pod's own failure, with its reason."""

    def launch(self, context, *, tool, batch_dir, params, inputs, gpu):
        from dagster_k8s.client import DagsterK8sError

        batch_dir = Path(batch_dir)
        meta, spec, paths = self.pod_settings(context, tool=tool, batch_dir=batch_dir, inputs=inputs, gpu=gpu)
        image = self.image(tool)
        context.log.info(f"{tool}: running {image} in a pod, {batch_dir} ({self.data_claim}) at {CONTAINER_DATA}"
                         + (f" with {self.gpus} GPU(s)" if GPU_RESOURCE in spec["containers"][0]["resources"].get(
                             "limits", {}) else ""))
        try:
            return self.pipes_client().run(
                context=context,
                image=image,
                command=["python", "-m", f"onyx_{tool}"],
                namespace=self.namespace,
                env={"HOME": "/tmp", **self.env},
                extras={**params, **paths},
                base_pod_meta=meta,
                base_pod_spec=spec,
                pod_wait_timeout=self.pod_wait_timeout_s,
            )
        except DagsterK8sError as error:  # the pod failed, was evicted or killed
            raise DagsterPipesExecutionError(f"pod of {tool} ({image}) failed: {error}") from error
