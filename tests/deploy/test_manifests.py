"""The deployment files, checked as far as this machine allows (no cluster, no Helm, no Compose v2).

- deploy/phase2/dagster.yaml against Dagster's instance schema, and the Postgres URL it makes
  resolved by SQLAlchemy to the psycopg2 driver;
- deploy/phase2/celery.yaml against the dagster-celery worker's schema;
- the Compose files: parsed, every variable they use documented in env.example, shared storage at
  the same path inside and out;
- deploy/k8s/onyx.yaml: every object through the kubernetes client's models (unknown fields fail);
- deploy/k8s/values.yaml: the keys Onyx sets exist in the dagster chart's schema (user deployments),
  the Kubernetes fragments in it validate as kubernetes models, and the env it gives the user code
  builds the k8s runner that mounts the same PVC.
Not run here: `helm template`/`helm install`, `kubectl apply`, `docker compose up` (none installed or
no cluster); the Helm values are not checked against the chart's full values.schema.json.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from onyx_dagster.settings import OnyxSettings

REPO = Path(__file__).resolve().parents[2]
PHASE2 = REPO / "deploy" / "phase2"
K8S = REPO / "deploy" / "k8s"

ENV = {
    "DAGSTER_PG_HOST": "db.internal", "DAGSTER_PG_PORT": "5432", "DAGSTER_PG_USER": "dagster",
    "DAGSTER_PG_PASSWORD": "secret", "DAGSTER_PG_DB": "dagster",
    "ONYX_DAGSTER_SHARED": "/srv/onyx/dagster/storage", "ONYX_DAGSTER_LOGS": "/srv/onyx/dagster/compute-logs",
    "ONYX_CELERY_BROKER": "redis://:pw@control:6379/0", "ONYX_CELERY_BACKEND": "redis://:pw@control:6379/1",
}


@pytest.fixture
def env(monkeypatch):
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)


def test_phase2_instance_config_validates_and_names_psycopg2(env, tmp_path):
    from dagster._core.instance.config import dagster_instance_config
    from dagster_postgres.utils import pg_url_from_config
    from sqlalchemy.engine import make_url

    (tmp_path / "dagster.yaml").write_text((PHASE2 / "dagster.yaml").read_text())
    config, _custom = dagster_instance_config(str(tmp_path))
    storage = config["storage"]["postgres"]
    assert storage["postgres_db"]["scheme"] == "postgresql+psycopg2"
    url = pg_url_from_config({"postgres_db": {
        "username": ENV["DAGSTER_PG_USER"], "password": ENV["DAGSTER_PG_PASSWORD"], "hostname": ENV["DAGSTER_PG_HOST"],
        "db_name": ENV["DAGSTER_PG_DB"], "port": 5432, "scheme": storage["postgres_db"]["scheme"]}})
    assert make_url(url).get_dialect().driver == "psycopg2"
    assert config["concurrency"]["pools"]["default_limit"] >= 1
    assert config["run_launcher"]["class"] == "DefaultRunLauncher"


def test_celery_yaml_is_what_the_workers_accept(env):
    from dagster_celery.cli import get_validated_config

    from onyx_dagster.executors import SHARED_CELERY_SETTINGS

    config = get_validated_config(str(PHASE2 / "celery.yaml"))
    assert config["broker"] == ENV["ONYX_CELERY_BROKER"] and config["backend"] == ENV["ONYX_CELERY_BACKEND"]
    # the workers must track started tasks, or the executor cannot tell a lost worker
    for key, value in SHARED_CELERY_SETTINGS.items():
        assert config["config_source"][key] == value, key


def test_executor_from_settings():
    from onyx_dagster.executors import (
        batch_of,
        executor_from_settings,
        rendezvous,
        route_run,
    )
    from onyx_dagster.settings import OnyxSettings, SettingsError

    def executor(env):
        return executor_from_settings(OnyxSettings.from_env(env))

    assert executor({}).name == executor({"ONYX_EXECUTOR": "in_process"}).name == "in_process"
    assert executor({"ONYX_EXECUTOR": "multiprocess"}).name == "multiprocess"
    with pytest.raises(SettingsError, match="ONYX_CELERY_BROKER"):
        executor({"ONYX_EXECUTOR": "celery"})
    with pytest.raises(SettingsError, match="ONYX_EXECUTOR: got 'spark'"):
        executor({"ONYX_EXECUTOR": "spark"})
    assert executor({"ONYX_EXECUTOR": "celery", "ONYX_CELERY_BROKER": "redis://x"}).name == "onyx_celery"
    queues = ["gpu-a", "gpu-b", "gpu-c"]
    assert route_run({"onyx/queue": "gpu-c"}, "r", queues, None)[0] == "gpu-c"
    assert route_run({}, "r", [], None)[0] == "dagster"
    assert batch_of({"dagster/partition": "batch=walk|recipe=gaussian-proto"}, "r") == "walk"
    # rendezvous: removing a queue moves only the keys that were on it
    keys = [f"walk-{i}" for i in range(60)]
    before = {key: rendezvous(key, queues) for key in keys}
    after = {key: rendezvous(key, ["gpu-a", "gpu-b"]) for key in keys}
    assert {key for key in keys if before[key] != after[key]} == {key for key in keys if before[key] == "gpu-c"}
    assert route_run({"dagster/partition": "walk-1"}, "r", queues, {"gpu-a"})[0] == "gpu-a"


def _compose(name):
    return yaml.safe_load((PHASE2 / name).read_text())


def _variables(text: str) -> set[str]:
    return set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*)", text))


def test_compose_files():
    documented = {line.split("=", 1)[0] for line in (PHASE2 / "env.example").read_text().splitlines()
                  if "=" in line and not line.startswith("#")}
    control = _compose("control-plane.compose.yaml")
    assert {"postgres", "redis", "user-code", "webserver", "daemon"} <= set(control["services"])
    worker = _compose("worker.compose.yaml")
    for name in ("control-plane.compose.yaml", "worker.compose.yaml"):
        used = _variables((PHASE2 / name).read_text()) - {"DOCKER_GID"}
        assert used <= documented, f"{name}: {used - documented} not in env.example"
    for service in ("user-code", "webserver", "daemon"):
        volumes = control["services"][service]["volumes"]
        assert "${ONYX_SHARED:-/srv/onyx}:${ONYX_SHARED:-/srv/onyx}" in volumes  # same path everywhere
    command = worker["services"]["worker"]["command"]
    assert command[:3] == ["dagster-celery", "worker", "start"] and "--concurrency=1" in command
    assert "/var/run/docker.sock:/var/run/docker.sock" in worker["services"]["worker"]["volumes"]
    workspace = yaml.safe_load((PHASE2 / "workspace.yaml").read_text())
    assert workspace["load_from"][0]["grpc_server"]["host"] == "user-code"


def test_k8s_manifests_are_valid_kubernetes_objects():
    import kubernetes.client as k
    from dagster_k8s.models import k8s_model_from_dict

    kinds = {"PersistentVolumeClaim": k.V1PersistentVolumeClaim, "Role": k.V1Role, "RoleBinding": k.V1RoleBinding,
             "Job": k.V1Job}
    documents = [doc for doc in yaml.safe_load_all((K8S / "onyx.yaml").read_text()) if doc]
    assert {doc["kind"] for doc in documents} == set(kinds)
    for doc in documents:
        model = k8s_model_from_dict(kinds[doc["kind"]], _snake(doc))
        assert model.metadata.name
    pvc = next(doc for doc in documents if doc["kind"] == "PersistentVolumeClaim")
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]
    role = next(doc for doc in documents if doc["kind"] == "Role")
    pods = next(rule for rule in role["rules"] if rule["resources"] == ["pods"])
    assert {"create", "get", "watch", "delete"} <= set(pods["verbs"])


def _snake(value):
    """camelCase keys -> snake_case, as kubernetes' python models name them (not inside labels)."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            snake = re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower() if re.fullmatch(r"[a-zA-Z]+", key) else key
            out[snake] = item if key in ("labels", "annotations", "matchLabels", "nodeSelector") else _snake(item)
        return out
    if isinstance(value, list):
        return [_snake(item) for item in value]
    return value


# The UserDeployment fields of the dagster chart's schema (helm/dagster/schema, 1.13 line).
CHART_USER_DEPLOYMENT_KEYS = {
    "name", "image", "port", "dagsterApiGrpcArgs", "codeServerArgs", "includeConfigInLaunchedRuns", "env",
    "envConfigMaps", "envSecrets", "annotations", "nodeSelector", "affinity", "tolerations", "podSecurityContext",
    "securityContext", "resources", "livenessProbe", "readinessProbe", "startupProbe", "labels", "volumeMounts",
    "volumes", "schedulerName"}


def test_helm_values():
    import kubernetes.client as k
    from dagster_k8s.models import k8s_model_from_dict

    from onyx_dagster.resources.k8s_runner import GPU_RESOURCE, K8sRunner

    values = yaml.safe_load((K8S / "values.yaml").read_text())
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    assert values["postgresql"]["postgresqlScheme"] == "postgresql+psycopg2"
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    assert set(deployment) <= CHART_USER_DEPLOYMENT_KEYS, set(deployment) - CHART_USER_DEPLOYMENT_KEYS
    assert deployment["includeConfigInLaunchedRuns"]["enabled"] is True
    for volume in deployment["volumes"] + values["dagsterWebserver"]["volumes"]:
        k8s_model_from_dict(k.V1Volume, _snake(volume))
    for mount in deployment["volumeMounts"] + values["dagsterWebserver"]["volumeMounts"]:
        k8s_model_from_dict(k.V1VolumeMount, _snake(mount))
    k8s_model_from_dict(k.V1ResourceRequirements, deployment["resources"])
    k8s_model_from_dict(k.V1PodSecurityContext, _snake(deployment["podSecurityContext"]))
    run_config = values["runLauncher"]["config"]["k8sRunLauncher"]["runK8sConfig"]
    k8s_model_from_dict(k.V1ResourceRequirements, run_config["containerConfig"]["resources"])
    k8s_model_from_dict(k.V1PodSecurityContext, _snake(run_config["podSpecConfig"]["securityContext"]))

    env = {item["name"]: item["value"] for item in deployment["env"]}
    assert env["ONYX_RUNNER"] == "k8s"
    runner = K8sRunner.from_settings(OnyxSettings.from_env(env))
    mount = next(m for m in deployment["volumeMounts"] if m["name"] == "onyx-data")
    claim = next(v for v in deployment["volumes"] if v["name"] == "onyx-data")["persistentVolumeClaim"]["claimName"]
    assert (runner.data_mount, runner.data_claim) == (mount["mountPath"], claim)
    assert env["ONYX_DATA"].startswith(runner.data_mount + "/")
    pvc = next(doc for doc in yaml.safe_load_all((K8S / "onyx.yaml").read_text())
               if doc and doc["kind"] == "PersistentVolumeClaim")
    assert pvc["metadata"]["name"] == claim
    assert runner.gpus == 1 and runner.gpu_node_selector == {"onyx/gpu": "true"}
    assert GPU_RESOURCE == "nvidia.com/gpu"
