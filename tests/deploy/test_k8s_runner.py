"""The k8s runner without a cluster: the pod it asks for (through dagster_k8s's own pod builder and the
kubernetes client's models, which reject unknown fields) and how a failed pod reaches the user.

Not run here: a pod on a real cluster (no Kubernetes, no GPU nodes on this machine)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from components import require_module

require_module("dagster_k8s")

from dagster import Failure  # noqa: E402
from dagster_k8s.pipes import build_pod_body  # noqa: E402

from onyx_dagster.resources.k8s_runner import GPU_RESOURCE, K8sRunner  # noqa: E402


class Log:
    def __init__(self):
        self.lines = []

    def info(self, text):
        self.lines.append(text)

    warning = info


def context():
    return SimpleNamespace(run=SimpleNamespace(run_id="0123456789abcdef0123"), run_id="0123456789abcdef0123",
                           log=Log())


def pod(runner, *, tool="sfm", gpu=True, batch="/onyx/data/walk-3f9a1c2e", inputs=None):
    meta, spec, paths = runner.pod_settings(context(), tool=tool, batch_dir=Path(batch), inputs=inputs or {}, gpu=gpu)
    body = build_pod_body(pod_name="dagster-x-sfm-1", image=runner.image(tool),
                          command=["python", "-m", f"onyx_{tool}"], env_vars={"DAGSTER_PIPES_CONTEXT": "x"},
                          base_pod_meta=meta, base_pod_spec=spec)
    return body, paths


def test_gpu_step_pod_mounts_the_batch_and_asks_for_a_gpu():
    runner = K8sRunner(image_prefix="ghcr.io/acme/", tag="1.2")
    body, paths = pod(runner, inputs={"video": Path("/onyx/drop/walk.mp4")})
    container = body.spec.containers[0]
    assert container.image == "ghcr.io/acme/onyx-sfm:1.2"
    assert container.command == ["python", "-m", "onyx_sfm"]
    assert container.resources.limits[GPU_RESOURCE] == "1"
    assert body.spec.node_selector == {"onyx/gpu": "true"}
    assert body.spec.tolerations[0].key == GPU_RESOURCE
    assert body.spec.restart_policy == "Never"
    mounts = {mount.mount_path: mount for mount in container.volume_mounts}
    assert mounts["/data"].sub_path == "data/walk-3f9a1c2e" and not mounts["/data"].read_only
    assert mounts["/inputs/video/walk.mp4"].sub_path == "drop/walk.mp4" and mounts["/inputs/video/walk.mp4"].read_only
    assert body.spec.volumes[0].persistent_volume_claim.claim_name == "onyx-data"
    assert body.spec.security_context.run_as_user == 1000 and body.spec.security_context.fs_group == 1000
    assert body.metadata.labels["onyx/tool"] == "sfm" and body.metadata.labels["onyx/batch"] == "walk-3f9a1c2e"
    assert paths == {"batch_dir": "/data", "inputs": {"video": "/inputs/video/walk.mp4"}}


def test_cpu_step_and_gpus_off_get_no_gpu():
    body, _ = pod(K8sRunner(), tool="ingest", gpu=False)
    limits = body.spec.containers[0].resources.limits or {}
    assert GPU_RESOURCE not in limits and body.spec.node_selector is None and body.spec.tolerations is None
    body, _ = pod(K8sRunner(gpus=0), gpu=True)
    assert GPU_RESOURCE not in (body.spec.containers[0].resources.limits or {})


def test_paths_off_the_data_volume_are_refused_with_the_fix():
    with pytest.raises(Failure, match="not on the shared data volume"):
        pod(K8sRunner(), batch="/elsewhere/walk")
    with pytest.raises(Failure, match="input 'video'"):
        pod(K8sRunner(), inputs={"video": Path("/home/me/walk.mp4")})


def test_from_settings():
    from onyx_dagster.settings import OnyxSettings

    runner = K8sRunner.from_settings(OnyxSettings.from_env({"ONYX_IMAGE_PREFIX": "reg.local/", "ONYX_IMAGE_TAG": "7",
                                 "ONYX_K8S_NAMESPACE": "onyx", "ONYX_K8S_DATA_CLAIM": "shared",
                                 "ONYX_K8S_DATA_MOUNT": "/mnt/o", "ONYX_K8S_GPUS": "2",
                                 "ONYX_K8S_GPU_NODE_SELECTOR": "nvidia.com/gpu.present=true",
                                 "ONYX_K8S_RUN_AS": "1001:1002"}))
    assert (runner.image("sfm"), runner.namespace, runner.data_claim, runner.gpus) == \
        ("reg.local/onyx-sfm:7", "onyx", "shared", 2)
    assert runner.gpu_node_selector == {"nvidia.com/gpu.present": "true"}
    assert (runner.run_as_user, runner.run_as_group) == (1001, 1002)


def test_a_failed_pod_becomes_the_tools_reason(tmp_path, monkeypatch):
    from dagster_k8s.client import DagsterK8sError


    mount = tmp_path / "onyx"
    batch = mount / "data" / "walk"
    (batch / "logs").mkdir(parents=True)
    calls = {}

    class FakeClient:
        def run(self, **kwargs):
            calls.update(kwargs)
            raise DagsterK8sError('Pod "dagster-x" did not complete successfully')

    runner = K8sRunner(data_mount=str(mount))
    monkeypatch.setattr(K8sRunner, "pipes_client", lambda self: FakeClient())
    with pytest.raises(Failure) as raised:
        runner.run(context(), tool="sfm", batch_dir=batch, params={"mapper": "incremental"}, gpu=True)
    assert raised.value.description.startswith("sfm failed:")
    assert calls["image"] == "onyx-sfm:latest" and calls["extras"]["batch_dir"] == "/data"
    assert calls["extras"]["mapper"] == "incremental" and calls["env"]["HOME"] == "/tmp"
    assert calls["base_pod_spec"]["containers"][0]["resources"]["limits"][GPU_RESOURCE] == "1"
