"""Deterministic procedural textures that SIFT likes: multi-scale colour noise, blobs, lines, glyphs.

Every texture is a function of (seed, size) only, so the same seed renders the same pixels.
"""

from __future__ import annotations

import string

import cv2
import numpy as np

_GLYPHS = string.ascii_uppercase + string.digits + "#%&@+=?"
_FONTS = (cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_COMPLEX,
          cv2.FONT_HERSHEY_TRIPLEX, cv2.FONT_HERSHEY_PLAIN)


def _noise(rng: np.random.Generator, width: int, height: int, cell: int) -> np.ndarray:
    """Smooth value noise in [-1, 1] with features about ``cell`` texels across."""
    gw, gh = max(2, width // cell + 2), max(2, height // cell + 2)
    grid = rng.uniform(-1.0, 1.0, size=(gh, gw, 3)).astype(np.float32)
    return cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC)


def _colour(rng: np.random.Generator) -> tuple[int, int, int]:
    return tuple(int(c) for c in rng.integers(0, 256, size=3))


def make_texture(seed: int, width: int, height: int, marks_per_kilotexel: float = 0.9) -> np.ndarray:
    """An RGB uint8 texture of ``height`` x ``width``, non-repeating, rich at every scale."""
    rng = np.random.default_rng(seed)
    base = rng.uniform(60, 200, size=3).astype(np.float32)
    img = np.empty((height, width, 3), np.float32)
    img[:] = base
    # Multi-scale noise: large soft patches down to fine grain (kept above ~3 texels to limit aliasing).
    for cell, amp in ((96, 55.0), (40, 40.0), (16, 30.0), (7, 22.0), (3, 12.0)):
        n = _noise(rng, width, height, cell)
        mono = n.mean(axis=2, keepdims=True)
        img += amp * (0.6 * mono + 0.4 * n)
    img = np.clip(img, 0, 255).astype(np.uint8)

    count = int(width * height / 1000.0 * marks_per_kilotexel)
    kinds = rng.choice(4, size=count, p=[0.35, 0.2, 0.15, 0.3])
    for kind in kinds:
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        colour = _colour(rng)
        if kind == 0:  # blob
            axes = (int(rng.integers(2, 22)), int(rng.integers(2, 22)))
            cv2.ellipse(img, (x, y), axes, float(rng.uniform(0, 180)), 0, 360, colour, -1, cv2.LINE_AA)
        elif kind == 1:  # line
            length, angle = rng.uniform(8, 60), rng.uniform(0, np.pi)
            x2, y2 = int(x + length * np.cos(angle)), int(y + length * np.sin(angle))
            cv2.line(img, (x, y), (x2, y2), colour, int(rng.integers(1, 4)), cv2.LINE_AA)
        elif kind == 2:  # rectangle outline or filled
            w, h = int(rng.integers(4, 30)), int(rng.integers(4, 30))
            cv2.rectangle(img, (x, y), (x + w, y + h), colour, int(rng.choice([-1, 1, 2])), cv2.LINE_AA)
        else:  # text-like marks
            text = "".join(rng.choice(list(_GLYPHS), size=int(rng.integers(1, 5))))
            font = _FONTS[int(rng.integers(0, len(_FONTS)))]
            cv2.putText(img, text, (x, y), font, float(rng.uniform(0.35, 1.1)), colour,
                        int(rng.integers(1, 3)), cv2.LINE_AA)
    # A touch of blur so the finest level is band-limited (less shimmer between frames).
    return cv2.GaussianBlur(img, (0, 0), 0.6)


def mip_pyramid(texture: np.ndarray, levels: int) -> list[np.ndarray]:
    """Level 0 plus ``levels - 1`` exact halvings (sizes must be divisible by 2**(levels-1))."""
    out = [texture]
    for _ in range(levels - 1):
        prev = out[-1]
        out.append(cv2.resize(prev, (prev.shape[1] // 2, prev.shape[0] // 2), interpolation=cv2.INTER_AREA))
    return out
