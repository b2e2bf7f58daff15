"""A contact sheet: evenly spaced thumbnails in a grid, so a person sees what was extracted."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
from onyx_tools.publish import write_png_atomic

MAX_THUMBNAILS = 24
COLUMNS = 6
THUMB_WIDTH = 240
_GAP = 4
_BACKGROUND = (32, 32, 32)


def evenly_spaced(count: int, most: int = MAX_THUMBNAILS) -> list[int]:
    """Up to ``most`` indices spread evenly over ``range(count)``, first and last included."""
    if count <= most:
        return list(range(count))
    return sorted({round(i * (count - 1) / (most - 1)) for i in range(most)})


def contact_sheet(images: Sequence[np.ndarray], labels: Sequence[str], thumb_width: int = THUMB_WIDTH,
                  columns: int = COLUMNS) -> np.ndarray:
    """BGR grid of ``images`` scaled to ``thumb_width``, each with its label in the corner."""
    if not images:
        raise ValueError("a contact sheet needs at least one image")
    thumb_height = max(round(img.shape[0] * thumb_width / img.shape[1]) for img in images)
    columns = min(columns, len(images))
    rows = math.ceil(len(images) / columns)
    sheet = np.full((rows * (thumb_height + _GAP) + _GAP, columns * (thumb_width + _GAP) + _GAP, 3),
                    _BACKGROUND, dtype=np.uint8)
    for i, (img, label) in enumerate(zip(images, labels)):
        h = round(img.shape[0] * thumb_width / img.shape[1])
        thumb = cv2.resize(img, (thumb_width, h), interpolation=cv2.INTER_AREA)
        y = _GAP + (i // columns) * (thumb_height + _GAP)
        x = _GAP + (i % columns) * (thumb_width + _GAP)
        sheet[y:y + h, x:x + thumb_width] = thumb
        cv2.putText(sheet, label, (x + 4, y + 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(sheet, label, (x + 4, y + 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1,
                    cv2.LINE_AA)
    return sheet


def write_contact_sheet(paths: Sequence[Path], labels: Sequence[str], target: Path) -> tuple[int, int]:
    """Read up to MAX_THUMBNAILS of ``paths`` (evenly spaced) and write the sheet as a PNG.

    The PNG is written under a temporary name and renamed, so the UI never shows half
    a picture. Returns the sheet's (width, height).
    """
    picks = evenly_spaced(len(paths))
    images = []
    for i in picks:
        # A half-size decode is cheaper and thumbnails need no more.
        img = cv2.imread(str(paths[i]), cv2.IMREAD_REDUCED_COLOR_2)
        if img is None:
            raise OSError(f"cannot read {paths[i]} for the contact sheet")
        images.append(img)
    sheet = contact_sheet(images, [labels[i] for i in picks])
    write_png_atomic(Path(target), sheet)
    return sheet.shape[1], sheet.shape[0]
