"""What a test needs besides this checkout, and what happens when it is not there.

Outside CI a test whose component is missing skips, with the reason. With ``CI=true`` it fails
instead: a CI machine without the shared datasets, dockerd, Postgres, Redis, Chromium or a
root-only mount would otherwise pass by skipping and hide a regression. The only tests that
may skip in CI are the ones that depend on the GPU (or on its absence), listed in ``GPU_ONLY``:
no CI machine of this project can have both.

    from components import require
    require("datasets", path.is_file(), f"{path} is absent (../shared/datasets)")

    pytestmark = needs("chromium", shutil.which("chromium") is not None, "Chromium not found")
"""

from __future__ import annotations

import importlib
import importlib.util
import os

import pytest

CI = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")

# Every component a test may need; ``require`` refuses a name not listed here.
COMPONENTS = {
    "datasets": "../shared/datasets beside the checkout (real videos and photographs)",
    "ffmpeg": "ffmpeg and ffprobe on PATH (scripts/bootstrap installs them)",
    "dockerd": "a running Docker daemon (scripts/test starts Debian's docker.io)",
    "postgres": "PostgreSQL's initdb/postgres (scripts/test installs postgresql)",
    "redis": "redis-server (scripts/test installs it)",
    "chromium": "Chromium and playwright (the UI and viewer tests)",
    "root-mount": "root with mount, for a small tmpfs (the disk-full test)",
    "setpriv": "setpriv, to drop root for a permission test",
    "python-package": "a Python package of requirements.lock (scripts/bootstrap installs them all)",
    "checkout": "a part of this checkout (a tool, a Dockerfile, vendored sources)",
}

# The only skips CI allows: tests of a GPU path on a machine without a GPU, and tests of the CPU
# fallback on a machine with one.
GPU_ONLY = {
    "cuda": "a CUDA GPU visible to this process",
    "no-cuda": "no CUDA GPU (the CPU fallback is what is tested)",
    "no-nvidia-runtime": "Docker without the NVIDIA runtime (the refusal or CPU fallback is what is tested)",
}


def require(component: str, available: bool, reason: str) -> None:
    """Skip (outside CI) or fail (CI=true) unless ``available``; GPU_ONLY components always skip."""
    if component not in COMPONENTS and component not in GPU_ONLY:
        raise ValueError(f"unknown test component {component!r}: add it to tests/components.py")
    if available:
        return
    if component in GPU_ONLY or not CI:
        pytest.skip(reason)
    pytest.fail(f"CI=true and this test's {component} is missing ({COMPONENTS[component]}): {reason}",
                pytrace=False)


def require_module(name: str, reason: str | None = None):
    """The module, imported; a missing one is a missing ``python-package`` component."""
    if importlib.util.find_spec(name.split(".")[0]) is None or importlib.util.find_spec(name) is None:
        require("python-package", False, reason or f"Python package {name} is not installed")
    return importlib.import_module(name)


def needs(component: str, available: bool, reason: str):
    """``require`` as a mark, for a module's ``pytestmark`` or one test (checked when the test sets up)."""
    return pytest.mark.component(component, available, reason)


def check_marks(item) -> None:
    """Run by tests/conftest.py before each test: the ``component`` marks of the test."""
    for mark in item.iter_markers("component"):
        require(*mark.args)

