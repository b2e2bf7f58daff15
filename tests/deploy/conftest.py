"""Phase-2 services started by the test harness: Postgres and Redis from Debian, on loopback.

Each gets its own data folder and a free port, and is stopped at teardown. The tests skip, saying
why, only when the Debian packages are missing and cannot be installed (``apt-get install -y
postgresql redis-server`` as root).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from components import require

REPO = Path(__file__).resolve().parents[2]


def pytest_configure(config):
    config.addinivalue_line("markers", "scaleout: phase-2 scale-out (Postgres, Redis, Celery workers; minutes)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _apt_install(*packages: str) -> str | None:
    """None when installed, else why not."""
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return f"not root or no apt-get: install {' '.join(packages)} yourself"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    done = subprocess.run(["apt-get", "install", "-y", *packages], capture_output=True, text=True, env=env,
                          timeout=600)
    if done.returncode != 0:
        return f"apt-get install {' '.join(packages)} failed: {done.stderr.strip()[-300:]}"
    return None


def postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def _wait_port(port: int, timeout: float, process: subprocess.Popen | None = None) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.2)
    return False


@pytest.fixture(scope="module")
def postgres():
    """A throwaway Postgres cluster on 127.0.0.1:<free port>; yields connection settings."""
    if postgres_bin() is None:
        reason = _apt_install("postgresql")
        require("postgres", not reason and postgres_bin() is not None,
                f"Postgres is not available: {reason or 'initdb not found after install'}")
    bindir = postgres_bin()
    root = Path(tempfile.mkdtemp(prefix="onyx-pg-"))
    data, sockets = root / "data", root / "sock"
    sockets.mkdir()
    as_user: list[str] = []
    if os.geteuid() == 0:  # Postgres refuses to run as root
        pg = pwd.getpwnam("postgres")
        for path in (root, sockets):
            os.chown(path, pg.pw_uid, pg.pw_gid)
        os.chmod(root, 0o700)
        as_user = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    run = lambda *args, **kw: subprocess.run([*as_user, *args], check=True, capture_output=True, text=True, **kw)
    run(str(bindir / "initdb"), "-D", str(data), "-U", "onyx", "-A", "trust", "--no-sync", "-E", "UTF8")
    run(str(bindir / "pg_ctl"), "-D", str(data), "-w", "-t", "60", "-l", str(root / "postgres.log"), "-o",
        f"-p {port} -c listen_addresses=127.0.0.1 -k {sockets} -c fsync=off -c max_connections=200", "start")
    try:
        run(str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "onyx", "dagster")
        yield {"host": "127.0.0.1", "port": port, "user": "onyx", "password": "", "db": "dagster",
               "log": root / "postgres.log"}
    finally:
        subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"],
                       capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def redis_server():
    """redis-server on 127.0.0.1:<free port>, no persistence; yields its URL base."""
    if not shutil.which("redis-server"):
        reason = _apt_install("redis-server")
        require("redis", not reason and bool(shutil.which("redis-server")),
                f"Redis is not available: {reason or 'redis-server not found after install'}")
    root = Path(tempfile.mkdtemp(prefix="onyx-redis-"))
    port = free_port()
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(root), "--protected-mode", "yes"],
        stdout=open(root / "redis.log", "w"), stderr=subprocess.STDOUT)
    try:
        if not _wait_port(port, 20, process):
            pytest.fail(f"redis-server did not start: {(root / 'redis.log').read_text()[-500:]}")
        yield f"redis://127.0.0.1:{port}"
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
        shutil.rmtree(root, ignore_errors=True)
