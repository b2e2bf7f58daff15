"""Which 360 views to match: never the views as unrelated images.

Views of one frame share a centre, so matching them constrains nothing the split does not
already fix. Across neighbouring frames only views that look roughly the same way can see
the same surfaces; matching just those keeps the pair count linear in frames
(cube12, 60 degrees: 36 of the 144 view pairs per frame pair).
"""

from __future__ import annotations

import numpy as np

from onyx_tools.spherical import view_rotation

from .image_index import ViewInfo


def view_axis(view: ViewInfo) -> np.ndarray:
    """The optical axis of a view in panorama axes."""
    return view_rotation(view.yaw_deg, view.pitch_deg) @ np.array([0.0, 0.0, 1.0])


def similar_view_pairs(views: list[ViewInfo], max_angle_deg: float) -> list[tuple[str, str]]:
    """Ordered (a, b) view-name pairs whose optical axes are at most ``max_angle_deg`` apart (a == b included)."""
    limit = np.cos(np.radians(max_angle_deg)) - 1e-9
    axes = {view.name: view_axis(view) for view in views}
    return [(a.name, b.name) for a in views for b in views if float(axes[a.name] @ axes[b.name]) >= limit]


def frame_pairs(frame_numbers: list[int], overlap: int, *, quadratic: bool = False) -> list[tuple[int, int]]:
    """Sequential pairs of frames: each with the next ``overlap`` frames in capture order and, when
    ``quadratic``, with the frames 2^k further on for k < ``overlap`` (COLMAP's quadratic overlap)."""
    ordered = sorted(frame_numbers)
    pairs = {(i, j) for i in range(len(ordered)) for j in range(i + 1, min(len(ordered), i + 1 + overlap))}
    if quadratic:
        pairs |= {(i, i + (1 << k)) for i in range(len(ordered)) for k in range(overlap)
                  if i + (1 << k) < len(ordered)}
    return [(ordered[i], ordered[j]) for i, j in sorted(pairs)]


def cross_frame_view_pairs(frames: dict[int, dict[str, str]], views: list[ViewInfo], frame_overlap: int,
                           max_angle_deg: float) -> list[tuple[str, str]]:
    """Image-name pairs to match: similar views of frames at most ``frame_overlap`` apart."""
    similar = similar_view_pairs(views, max_angle_deg)
    pairs = []
    for first, second in frame_pairs(list(frames), frame_overlap):
        for view_a, view_b in similar:
            a, b = frames[first].get(view_a), frames[second].get(view_b)
            if a and b:
                pairs.append((a, b))
    return pairs
