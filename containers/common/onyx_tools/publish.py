"""Atomic publication of a step's output folder.

A step writes into a temporary sibling (``.tmp-<name>-<id>``) and only a whole
result is renamed into place. A killed step leaves a hidden temporary folder, never
a half-written ``images/`` or ``sparse/``; the old output stays until the new one is
complete, then is swapped out with two renames and removed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def sweep_stale(target: Path) -> None:
    """Remove temporaries that killed earlier attempts left beside ``target``."""
    parent = target.parent
    if not parent.is_dir():
        return
    for prefix in (f".tmp-{target.name}-", f".old-{target.name}-"):
        for stale in parent.glob(prefix + "*"):
            shutil.rmtree(stale, ignore_errors=True)


def swap_into_place(staged: Path, target: Path) -> None:
    """Replace ``target`` with the complete folder ``staged`` (same file system)."""
    old = None
    if target.exists():
        old = target.with_name(f".old-{target.name}-{uuid.uuid4().hex[:8]}")
        os.rename(target, old)
    os.rename(staged, target)
    _fsync_dir(target.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def publishing(target: Path) -> Iterator[Path]:
    """Yield a fresh temporary folder; on success it becomes ``target`` atomically.

    On any exception the temporary folder is removed and ``target`` is untouched.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale(target)
    staged = target.with_name(f".tmp-{target.name}-{uuid.uuid4().hex[:8]}")
    staged.mkdir()
    try:
        yield staged
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise
    swap_into_place(staged, target)


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write a small file so readers see the old or the new content, never a torn one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{path.name}-{uuid.uuid4().hex[:8]}")
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(path: Path, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def write_png_atomic(path: Path, image) -> None:
    """An OpenCV (BGR) image as a PNG, published atomically: previews are read by the UI at any time."""
    import cv2

    ok, encoded = cv2.imencode(".png", image)
    if not ok:
        raise OSError(f"PNG encoding failed for {path}")
    write_bytes_atomic(path, encoded.tobytes())
