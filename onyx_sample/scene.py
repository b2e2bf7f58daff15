"""The synthetic scene: a textured room with boxes and pillars at several depths.

World axes follow OpenCV: x right, y down, z forward. The floor is the plane y = 0, the
ceiling y = -ROOM_HEIGHT; the camera walks along +z. Every surface is an axis-aligned
rectangle carrying its own procedural texture (see ``textures.py``); all textures of a scene
live in one flat atlas with a mip pyramid per rectangle, so the renderer can look up any
pixel's colour with a handful of vectorised gathers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .textures import make_texture, mip_pyramid

ROOM_X = (-3.2, 3.2)
ROOM_HEIGHT = 3.0
ROOM_Z = (-3.0, 13.0)
TEXELS_PER_M = 128.0
MIP_LEVELS = 6
_ALIGN = 2 ** (MIP_LEVELS - 1)

# (centre x, centre z, size x, height, size z): boxes on the floor and floor-to-ceiling pillars,
# placed clear of the camera path (x in [-0.1, 0.6] for z in [0, 6]) at depths from 2 m to 12 m.
OBSTACLES = (
    (-1.9, 3.5, 0.5, ROOM_HEIGHT, 0.5),  # pillar, left
    (2.2, 2.5, 0.9, 1.0, 0.8),           # low box, right
    (2.3, 7.5, 0.5, ROOM_HEIGHT, 0.5),   # pillar, right
    (-1.6, 9.0, 1.2, 1.3, 1.0),          # box, left
    (0.4, 11.0, 0.7, 2.0, 0.7),          # tall box, ahead
    (-2.4, 6.0, 0.6, 0.7, 1.2),          # low box, left
    (1.4, 12.2, 1.0, 0.6, 0.8),          # low box by the far wall
)


@dataclass(frozen=True)
class Rect:
    """An axis-aligned rectangle ``x[axis] == value`` spanning ``lo``..``hi`` in the other two axes.

    ``normal_sign`` gives the side it faces: its normal is ``normal_sign * e_axis``.
    """

    axis: int
    value: float
    lo: tuple[float, float]
    hi: tuple[float, float]
    normal_sign: float
    name: str

    @property
    def other_axes(self) -> tuple[int, int]:
        return tuple(a for a in range(3) if a != self.axis)  # type: ignore[return-value]

    @property
    def normal(self) -> np.ndarray:
        n = np.zeros(3)
        n[self.axis] = self.normal_sign
        return n

    def faces(self, point: np.ndarray) -> bool:
        """True when ``point`` is on the side the rectangle faces (so it can be seen from there)."""
        return (point[self.axis] - self.value) * self.normal_sign > 0


def _box_rects(lo: np.ndarray, hi: np.ndarray, name: str, inward: bool, skip_bottom: bool) -> list[Rect]:
    rects = []
    for axis in range(3):
        others = [a for a in range(3) if a != axis]
        for side, value in (("min", lo[axis]), ("max", hi[axis])):
            if skip_bottom and axis == 1 and side == "max":  # y max is the floor side (y down)
                continue
            outward = -1.0 if side == "min" else 1.0
            rects.append(Rect(axis, float(value), (float(lo[others[0]]), float(lo[others[1]])),
                              (float(hi[others[0]]), float(hi[others[1]])),
                              -outward if inward else outward, f"{name}.{'xyz'[axis]}{side}"))
    return rects


def room_rects() -> list[Rect]:
    lo = np.array([ROOM_X[0], -ROOM_HEIGHT, ROOM_Z[0]])
    hi = np.array([ROOM_X[1], 0.0, ROOM_Z[1]])
    rects = _box_rects(lo, hi, "room", inward=True, skip_bottom=False)
    for i, (cx, cz, sx, h, sz) in enumerate(OBSTACLES):
        lo = np.array([cx - sx / 2, -h, cz - sz / 2])
        hi = np.array([cx + sx / 2, 0.0, cz + sz / 2])
        rects += _box_rects(lo, hi, f"obstacle{i}", inward=False, skip_bottom=True)
    return rects


@dataclass
class SampleScene:
    """Geometry, lights and the texture atlas of one seeded scene."""

    seed: int
    rects: list[Rect]
    atlas: np.ndarray                  # (N, 3) uint8, all texels of all mip levels
    level_offset: np.ndarray           # (K, L) int64 start of rect k's level l in the atlas
    level_width: np.ndarray            # (K, L) int64
    level_height: np.ndarray           # (K, L) int64
    texels_per_m: np.ndarray           # (K, 2) level-0 density along the rect's two axes
    lights: np.ndarray = field(default_factory=lambda: np.array(
        [[0.0, -2.6, 0.5], [0.3, -2.6, 5.0], [-0.3, -2.6, 10.0]]))
    light_power: float = 1.0

    @property
    def levels(self) -> int:
        return self.level_offset.shape[1]

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return (np.array([ROOM_X[0], -ROOM_HEIGHT, ROOM_Z[0]]), np.array([ROOM_X[1], 0.0, ROOM_Z[1]]))

    def summary(self) -> dict:
        return {"seed": self.seed, "room_x": ROOM_X, "room_height": ROOM_HEIGHT, "room_z": ROOM_Z,
                "obstacles": [dict(zip(("x", "z", "size_x", "height", "size_z"), o)) for o in OBSTACLES],
                "rectangles": len(self.rects), "texels": int(self.atlas.shape[0])}


def build_scene(seed: int = 0) -> SampleScene:
    """The scene for ``seed``: same seed, same geometry and the same texels."""
    rects = room_rects()
    textures = [make_texture(seed * 1000 + i, *_texture_shape(rect, TEXELS_PER_M)) for i, rect in enumerate(rects)]
    return scene_from_textures(seed, rects, textures)


def _texture_shape(rect: Rect, texels_per_m: float) -> tuple[int, int]:
    """(width, height) in texels of ``rect``'s texture: width along its first other axis."""
    size = lambda extent: max(_ALIGN, int(np.ceil(extent * texels_per_m / _ALIGN)) * _ALIGN)  # noqa: E731
    return size(rect.hi[0] - rect.lo[0]), size(rect.hi[1] - rect.lo[1])


def scene_from_textures(seed: int, rects: list[Rect], textures: list[np.ndarray],
                        lights: np.ndarray | None = None) -> SampleScene:
    """A scene of ``rects``, each covered by its texture (H, W, 3 uint8; sides divisible by 32)."""
    k = len(rects)
    offsets = np.zeros((k, MIP_LEVELS), np.int64)
    widths = np.zeros((k, MIP_LEVELS), np.int64)
    heights = np.zeros((k, MIP_LEVELS), np.int64)
    density = np.zeros((k, 2))
    chunks, cursor = [], 0
    for i, (rect, tex) in enumerate(zip(rects, textures)):
        ext_a, ext_b = rect.hi[0] - rect.lo[0], rect.hi[1] - rect.lo[1]
        h, w = tex.shape[:2]  # texture x along the first other axis
        if w % _ALIGN or h % _ALIGN:
            raise ValueError(f"texture of {rect.name} is {w}x{h}: sides must be multiples of {_ALIGN}")
        density[i] = (w / ext_a, h / ext_b)
        for level, img in enumerate(mip_pyramid(tex, MIP_LEVELS)):
            offsets[i, level] = cursor
            heights[i, level], widths[i, level] = img.shape[:2]
            chunks.append(img.reshape(-1, 3))
            cursor += img.shape[0] * img.shape[1]
    atlas = np.concatenate(chunks, axis=0)
    if lights is None:
        return SampleScene(seed, rects, atlas, offsets, widths, heights, density)
    return SampleScene(seed, rects, atlas, offsets, widths, heights, density, lights=np.asarray(lights, float))
