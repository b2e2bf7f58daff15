"""Node.js and the viewer's npm packages (``containers/viewer/package-lock.json``), found, never fetched.

``ONYX_VIEWER_NODE_MODULES`` names the folder holding them (the image sets it); otherwise
``share/onyx-viewer/node_modules`` in the environment of the Python that runs the tool, which
``scripts/bootstrap`` fills with ``npm ci`` (kept out of the source tree and the images' build contexts).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from functools import cache
from pathlib import Path

from onyx_tools.errors import ToolError

MIN_NODE_MAJOR = 20
INSTALL_HINT = ("install Node.js 20 or newer and the viewer's pinned npm packages: scripts/bootstrap "
                "(= `npm ci` of containers/viewer/package-lock.json into .venv/share/onyx-viewer), or use the "
                "onyx-viewer image")


def node_modules() -> Path:
    configured = os.environ.get("ONYX_VIEWER_NODE_MODULES")
    return Path(configured) if configured else Path(sys.prefix) / "share" / "onyx-viewer" / "node_modules"


def package_file(relative: str) -> Path:
    """A file of an installed npm package, e.g. '@google/model-viewer/dist/model-viewer-umd.min.js'."""
    path = node_modules() / relative
    if not path.is_file():
        raise ToolError(f"{path} is missing: {INSTALL_HINT}")
    return path


@cache
def node() -> str:
    """The ``node`` executable, checked to be new enough."""
    try:
        version = subprocess.run(["node", "--version"], capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        raise ToolError(f"node (Node.js) was not found on PATH: {INSTALL_HINT}") from None
    match = re.match(r"v(\d+)\.", version)
    if not match or int(match.group(1)) < MIN_NODE_MAJOR:
        raise ToolError(f"Node.js {version or '(unknown version)'} is too old for splat-transform: {INSTALL_HINT}")
    return "node"


def splat_transform() -> list[str]:
    """The command line that runs the pinned ``splat-transform`` CLI."""
    return [node(), str(package_file("@playcanvas/splat-transform/bin/cli.mjs"))]
