"""What moves with a 360 camera: the operator, the stick, the nadir. Found without any trained model.

Whatever is fixed to the camera sits at the same panorama pixels in every frame, while the
world slides across them as the camera moves and turns. So over the whole video, the mean of
the (shrunk, see ``motion.py``) panoramas keeps the texture of camera-fixed things sharp and
washes out everything else. Texture here is corner strength (the smaller eigenvalue of the
local structure tensor, what SIFT and KLT need), not gradient: an edge that slides along
itself, such as a corridor's wall-ceiling line while walking down it, stays sharp in the mean
without being fixed to the camera, but it has no corners. Per pixel:

    kept texture = corner strength of the mean panorama / mean corner strength of each panorama

is near 1 on camera-fixed texture and small on the world (measured on the synthetic walk: median
0.99 on the operator, 0.02 on the room); where there is no texture at all the ratio says nothing,
and those pixels give SfM no features anyway. Camera-fixed pixels are grown
into regions (closed, their holes filled: a plain shirt inside a textured outline), and the cap
around the nadir, where a hand-held or stick-mounted operator stands, is added.

A walk that barely moves leaves the world sharp in the mean too: when more than
``MAX_FIXED_FRACTION`` of the sphere looks camera-fixed, the evidence is rejected and only the
nadir is masked.

The mask is 255 where features may be taken and 0 where they must not (COLMAP's convention for
``ImageReaderOptions.mask_path``: the mask of image ``name`` is ``<mask folder>/<name>.png``).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

KEPT_TEXTURE = 0.5  # ratio above which a textured pixel counts as camera-fixed
MIN_TEXTURE = 0.2  # mean corner strength (cv2.cornerMinEigenVal, 0-255 grey) under which there is nothing to judge
_BLOCK = 5
MIN_PANORAMAS = 20  # fewer analysed panoramas cannot wash the world out
MAX_FIXED_FRACTION = 0.35
CLOSE_DEG = 4.0  # gaps this wide between camera-fixed pixels are closed
GROW_DEG = 2.0  # and the regions grown by this much (their outline blurs in the mean)
MIN_REGION_DEG2 = 12.0  # camera-fixed regions smaller than this solid angle (square degrees) are noise


def corner_strength(image: np.ndarray) -> np.ndarray:
    """The smaller structure-tensor eigenvalue per pixel (float32 image), longitude wrapped."""
    pad = _BLOCK
    wrapped = np.concatenate([image[:, -pad:], image, image[:, :pad]], axis=1)
    return cv2.cornerMinEigenVal(wrapped, _BLOCK, 3, borderType=cv2.BORDER_REPLICATE)[:, pad:-pad]


def nadir_cap(width: int, height: int, radius_deg: float) -> np.ndarray:
    """Boolean (height, width): pixels within ``radius_deg`` of straight down."""
    if radius_deg <= 0:
        return np.zeros((height, width), bool)
    rows = np.arange(height, dtype=np.float64)
    latitude = 90.0 - (rows + 0.5) / height * 180.0
    return np.broadcast_to((latitude <= -90.0 + radius_deg)[:, None], (height, width)).copy()


def solid_angle_fraction(mask: np.ndarray) -> float:
    """The fraction of the sphere a (height, width) equirectangular boolean mask covers."""
    height = mask.shape[0]
    latitude = np.radians(90.0 - (np.arange(height) + 0.5) / height * 180.0)
    weights = np.cos(latitude)
    return float((mask.mean(axis=1) * weights).sum() / weights.sum())


@dataclass(frozen=True)
class OperatorMask:
    keep: np.ndarray  # (h, w) uint8 at the analysis size: 255 use, 0 ignore
    camera_fixed_fraction: float  # of the sphere, nadir cap excluded
    masked_fraction: float  # of the sphere, all together
    nadir_deg: float
    note: str

    def at_size(self, width: int, height: int) -> np.ndarray:
        """The mask for a panorama of ``width`` x ``height`` (uint8, 0 or 255)."""
        resized = cv2.resize(self.keep, (width, height), interpolation=cv2.INTER_LINEAR)
        return np.where(resized >= 128, 255, 0).astype(np.uint8)

    def as_metadata(self) -> dict:
        return {"camera_fixed_fraction": round(self.camera_fixed_fraction, 4),
                "masked_fraction": round(self.masked_fraction, 4), "nadir_deg": self.nadir_deg, "note": self.note}


class CameraFixedRegions:
    """Fed every analysed (shrunk) panorama; ``mask()`` at the end of the video."""

    def __init__(self) -> None:
        self.count = 0
        self._sum: np.ndarray | None = None
        self._strength_sum: np.ndarray | None = None

    def __call__(self, small: np.ndarray) -> None:
        image = cv2.GaussianBlur(small.astype(np.float32), (3, 3), 0)
        if self._sum is None or self._sum.shape != image.shape:
            self._sum = np.zeros_like(image)
            self._strength_sum = np.zeros_like(image)
            self.count = 0
        self._sum += image
        self._strength_sum += corner_strength(image)
        self.count += 1

    def kept_texture(self) -> tuple[np.ndarray, np.ndarray]:
        """(ratio, mean corner strength) per pixel of the analysis panorama."""
        mean_strength = self._strength_sum / self.count
        ratio = corner_strength(self._sum / self.count) / np.maximum(mean_strength, 1e-6)
        return ratio, mean_strength

    def mask(self, nadir_deg: float) -> OperatorMask | None:
        """The operator mask at the analysis size; None when nothing was analysed."""
        if self._sum is None:
            return None
        height, width = self._sum.shape
        nadir = nadir_cap(width, height, nadir_deg)
        fixed = np.zeros((height, width), bool)
        note = ""
        if self.count < MIN_PANORAMAS:
            note = (f"only {self.count} panoramas analysed (at least {MIN_PANORAMAS} tell the camera-fixed "
                    "from the world): the nadir only is masked")
        else:
            ratio, texture = self.kept_texture()
            fixed = _regions((ratio >= KEPT_TEXTURE) & (texture >= MIN_TEXTURE), width)
            fraction = solid_angle_fraction(fixed & ~nadir)
            if fraction > MAX_FIXED_FRACTION:
                note = (f"{fraction:.0%} of the sphere looks camera-fixed: the camera moved too little to tell; "
                        "the nadir only is masked")
                fixed[:] = False
        ignore = fixed | nadir
        keep = np.where(ignore, 0, 255).astype(np.uint8)
        return OperatorMask(keep, solid_angle_fraction(fixed & ~nadir), solid_angle_fraction(ignore), nadir_deg,
                            note)


def _regions(candidates: np.ndarray, width: int) -> np.ndarray:
    """Camera-fixed pixels grown into regions: closed, holes filled, specks dropped, grown a little."""
    px_per_deg = width / 360.0
    pad = int(np.ceil(CLOSE_DEG * px_per_deg)) + 2
    # work on a copy wrapped in longitude so regions across the seam stay whole
    image = np.concatenate([candidates[:, -pad:], candidates, candidates[:, :pad]], axis=1).astype(np.uint8) * 255
    close = max(3, int(round(CLOSE_DEG * px_per_deg)) | 1)
    image = cv2.morphologyEx(image, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (close, close)))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(image, connectivity=8)
    height = image.shape[0]
    latitude = np.radians(90.0 - (np.arange(height) + 0.5) / height * 180.0)
    pixel_deg2 = (1.0 / px_per_deg) ** 2 * np.cos(latitude)  # solid angle of a pixel, per row
    filled = np.zeros_like(image)
    for label in range(1, count):
        component = labels == label
        if float((component.sum(axis=1) * pixel_deg2).sum()) < MIN_REGION_DEG2:
            continue
        contours, _ = cv2.findContours(component.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(filled, contours, -1, 255, thickness=cv2.FILLED)
    grow = max(3, int(round(2 * GROW_DEG * px_per_deg)) | 1)
    filled = cv2.dilate(filled, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (grow, grow)))
    return filled[:, pad:-pad] > 0


def preview(panorama: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """A panorama (BGR) with what is masked tinted red and outlined, for the UI."""
    shown = panorama.copy()
    ignored = mask == 0
    red = np.zeros_like(shown)
    red[..., 2] = 255
    shown[ignored] = cv2.addWeighted(shown, 0.45, red, 0.55, 0)[ignored]
    contours, _ = cv2.findContours(ignored.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(shown, contours, -1, (0, 0, 255), max(1, panorama.shape[1] // 400))
    return shown

