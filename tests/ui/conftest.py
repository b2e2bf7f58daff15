"""A real Onyx site for browser tests: one materialised batch, the real webserver and daemon.

The site is built once for tests/ui (package scope): a temporary DAGSTER_HOME with the
repository's own dagster.yaml, a batch of ../shared/datasets/real_videos/stone_sign.mp4
materialised through video, frames and sparse_model with Dagster's CLI, and
``dagster-webserver -w workspace.yaml`` and ``dagster-daemon run -w workspace.yaml`` on
loopback (started alongside the materialisation). Both servers are stopped (their process
groups, by id) at teardown.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from components import require, require_module
from browser import HEADLESS_ARGS, find_chromium

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
BATCH = "stone-sign-ui"
CHROMIUM_ARGS = [*HEADLESS_ARGS, "--disable-gpu"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Site:
    url: str
    home: Path
    data: Path
    batch: str
    env: dict
    chromium: str
    screenshots: list[Path] = field(default_factory=list)
    shot_dir: Path | None = None

    def graphql(self, query: str, variables: dict | None = None, timeout: float = 60) -> dict:
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        request = urllib.request.Request(f"{self.url}/graphql", data=body,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=timeout) as response:
            answer = json.loads(response.read())
        assert "errors" not in answer, answer["errors"]
        return answer["data"]

    def screenshot(self, page, name: str) -> Path:
        """Save a full-page PNG to the test's tmp folder and, if ONYX_SCREENSHOTS is set, there too."""
        assert self.shot_dir is not None
        path = self.shot_dir / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        self.screenshots.append(path)
        extra = os.environ.get("ONYX_SCREENSHOTS")
        if extra:
            Path(extra).mkdir(parents=True, exist_ok=True)
            shutil.copy(path, Path(extra) / path.name)
        return path


def _log_tail(path: Path, chars: int = 4000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return ""


def _start(command: list[str], env: dict, log: Path) -> subprocess.Popen:
    handle = log.open("wb")
    # Own process group: teardown stops the server and whatever it spawned (code server, runs).
    return subprocess.Popen(command, cwd=REPO, env=env, stdout=handle, stderr=subprocess.STDOUT,
                            start_new_session=True)


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    except ProcessLookupError:
        pass


def wait_for_server(url: str, process: subprocess.Popen, log: Path, timeout: float = 180) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"dagster-webserver exited {process.returncode}:\n{_log_tail(log)}")
        try:
            with urllib.request.urlopen(f"{url}/server_info", timeout=5) as response:
                return json.loads(response.read())
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            time.sleep(1)
    raise RuntimeError(f"dagster-webserver did not answer /server_info in {timeout:.0f} s:\n{_log_tail(log)}")


@pytest.fixture(scope="package")
def onyx_site(tmp_path_factory, datasets):
    chromium = find_chromium()
    require("chromium", chromium is not None,
            "Chromium not found (/usr/bin/chromium; apt-get install chromium, or set ONYX_CHROMIUM)")
    from dagster import DagsterInstance

    from onyx_dagster.batches import add_batch, parse_settings
    from onyx_dagster.pools import ensure_pools

    root = tmp_path_factory.mktemp("onyx-site")
    home, data, drop, logs = root / "dagster-home", root / "onyx-data", root / "onyx-drop", root / "logs"
    for folder in (home, data, drop, logs):
        folder.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")  # the project's own instance config
    env = {**os.environ, "DAGSTER_HOME": str(home), "ONYX_DATA": str(data), "ONYX_DROP": str(drop),
           "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "PYTHONUNBUFFERED": "1"}

    instance = DagsterInstance.from_config(str(home))
    try:
        ensure_pools(instance)
        add_batch(instance, data, BATCH, parse_settings({
            "input": str(datasets / "real_videos" / "stone_sign.mp4"), "scene": "outdoor",
            "mode": "gaussian", "quality": "proto", "interval": 0.15}))
    finally:
        instance.dispose()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    processes = []
    try:
        # The servers start while the batch is materialised (they only read the instance).
        webserver_log, daemon_log = logs / "webserver.log", logs / "daemon.log"
        webserver = _start([str(BIN / "dagster-webserver"), "-w", "workspace.yaml", "-h", "127.0.0.1",
                            "-p", str(port)], env, webserver_log)
        processes.append(webserver)
        processes.append(_start([str(BIN / "dagster-daemon"), "run", "-w", "workspace.yaml"], env, daemon_log))
        materialise = subprocess.run(
            [str(BIN / "dagster"), "asset", "materialize", "-m", "onyx_dagster.definitions",
             "--select", "video,frames,sparse_model", "--partition", BATCH],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
        assert materialise.returncode == 0, (materialise.stdout + materialise.stderr)[-4000:]
        info = wait_for_server(url, webserver, webserver_log)
        assert info.get("dagster_webserver_version") == "1.13.27", info
        shots = root / "screenshots"
        shots.mkdir()
        yield Site(url=url, home=home, data=data, batch=BATCH, env=env, chromium=chromium, shot_dir=shots)
    finally:
        for process in reversed(processes):
            _stop(process)


# Module scope: Playwright's sync API runs one instance per process at a time, and the viewer tests start theirs.
@pytest.fixture(scope="module")
def browser(onyx_site):
    playwright_api = require_module("playwright.sync_api", "playwright (pip) is not installed")
    user_data = onyx_site.shot_dir.parent / "chromium-profile"
    with playwright_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(user_data), executable_path=onyx_site.chromium, headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1600, "height": 1000})
        try:
            yield context
        finally:
            context.close()


@pytest.fixture
def page(browser):
    page = browser.new_page()
    page.set_default_timeout(45_000)
    try:
        yield page
    finally:
        page.close()
