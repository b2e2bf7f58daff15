"""Cutting perspective views out of equirectangular frames.

The geometry is ``onyx_tools.spherical`` (the same one spherical SfM and the synthetic
360 renderer use); this file only turns its maps into fast ``cv2.remap`` calls.

Longitude wraps around, latitude does not: the panorama gets one wrapped column on
each side and one replicated row above and below, so bilinear sampling at u = -0.5 or
u = W - 0.5 blends the two edges of the seam instead of a border colour. (OpenCV's
BORDER_WRAP would also wrap the poles onto each other, which is wrong.)
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
from onyx_tools.spherical import MIN_FOV_DEG, ViewSpec, pinhole_focal, view_remap

_PAD = 1


def pad_panorama(pano: np.ndarray) -> np.ndarray:
    """The panorama with one wrapped column left and right and one replicated row top and bottom."""
    wrapped = np.concatenate([pano[:, -_PAD:], pano, pano[:, :_PAD]], axis=1)
    return cv2.copyMakeBorder(wrapped, _PAD, _PAD, 0, 0, cv2.BORDER_REPLICATE)


def shift_longitude(u: np.ndarray, shift_px: float, width: int) -> np.ndarray:
    """Panorama u coordinates (pixel centres, in [-0.5, W - 0.5)) turned right by ``shift_px``."""
    return (np.mod(u.astype(np.float64) + 0.5 + shift_px, width) - 0.5).astype(np.float32)


class ViewSplitter:
    """Cuts a fixed set of views out of panoramas of one size; the maps are built once.

    Maps are stored in OpenCV's fixed-point form (1/32 px), 6 bytes per view pixel:
    twelve 2048 px views hold about 300 MB, whatever the video's length.
    """

    def __init__(self, views: Sequence[ViewSpec], size: int, pano_width: int, pano_height: int,
                 fov_deg: float = MIN_FOV_DEG):
        self.views = list(views)
        self.size = size
        self.pano_width = pano_width
        self.pano_height = pano_height
        self.fov_deg = fov_deg
        self.focal_px = float(pinhole_focal(size, fov_deg))
        self._maps = []
        # Views that share a pitch differ only by a turn about the vertical axis, which is a
        # shift in longitude: compute one map per pitch and shift its u for the other yaws
        # (cube12: 3 trigonometric maps instead of 12, the slow part of a 360 run).
        by_pitch: dict[float, tuple[float, np.ndarray, np.ndarray]] = {}
        for spec in self.views:
            if spec.pitch_deg not in by_pitch:
                by_pitch[spec.pitch_deg] = (spec.yaw_deg, *view_remap(spec, size, pano_width, pano_height, fov_deg))
            yaw0, u, v = by_pitch[spec.pitch_deg]
            if spec.yaw_deg != yaw0:
                u = shift_longitude(u, (spec.yaw_deg - yaw0) / 360.0 * pano_width, pano_width)
            self._maps.append(cv2.convertMaps(u + _PAD, v + _PAD, cv2.CV_16SC2))

    def split(self, pano: np.ndarray) -> list[tuple[ViewSpec, np.ndarray]]:
        """Every view of ``pano`` (H x W x C, the size given at construction)."""
        if pano.shape[:2] != (self.pano_height, self.pano_width):
            raise ValueError(f"panorama is {pano.shape[1]}x{pano.shape[0]}, the splitter was built for "
                             f"{self.pano_width}x{self.pano_height}")
        padded = pad_panorama(pano)
        return [(spec, cv2.remap(padded, m1, m2, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE))
                for spec, (m1, m2) in zip(self.views, self._maps)]
