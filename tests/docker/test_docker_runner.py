"""The docker runner with a real dockerd: the container contract, cleanup, cancellation, bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from components import require
from docker_helpers import (
    PROBE_TAG,
    containers_of_batch,
    failure_text,
    metadata,
    run_step,
    wait_for,
)

from onyx_dagster import install
from onyx_dagster.resources.docker_runner import (
    DockerRunner,
    remove_leftover_containers,
)

pytestmark = pytest.mark.docker
HERE = Path(__file__).resolve().parent


def test_tool_sees_the_batch_at_data_inputs_read_only_as_the_caller(onyx_images, docker_daemon, batch_dir, tmp_path):
    video = tmp_path / "clip.bin"
    video.write_bytes(b"x" * 1234)
    result = run_step(DockerRunner(tag=PROBE_TAG), batch_dir, params={"write": "hello.txt"},
                      inputs={"video": video})
    assert result.success, failure_text(result)
    seen = metadata(result, "probe_step")
    assert seen["batch_dir"] == "/data"
    assert json.loads(seen["inputs"]) == {"video": "/inputs/video/clip.bin"}
    assert json.loads(seen["input_sizes"]) == {"video": 1234}
    assert (seen["uid"], seen["gid"]) == (os.getuid(), os.getgid())
    assert seen["home"] == "/tmp"
    assert "init" in seen["pid1"]                    # docker-init (tini) is PID 1, not the tool
    assert seen["network"] is False                  # no network at run time
    written = batch_dir / "hello.txt"
    assert written.read_text() == "written by the probe\n"
    assert written.stat().st_uid == os.getuid()
    assert (batch_dir / "logs" / "probe.log").is_file()
    assert containers_of_batch(docker_daemon, batch_dir.name) == []   # removed after the step


def test_a_failing_tool_gives_its_own_reason_and_its_container_goes(onyx_images, docker_daemon, batch_dir):
    result = run_step(DockerRunner(tag=PROBE_TAG), batch_dir,
                      params={"fail": "input /inputs/video/x.mp4 is not a readable video"})
    assert not result.success
    assert "probe failed: input /inputs/video/x.mp4 is not a readable video" in failure_text(result)
    assert containers_of_batch(docker_daemon, batch_dir.name) == []


def test_missing_image_says_how_to_install(docker_daemon, batch_dir):
    result = run_step(DockerRunner(tag="never-built"), batch_dir)
    text = failure_text(result)
    assert not result.success
    assert "onyx-probe:never-built is not installed" in text
    assert "onyx install --build --tools probe" in text and "ONYX_IMAGE_PREFIX" in text


def test_daemon_not_running(monkeypatch, batch_dir, tmp_path):
    dead = tmp_path / "dead.sock"
    monkeypatch.setenv("DOCKER_HOST", f"unix://{dead}")
    result = run_step(DockerRunner(tag=PROBE_TAG), batch_dir)
    text = failure_text(result)
    assert not result.success
    assert f"the Docker daemon at unix://{dead} is not running" in text
    assert "start-dockerd.sh" in text and "ONYX_RUNNER=local" in text


def test_batch_folder_not_writable_by_the_container_user(onyx_images, docker_daemon, batch_dir):
    other = "4242:4242" if os.getuid() != 4242 else "4343:4343"
    batch_dir.chmod(0o755)
    result = run_step(DockerRunner(tag=PROBE_TAG, user=other), batch_dir)
    text = failure_text(result)
    assert not result.success
    assert f"batch folder not writable by the container user {other}" in text
    assert "chown -R" in text
    assert containers_of_batch(docker_daemon, batch_dir.name) == []  # refused before any container
    # Writable for that user: the tool runs as that user and writes.
    batch_dir.chmod(0o777)
    result = run_step(DockerRunner(tag=PROBE_TAG, user=other), batch_dir)
    assert result.success, failure_text(result)
    assert (batch_dir / "probe.txt").stat().st_uid == int(other.split(":")[0])


def test_gpu_step_without_nvidia_runtime_fails_when_required(onyx_images, docker_daemon, batch_dir):
    require("no-nvidia-runtime", not install.has_nvidia_runtime(docker_daemon), "this host has the NVIDIA runtime")
    result = run_step(DockerRunner(tag=PROBE_TAG, gpu_policy="require"), batch_dir, gpu=True)
    text = failure_text(result)
    assert not result.success
    assert "no NVIDIA runtime in Docker" in text and "nvidia-container-toolkit" in text
    assert containers_of_batch(docker_daemon, batch_dir.name) == []


def test_gpu_step_without_nvidia_runtime_runs_on_cpu_when_preferred(onyx_images, docker_daemon, batch_dir):
    require("no-nvidia-runtime", not install.has_nvidia_runtime(docker_daemon), "this host has the NVIDIA runtime")
    from dagster import DagsterInstance

    instance = DagsterInstance.ephemeral()
    result = run_step(DockerRunner(tag=PROBE_TAG, gpu_policy="prefer"), batch_dir, gpu=True, instance=instance)
    assert result.success, failure_text(result)
    logs = [entry.user_message for entry in instance.all_logs(result.run_id)]
    assert any("running onyx-probe:test without a GPU" in m for m in logs)
    assert containers_of_batch(docker_daemon, batch_dir.name) == []


def start_orchestrator(batch_dir: Path, *extra: str, cli: bool = False) -> subprocess.Popen:
    env = {**os.environ, "ONYX_TEST_BATCH": str(batch_dir),
           "PYTHONPATH": os.pathsep.join([str(HERE.parents[1]), os.environ.get("PYTHONPATH", "")])}
    if cli:
        home = batch_dir.parent / "dagster-home"
        home.mkdir(exist_ok=True)
        env["DAGSTER_HOME"] = str(home)
        command = [str(Path(sys.executable).with_name("dagster")), "asset", "materialize",
                   "-f", str(HERE / "cancel_job.py"), "--select", "long_step"]
    else:
        command = [sys.executable, str(HERE / "cancel_job.py"), str(batch_dir), *extra]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            cwd=batch_dir.parent)


def running_container(client, batch_name):
    found = containers_of_batch(client, batch_name)
    return found[0] if found and found[0].status == "running" else None


@pytest.mark.parametrize("signum,cli", [(signal.SIGINT, False), (signal.SIGTERM, False), (signal.SIGINT, True)],
                         ids=["SIGINT", "SIGTERM", "dagster-cli-SIGINT"])
def test_cancelling_a_run_stops_its_container_within_15_s(onyx_images, docker_daemon, batch_dir, signum, cli):
    """Dagster cancels a step by interrupting its process (SIGINT; the run worker maps SIGTERM to it).

    With the Dagster CLI the step runs in a child process of the multiprocess executor: only the
    parent is signalled, as when a person presses Ctrl-C or the run is terminated."""
    process = start_orchestrator(batch_dir, "--dagster-signals", cli=cli)
    try:
        container = wait_for(lambda: running_container(docker_daemon, batch_dir.name), timeout=90)
        assert container, f"the step's container never ran:\n{process.stdout.read() if process.poll() is not None else ''}"
        time.sleep(2)  # well into the step
        process.send_signal(signum)
        cancelled = time.monotonic()
        gone = wait_for(lambda: not containers_of_batch(docker_daemon, batch_dir.name), timeout=20)
        elapsed = time.monotonic() - cancelled
        assert gone and elapsed < 15, f"container still there {elapsed:.1f} s after {signum.name}"
        assert process.wait(timeout=60) is not None
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_leftovers_of_a_killed_orchestrator_are_found_and_removed(onyx_images, docker_daemon, batch_dir):
    from dagster import DagsterInstance

    process = start_orchestrator(batch_dir)
    try:
        container = wait_for(lambda: running_container(docker_daemon, batch_dir.name), timeout=90)
        assert container
        process.kill()              # a crash: no cleanup runs
        process.wait(timeout=30)
        time.sleep(1)
        assert running_container(docker_daemon, batch_dir.name)   # orphaned, still running
        run_id = container.labels["onyx.run_id"]
        assert container.labels["onyx.tool"] == "probe" and container.labels["onyx.asset"] == "long_step"
        # That run is not in progress in this instance (it never was): its container is a leftover.
        removed = remove_leftover_containers(docker_daemon, instance=DagsterInstance.ephemeral(), run_id=run_id)
        assert removed == [container.name]
        assert containers_of_batch(docker_daemon, batch_dir.name) == []
    finally:
        if process.poll() is None:
            process.kill()
