"""COLMAP's dense array format (depth and normal maps): ``W&H&C&`` then float32, column-major.

Matches COLMAP's ``Mat<float>::Read/Write`` and ``scripts/python/read_write_dense.py``
(``read_array``), so pycolmap's stereo fusion and COLMAP's own tools read what we write.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np


def write_array(path: Path, array: np.ndarray) -> None:
    array = np.asarray(array, dtype=np.float32)
    if array.ndim == 2:
        array = array[:, :, None]
    height, width, channels = array.shape
    path = Path(path)
    tmp = path.with_name(f".tmp-{path.name}")
    with open(tmp, "wb") as handle:
        handle.write(f"{width}&{height}&{channels}&".encode("ascii"))
        # slice-major, then row-major inside a slice: COLMAP's (col + W*row + W*H*slice) indexing
        handle.write(np.ascontiguousarray(array.transpose(2, 0, 1)).astype("<f4").tobytes())
    os.replace(tmp, path)


def read_array(path: Path) -> np.ndarray:
    with open(path, "rb") as handle:
        header = b""
        while header.count(b"&") < 3:
            byte = handle.read(1)
            if not byte:
                raise ValueError(f"{path}: not a COLMAP array (header incomplete)")
            header += byte
        width, height, channels = (int(v) for v in header.split(b"&")[:3])
        data = np.fromfile(handle, dtype="<f4", count=width * height * channels)
    array = data.reshape(channels, height, width).transpose(1, 2, 0)
    return array[:, :, 0] if channels == 1 else array
