"""Planar Y'CbCr frames as ffmpeg decodes them, and their conversion to BGR.

Ingest decodes every frame of a video to find the sharpest of each window, but keeps one
frame in five or fewer. Sharpness needs only luma, so ffmpeg hands over the planar Y'CbCr the
decoder made (no per-frame conversion in ffmpeg, half the bytes of BGR through the pipe for
4:2:0), and only the frames that are kept are converted here.

The conversion gives what ffmpeg's own ``format=bgr24`` gives (tests/ingest/test_ingest_colour.py:
within 1 level for 4:4:4, 3 for 8-bit 4:2:0): the matrix the file declares, BT.601 when it
declares none or is RGB (as ffmpeg does), limited range (ffmpeg converts full-range sources such
as yuvj420p to limited when asked for yuv420p / yuv444p), chroma replicated over each 2x2 block
for 4:2:0 as ffmpeg's own fast path does. 4:2:2 and other layouts come as 4:4:4, losing nothing.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np

# Luma weights (Kr, Kb) by ffprobe's color_space; anything else decodes as BT.601, like ffmpeg.
_KR_KB = {
    "bt709": (0.2126, 0.0722),
    "bt2020nc": (0.2627, 0.0593),
    "bt2020c": (0.2627, 0.0593),
    "smpte240m": (0.212, 0.087),
    "fcc": (0.30, 0.11),
}
_BT601 = (0.299, 0.114)
# Sources whose chroma is already subsampled 2x2 (or absent): asking ffmpeg for 4:2:0 loses nothing.
_CHROMA_420 = ("420", "nv12", "nv21", "p010", "p016", "gray")


@dataclass(frozen=True)
class PlanarFormat:
    """How one raw frame from ffmpeg is laid out: 8-bit planar Y'CbCr, 4:2:0 or 4:4:4."""

    width: int
    height: int
    pix_fmt: str  # "yuv420p" or "yuv444p", ffmpeg's names

    @property
    def subsampled(self) -> bool:
        return self.pix_fmt == "yuv420p"

    @property
    def chroma_shape(self) -> tuple[int, int]:
        if self.subsampled:  # odd sizes round up, as ffmpeg lays them out
            return (self.height + 1) // 2, (self.width + 1) // 2
        return self.height, self.width

    @property
    def frame_bytes(self) -> int:
        rows, cols = self.chroma_shape
        return self.width * self.height + 2 * rows * cols


def planar_pix_fmt(source_pix_fmt: str) -> str:
    """What to ask ffmpeg for: 4:2:0 where the source (ffprobe's pix_fmt) has no more chroma, else 4:4:4."""
    if not source_pix_fmt or any(tag in source_pix_fmt for tag in _CHROMA_420):
        return "yuv420p"
    return "yuv444p"


@functools.cache
def bgr_matrix(color_space: str) -> np.ndarray:
    """The 3x4 affine map from limited-range (Y', Cb, Cr) to (B, G, R), for ``cv2.transform``."""
    kr, kb = _KR_KB.get(color_space, _BT601)
    kg = 1.0 - kr - kb
    luma, chroma = 255.0 / 219.0, 255.0 / 224.0
    linear = np.array([
        [luma, 2.0 * (1.0 - kb) * chroma, 0.0],
        [luma, -2.0 * kb * (1.0 - kb) / kg * chroma, -2.0 * kr * (1.0 - kr) / kg * chroma],
        [luma, 0.0, 2.0 * (1.0 - kr) * chroma],
    ])
    offset = -linear @ np.array([16.0, 128.0, 128.0])
    return np.hstack([linear, offset[:, None]]).astype(np.float32)


def luma_plane(frame: np.ndarray, layout: PlanarFormat) -> np.ndarray:
    """The Y' plane of a raw frame, as a view (no copy)."""
    return frame[: layout.width * layout.height].reshape(layout.height, layout.width)


def planar_to_bgr(frame: np.ndarray, layout: PlanarFormat, color_space: str = "") -> np.ndarray:
    """Convert one raw planar frame (flat uint8, ``layout``) to an H x W x 3 BGR image."""
    size = layout.width * layout.height
    rows, cols = layout.chroma_shape
    cb = frame[size: size + rows * cols].reshape(rows, cols)
    cr = frame[size + rows * cols: size + 2 * rows * cols].reshape(rows, cols)
    if layout.subsampled:
        full = (layout.width, layout.height)
        # nearest over the padded size, then crop: odd sizes keep the last column/row of chroma
        cb = cv2.resize(cb, (2 * cols, 2 * rows), interpolation=cv2.INTER_NEAREST)[: full[1], : full[0]]
        cr = cv2.resize(cr, (2 * cols, 2 * rows), interpolation=cv2.INTER_NEAREST)[: full[1], : full[0]]
    ycbcr = cv2.merge([luma_plane(frame, layout), cb, cr])
    return cv2.transform(ycbcr, bgr_matrix(color_space))
