"""Docker fixtures: a real dockerd (started if needed), the offline CPU images (cached), cleanup checks.

The daemon is started by scripts/docker/start-dockerd.sh (installs docker.io when missing); the tests
skip, with the script's reason, only when Docker cannot be installed or started. Images are built with
Docker's layer cache, so a rebuild after a code change takes seconds; the Debian root image
(debootstrap) is made once and reused.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import time
from pathlib import Path

import pytest

from components import require

REPO = Path(__file__).resolve().parents[2]
from docker_helpers import (  # noqa: E402  (tests/docker is on sys.path)
    PROBE_DIR,
    PROBE_IMAGE,
)


def build_ca_bundle() -> str | None:
    """What pip inside a build needs here to reach PyPI: the CA bundle the host's pip trusts."""
    for candidate in (os.environ.get("ONYX_BUILD_CA_BUNDLE"), os.environ.get("PIP_CERT"),
                      "/etc/ssl/certs/ca-certificates.crt"):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


@pytest.fixture(scope="session")
def docker_daemon():
    """A docker SDK client to a running daemon; once the tests end, no onyx container they started may
    be left (running or stopped)."""
    script = REPO / "scripts" / "docker" / "start-dockerd.sh"
    try:
        completed = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=900)
    except subprocess.TimeoutExpired:
        require("dockerd", False, "Docker could not be started: scripts/docker/start-dockerd.sh timed out")
    if completed.returncode != 0:
        reason = (completed.stderr.strip().splitlines() or ["no reason given"])[-1]
        require("dockerd", False, f"Docker could not be installed or started: {reason}")
    from onyx_dagster import install

    client = install.docker_client()
    before = {c.id for c in client.containers.list(all=True, ignore_removed=True, filters={"label": "onyx.managed=true"})}
    yield client
    left = [c for c in client.containers.list(all=True, ignore_removed=True, filters={"label": "onyx.managed=true"})
            if c.id not in before]
    for container in left:
        container.remove(force=True)
    assert not left, f"onyx-labelled containers left after the suite: {[c.name for c in left]}"


@pytest.fixture(scope="session")
def onyx_images(docker_daemon):
    """onyx-base (on the debootstrapped Debian root image), onyx-ingest and onyx-sfm, and the probe.

    Rebuilt through Docker's layer cache every session (seconds when nothing changed), so the images
    always hold the tools' current code; the root image is made once (minutes) and kept.
    """
    from onyx_dagster import install

    lines: list[str] = []
    started = time.monotonic()
    report = install.install(build=True, tools=["base", "ingest", "sfm"], cpu_base=True, force=True,
                            ca_bundle=build_ca_bundle(), out=lines.append)
    assert report.ok, "\n".join(lines)
    build_probe(docker_daemon)
    report.seconds = time.monotonic() - started  # type: ignore[attr-defined]
    report.lines = lines  # type: ignore[attr-defined]
    return report


def _probe_digest() -> str:
    digest = hashlib.sha256()
    for path in sorted(PROBE_DIR.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            digest.update(path.relative_to(PROBE_DIR).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def build_probe(client) -> str:
    digest = _probe_digest()
    try:
        if client.images.get(PROBE_IMAGE).labels.get("onyx.test.digest") == digest:
            return PROBE_IMAGE
    except Exception:
        pass
    completed = subprocess.run(
        ["docker", "build", "-t", PROBE_IMAGE, "--label", f"onyx.test.digest={digest}", str(PROBE_DIR)],
        capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    return PROBE_IMAGE


@pytest.fixture
def batch_dir(tmp_path) -> Path:
    """An empty batch folder with a unique name (container labels carry it)."""
    path = tmp_path / f"batch-{os.getpid()}-{time.monotonic_ns() % 10**9}"
    path.mkdir()
    return path
