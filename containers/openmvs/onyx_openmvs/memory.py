"""DensifyPointCloud's ``--resolution-level`` from the memory actually available.

OOM-killed densification is the failure OpenMVS users report most
(cdcseacave/openMVS#600, #626): it keeps every view's depth, normal and confidence
maps plus the growing fused cloud in memory, so memory grows with
images x pixels-per-image. Each resolution level halves both image sides (a quarter
of the pixels); we take the lowest level (sharpest) whose estimate fits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

# Estimated peak bytes per working pixel per image: depth f32 + normal 3xf32 + confidence f32
# + grey image f32 + neighbour bookkeeping (~40) + about one fused point per pixel with its
# view list (~50). Deliberately pessimistic: a refused level costs sharpness, an OOM costs the run.
BYTES_PER_PIXEL = 120
FIXED_OVERHEAD = 1 << 30   # the process, the scene, the sparse cloud
USABLE_FRACTION = 0.75     # leave the rest to the page cache and other processes


@dataclass(frozen=True)
class ResolutionChoice:
    level: int
    working_size: tuple[int, int]   # the image size DensifyPointCloud will work at
    estimated_bytes: int
    available_bytes: int
    fits: bool                      # False: even the coarsest level is estimated not to fit


def working_size(width: int, height: int, level: int, max_resolution: int) -> tuple[int, int]:
    """OpenMVS halves the image ``level`` times, then caps the longer side at ``max_resolution``."""
    w, h = width / 2 ** level, height / 2 ** level
    scale = min(1.0, max_resolution / max(w, h)) if max_resolution > 0 else 1.0
    return max(1, int(round(w * scale))), max(1, int(round(h * scale)))


def estimate_densify_bytes(images: int, width: int, height: int) -> int:
    return int(images * width * height * BYTES_PER_PIXEL + FIXED_OVERHEAD)


def choose_resolution_level(available_bytes: int, images: int, width: int, height: int, *,
                            min_level: int = 1, max_level: int = 4,
                            max_resolution: int = 3200) -> ResolutionChoice:
    """The lowest level in [min_level, max_level] whose estimated peak fits; else the coarsest."""
    budget = int(available_bytes * USABLE_FRACTION)
    choice = None
    for level in range(min_level, max_level + 1):
        size = working_size(width, height, level, max_resolution)
        need = estimate_densify_bytes(images, *size)
        choice = ResolutionChoice(level, size, need, int(available_bytes), need <= budget)
        if choice.fits:
            return choice
    assert choice is not None
    return choice


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def available_memory_bytes(proc: Path = Path("/proc"), cgroup: Path = Path("/sys/fs/cgroup")) -> int:
    """MemAvailable, lowered to the container's cgroup limit minus its usage where that is tighter
    (inside Docker, /proc/meminfo shows the host's memory, not the container's)."""
    available = math.inf
    try:
        for line in (proc / "meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                available = int(line.split()[1]) * 1024
                break
    except OSError:
        pass
    for limit_file, usage_file in (("memory.max", "memory.current"),
                                   ("memory/memory.limit_in_bytes", "memory/memory.usage_in_bytes")):
        limit, usage = _read_int(cgroup / limit_file), _read_int(cgroup / usage_file)
        if limit is not None and limit < (1 << 60):
            available = min(available, limit - (usage or 0))
    return int(available) if available != math.inf else 8 << 30
