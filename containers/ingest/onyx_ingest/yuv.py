"""Planar Y'CbCr frames as the decoder makes them, and their conversion to BGR.

Ingest decodes every frame of a video to find the sharpest of each window, but keeps one
frame in five or fewer. Sharpness needs only luma, so the decode hands over the planar Y'CbCr the
decoder made (no per-frame conversion), and only the frames that are kept are converted here.

The conversion gives what ffmpeg's own ``format=bgr24`` gives (tests/ingest/test_ingest_colour.py:
within 1 level for 4:4:4, 3 for 8-bit 4:2:0): the matrix the file declares, BT.601 when it
declares none or is RGB (as ffmpeg does), the range the frame declares (full-range sources such as
MJPEG's yuvj420p are converted in the same matrix, one rounding), chroma replicated over each 2x2
block for 4:2:0 (each pair for 4:2:2) as ffmpeg's own fast path does, 10- and 12-bit samples
rounded to 8 bits. Other layouts (RGB, NV12, ...) are converted to 4:4:4 or 4:2:0 by FFmpeg's scaler.
"""

from __future__ import annotations

import functools
import re
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


# Planar layouts the decoder's frames are used in as they are (any bit depth, limited or full
# range): "yuv420p", "yuvj444p", "yuv422p10le", ... Anything else goes through FFmpeg's scaler.
_NATIVE = re.compile(r"^yuvj?(420|422|444)p(?:(9|10|12|14|16)le)?$")


@dataclass(frozen=True)
class PlanarFormat:
    """How one decoded frame is laid out: planar Y'CbCr, 4:2:0, 4:2:2 or 4:4:4, of ``bits`` per sample."""

    width: int
    height: int
    pix_fmt: str  # "yuv420p", "yuv422p" or "yuv444p": the chroma layout, in ffmpeg's 8-bit names
    bits: int = 8
    full_range: bool = False  # Y' 0-255 (JPEG, some phones) rather than 16-235

    @property
    def subsampled(self) -> bool:
        return self.pix_fmt != "yuv444p"

    @property
    def chroma_shape(self) -> tuple[int, int]:
        rows = (self.height + 1) // 2 if self.pix_fmt == "yuv420p" else self.height  # odd sizes round up,
        cols = (self.width + 1) // 2 if self.subsampled else self.width             # as ffmpeg lays them out
        return rows, cols


def native_layout(pix_fmt: str, width: int, height: int, full_range: bool) -> PlanarFormat | None:
    """The layout of a decoder's frame format when it can be used as it is, else None."""
    match = _NATIVE.match(pix_fmt)
    if not match:
        return None
    return PlanarFormat(width, height, f"yuv{match.group(1)}p", int(match.group(2) or 8),
                        full_range or pix_fmt.startswith("yuvj"))


def planar_pix_fmt(source_pix_fmt: str) -> str:
    """What to ask FFmpeg's scaler for: 4:2:0 where the source (ffprobe's pix_fmt) has no more chroma, else 4:4:4."""
    if not source_pix_fmt or any(tag in source_pix_fmt for tag in _CHROMA_420):
        return "yuv420p"
    return "yuv444p"


def to_8bit(plane: np.ndarray, bits: int) -> np.ndarray:
    """A plane of ``bits`` per sample (8: returned as it is) rounded to 8 bits, as a decoder's 8-bit output would be."""
    if bits == 8:
        return plane
    shift = bits - 8
    return ((plane.astype(np.uint32) + (1 << (shift - 1))) >> shift).clip(0, 255).astype(np.uint8)


@functools.cache
def bgr_matrix(color_space: str, full_range: bool = False) -> np.ndarray:
    """The 3x4 affine map from (Y', Cb, Cr) to (B, G, R), for ``cv2.transform``."""
    kr, kb = _KR_KB.get(color_space, _BT601)
    kg = 1.0 - kr - kb
    luma, chroma = (1.0, 1.0) if full_range else (255.0 / 219.0, 255.0 / 224.0)
    linear = np.array([
        [luma, 2.0 * (1.0 - kb) * chroma, 0.0],
        [luma, -2.0 * kb * (1.0 - kb) / kg * chroma, -2.0 * kr * (1.0 - kr) / kg * chroma],
        [luma, 0.0, 2.0 * (1.0 - kr) * chroma],
    ])
    offset = -linear @ np.array([0.0 if full_range else 16.0, 128.0, 128.0])
    return np.hstack([linear, offset[:, None]]).astype(np.float32)


def planar_to_bgr(planes: tuple[np.ndarray, np.ndarray, np.ndarray], layout: PlanarFormat,
                  color_space: str = "") -> np.ndarray:
    """Convert one planar frame (its Y', Cb, Cr planes, laid out as ``layout``) to an H x W x 3 BGR image."""
    luma, cb, cr = (to_8bit(plane, layout.bits) for plane in planes)
    if layout.subsampled:
        rows, cols = layout.chroma_shape
        up = (2 * cols, 2 * rows if layout.pix_fmt == "yuv420p" else rows)
        # nearest over the padded size, then crop: odd sizes keep the last column/row of chroma
        cb = cv2.resize(cb, up, interpolation=cv2.INTER_NEAREST)[: layout.height, : layout.width]
        cr = cv2.resize(cr, up, interpolation=cv2.INTER_NEAREST)[: layout.height, : layout.width]
    ycbcr = cv2.merge([luma, cb, cr])
    return cv2.transform(ycbcr, bgr_matrix(color_space, layout.full_range))
