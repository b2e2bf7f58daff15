"""python -m onyx_probe: params "fail" (a ToolError), "sleep" (seconds, with progress), "write" (a file)."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

from onyx_tools.errors import ToolError
from onyx_tools.tool import ToolRun, run_tool


def network_reachable() -> bool:
    try:
        socket.create_connection(("1.1.1.1", 53), timeout=2).close()
        return True
    except OSError:
        return False


def main(run: ToolRun) -> None:
    params = run.params
    if params.get("fail"):
        raise ToolError(str(params["fail"]))
    sleep = float(params.get("sleep", 0))
    started = time.monotonic()
    while time.monotonic() - started < sleep:
        run.progress("sleeping", int(time.monotonic() - started), int(sleep))
        time.sleep(0.2)
    inputs = params.get("inputs") or {}
    sizes = {name: Path(path).stat().st_size for name, path in inputs.items()}
    written = run.layout.root / params.get("write", "probe.txt")
    written.write_text("written by the probe\n", encoding="utf-8")
    run.log.info("probe wrote %s", written)
    with open("/proc/1/cmdline", "rb") as handle:
        pid1 = handle.read().split(b"\0")[0].decode()
    run.report({
        "uid": os.getuid(),
        "gid": os.getgid(),
        "home": os.environ.get("HOME", ""),
        "batch_dir": str(run.layout.root),
        "inputs": json.dumps(inputs, sort_keys=True),
        "input_sizes": json.dumps(sizes, sort_keys=True),
        "pid1": pid1,
        "network": network_reachable(),
        "cuda_visible": os.environ.get("NVIDIA_VISIBLE_DEVICES", ""),
        "written_path": written.name,
    })


if __name__ == "__main__":
    run_tool("probe", main)
