"""Whether a tool gets a GPU, asked one way by every tool.

``pick_device("auto" | "cpu" | "cuda" | "cuda:N", tool)`` answers with the device to use, or a
``ToolError`` that says what was asked and what to do; ``require_cuda(tool, fix)`` is for
tools that cannot run without one. A GPU counts as present when CUDA can use it (torch where
the tool has it, else ``nvidia-smi``) and the runner did not hide it (CUDA_VISIBLE_DEVICES
empty or -1).
"""

from __future__ import annotations

import os
import shutil
import subprocess


def cuda_available() -> bool:
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return False  # GPUs hidden on purpose (the local runner's setting)
    try:
        import torch
    except ImportError:
        torch = None
    if torch is not None:
        return bool(torch.cuda.is_available())
    return nvidia_gpu_listed()


def nvidia_gpu_listed() -> bool:
    """Whether the NVIDIA driver lists a GPU on this host (``nvidia-smi -L``), whatever this Python's torch is."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return False
    try:
        listed = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return listed.returncode == 0 and "GPU" in listed.stdout


def pick_device(requested: str, tool: str) -> str:
    """``auto`` -> ``cuda`` when a GPU is there, else ``cpu``; ``cuda``/``cuda:N`` only where one is."""
    from .errors import ToolError

    available = cuda_available()
    if requested == "auto":
        return "cuda" if available else "cpu"
    if requested.startswith("cuda") and not available:
        raise ToolError(f"{tool}: device {requested!r} was asked for but no CUDA device is visible here: run on a "
                        "GPU host (the docker runner with a GPU), or set device to auto or cpu")
    return requested


def require_cuda(tool: str, fix: str) -> None:
    from .errors import ToolError

    if not cuda_available():
        raise ToolError(f"{tool} needs an NVIDIA GPU with CUDA and none is visible here: {fix}")
