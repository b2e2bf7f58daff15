"""Frames in, masks out: which files are images, and reading and writing 8-bit masks (no torch here)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from onyx_tools.errors import ToolError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
KEEP, EXCLUDE = 255, 0


def list_images(folder: Path) -> list[Path]:
    """Every image in ``folder`` (not index.json or other metadata), sorted; stems must be unique."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ToolError(f"{folder} does not exist: materialise the frames asset of this batch first")
    images = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                    and not p.name.startswith("."))
    if not images:
        raise ToolError(f"{folder} holds no images: materialise the frames asset of this batch again")
    stems: dict[str, Path] = {}
    for path in images:
        if path.stem in stems:
            raise ToolError(f"{path.name} and {stems[path.stem].name} share the stem {path.stem!r}; "
                            "masks are named {stem}.png, so rename one of them")
        stems[path.stem] = path
    return images


def write_mask(folder: Path, stem: str, mask: np.ndarray) -> Path:
    path = Path(folder) / f"{stem}.png"
    if not cv2.imwrite(str(path), mask):
        raise ToolError(f"cannot write {path}: check free space and permissions of the batch folder")
    return path


def read_mask(path: Path) -> np.ndarray:
    mask = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if mask is None:
        raise ToolError(f"cannot read mask {path}: run the masks step again")
    return mask
