"""A picture of the mesh for the UI: its surface splatted through a z-buffer, seen from a real camera.

No OpenGL context exists in a headless container; a z-buffered point splat of samples
on the faces, shaded by normal, is enough to see whether the reconstruction is right.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from onyx_tools.publish import write_png_atomic

from .views import View


def sample_surface(vertices: np.ndarray, faces: np.ndarray, colors: np.ndarray, count: int,
                   seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``count`` points spread over the faces by area: (points, face normals, interpolated colours).
    Sampling the surface rather than drawing vertices keeps a decimated mesh solid in the picture."""
    rng = np.random.default_rng(seed)
    tri = vertices[faces]
    cross = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    area = np.linalg.norm(cross, axis=1)
    face = rng.choice(len(faces), size=count, p=area / area.sum())
    a, b = rng.random(count), rng.random(count)
    flip = a + b > 1
    a[flip], b[flip] = 1 - a[flip], 1 - b[flip]
    weights = np.stack([1 - a - b, a, b], axis=1)
    points = np.einsum("nk,nkd->nd", weights, tri[face])
    rgb = np.einsum("nk,nkd->nd", weights, colors[faces[face]].astype(np.float32))
    normals = cross[face] / np.maximum(area[face], 1e-12)[:, None]
    return points, normals, rgb


def render_preview(vertices: np.ndarray, faces: np.ndarray, colors: np.ndarray, view: View,
                   width: int = 640, samples: int = 400_000) -> np.ndarray:
    """BGR image of the mesh from ``view``'s pose (the camera's intrinsics scaled to ``width``)."""
    scale = width / view.width
    # render at half size, one pixel per surface sample, then enlarge: fills the gaps between samples
    half = 0.5 * scale
    w, h = int(round(view.width * half)), int(round(view.height * half))
    points, normals, rgb = sample_surface(vertices, faces, colors, samples)
    cam = points @ view.R.T + view.t
    front = cam[:, 2] > 1e-6
    uv = cam[front] @ view.K.T
    u = np.floor(uv[:, 0] / uv[:, 2] * half).astype(np.int64)
    v = np.floor(uv[:, 1] / uv[:, 2] * half).astype(np.int64)
    inside = (u >= 0) & (u < w) & (v >= 0) & (v < h)
    z = cam[front][inside, 2]
    pixel = v[inside] * w + u[inside]
    normals = normals[front][inside] @ view.R.T
    shade = np.clip(np.abs(normals[:, 2]), 0.25, 1.0)[:, None]
    rgb = rgb[front][inside] * (0.6 + 0.4 * shade)
    order = np.lexsort((z, pixel))             # nearest first within each pixel
    first = np.ones(len(order), bool)
    first[1:] = pixel[order][1:] != pixel[order][:-1]
    keep = order[first]
    image = np.zeros((h * w, 3), np.float32)
    filled = np.zeros(h * w, np.float32)
    image[pixel[keep]] = rgb[keep]
    filled[pixel[keep]] = 1
    image, filled = image.reshape(h, w, 3), filled.reshape(h, w)
    # pinholes between samples: average of the filled 3x3 neighbours; background stays dark grey
    total = cv2.boxFilter(image, -1, (3, 3), normalize=False)
    count = cv2.boxFilter(filled, -1, (3, 3), normalize=False)
    hole = (filled == 0) & (count >= 3)
    image[hole] = total[hole] / count[hole][:, None]
    image[(filled == 0) & ~hole] = 32
    image = cv2.resize(np.clip(image, 0, 255).astype(np.uint8), (int(round(view.width * scale)),
                       int(round(view.height * scale))), interpolation=cv2.INTER_LINEAR)
    return cv2.cvtColor(image, cv2.COLOR_RGB2BGR)


def write_preview(path: Path, image: np.ndarray) -> None:
    write_png_atomic(Path(path), image)
