"""MILo trains with CUDA kernels (its rasterizers are CUDA only): no GPU, no run."""

from __future__ import annotations

import os
import shutil
import subprocess

from onyx_tools.errors import ToolError

NO_GPU = "MILo needs an NVIDIA GPU with CUDA; use recipe gaussian-proto on CPU-only hosts"


def cuda_available() -> bool:
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return False        # GPUs hidden on purpose (the local runner's setting)
    try:
        import torch
    except ImportError:
        torch = None
    if torch is not None:
        return bool(torch.cuda.is_available())
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return False
    try:
        listed = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return listed.returncode == 0 and "GPU" in listed.stdout


def require_gpu() -> None:
    if not cuda_available():
        raise ToolError(NO_GPU)
