"""Debian's Chromium for the tests that look at pages (the Dagster UI, the viewer pages): never a
downloaded browser, nothing reaching out to the network."""

from __future__ import annotations

import os
import shutil

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")
# Chromium as root in a container, with nothing reaching out to the network.
HEADLESS_ARGS = ["--headless", "--no-sandbox", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]
# WebGL2 without a GPU: ANGLE on SwiftShader (the CPU Vulkan implementation Chromium ships).
WEBGL_ARGS = ["--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--ignore-gpu-blocklist"]


def find_chromium() -> str | None:
    configured = os.environ.get("ONYX_CHROMIUM")
    for candidate in ([configured] if configured else []) + list(CHROMIUM_CANDIDATES):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("chromium")
