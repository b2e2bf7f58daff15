"""A picture for the UI: a few frames with their excluded pixels tinted."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

TINT_BGR = (255, 0, 255)  # magenta: excluded (sky, water, people, boats)


def overlay(image_bgr: np.ndarray, mask: np.ndarray, alpha: float = 0.55) -> np.ndarray:
    excluded = mask <= 127
    out = image_bgr.copy()
    tint = np.empty_like(out)
    tint[:] = TINT_BGR
    out[excluded] = (alpha * tint[excluded] + (1 - alpha) * out[excluded]).astype(np.uint8)
    return out


def mask_preview(pairs: Sequence[tuple[Path, np.ndarray]], tile_width: int = 480, columns: int = 2) -> np.ndarray:
    """A grid of (image, mask) overlays, each ``tile_width`` wide."""
    tiles = []
    for image_path, mask in pairs:
        image = cv2.imread(str(image_path), cv2.IMREAD_COLOR)
        if image is None:
            continue
        tinted = overlay(image, mask)
        height = max(1, round(tinted.shape[0] * tile_width / tinted.shape[1]))
        tiles.append(cv2.resize(tinted, (tile_width, height), interpolation=cv2.INTER_AREA))
    if not tiles:
        return np.zeros((8, tile_width, 3), np.uint8)
    tile_height = max(t.shape[0] for t in tiles)
    tiles = [np.pad(t, ((0, tile_height - t.shape[0]), (0, 0), (0, 0))) for t in tiles]
    while len(tiles) % columns:
        tiles.append(np.zeros_like(tiles[0]))
    rows = [np.concatenate(tiles[i:i + columns], axis=1) for i in range(0, len(tiles), columns)]
    return np.concatenate(rows, axis=0)


def pick_evenly(items: Sequence, count: int) -> list:
    if len(items) <= count:
        return list(items)
    return [items[i] for i in np.round(np.linspace(0, len(items) - 1, count)).astype(int)]
