"""Keyframes of a densely sampled video: the frames the incremental mapper builds the model from.

Incremental mapping costs more than linearly in the frames it holds: every global bundle
adjustment covers the whole model, and there is one each time the model grows by 10%.
Measured on the synthetic walk (640x360, 2 cores): 99 s of mapping for 100 frames, about
29 minutes for 300 frames of the same walk. Neighbouring frames of a video see nearly the same
thing, so the model is built from keyframes spaced by how far the image content moved, and
the frames between them are registered into it afterwards (``colmap_steps.map_from_keyframes``).
How far the content moved is measured on what matching already wrote: the median displacement
of a pair's inlier matches, so choosing keyframes costs no image work.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pycolmap

# A pair this weak does not chain two keyframes: too few common features to carry tracks over.
MIN_KEYFRAME_INLIERS = 100


def pair_motion(database: Path, names: list[str]) -> tuple[dict[tuple[int, int], tuple[float, int]], float]:
    """For each verified pair (i, j), i < j indices into ``names``: the median displacement of its
    inlier matches in pixels and their count; and the larger image side in pixels."""
    db = pycolmap.Database.open(database)
    try:
        images = {image.name: image for image in db.read_all_images()}
        index = {images[name].image_id: i for i, name in enumerate(names) if name in images}
        keypoints = {image_id: np.asarray(db.read_keypoints(image_id))[:, :2] for image_id in index}
        camera = db.read_camera(images[names[0]].camera_id)
        side = float(max(camera.width, camera.height))
        motion: dict[tuple[int, int], tuple[float, int]] = {}
        pair_ids, geometries = db.read_two_view_geometries()
        for pair_id, geometry in zip(pair_ids, geometries):
            first, second = pycolmap.pair_id_to_image_pair(pair_id)
            matches = np.asarray(geometry.inlier_matches)
            if first not in index or second not in index or len(matches) == 0:
                continue
            moved = np.linalg.norm(keypoints[first][matches[:, 0]] - keypoints[second][matches[:, 1]], axis=1)
            i, j = sorted((index[first], index[second]))
            motion[(i, j)] = (float(np.median(moved)), len(matches))
        return motion, side
    finally:
        db.close()


def keyframe_step(motion: dict[tuple[int, int], tuple[float, int]], max_motion_px: float,
                  min_inliers: int = MIN_KEYFRAME_INLIERS) -> int:
    """The largest power of two s such that frames s apart moved at most ``max_motion_px`` and frames
    2s apart still share ``min_inliers`` inlier matches (medians over the sequence); 1 when none does.

    A power of two because sequential matching pairs each frame with the frames 2^k after it:
    keyframes every s frames are then matched with the keyframes 2^k keyframes after them, the same
    structure the mapper gets on the whole sequence. The next keyframe but one must still match: a
    track then spans three keyframes or more, which is what registers a keyframe (measured on
    stone_sign, 83 frames: with only neighbouring keyframes matched, 16 of 22 keyframes placed).
    """
    by_offset: dict[int, list[tuple[float, int]]] = {}
    for (i, j), measured in motion.items():
        by_offset.setdefault(j - i, []).append(measured)
    medians = {offset: np.median(np.asarray(pairs, float), axis=0)
               for offset, pairs in by_offset.items() if len(pairs) >= 2}
    step = 1
    while 2 * step in medians and 4 * step in medians:
        if medians[2 * step][0] > max_motion_px or medians[4 * step][1] < min_inliers:
            break
        step *= 2
    return step


def select_keyframes(count: int, step: int, motion: dict[tuple[int, int], tuple[float, int]] | None = None,
                     max_motion_px: float = float("inf"), min_inliers: int = MIN_KEYFRAME_INLIERS) -> list[int]:
    """Every ``step``-th of ``count`` frames and the last one; where two consecutive keyframes are not a
    strong pair in ``motion`` (not matched, fewer than ``min_inliers`` inliers, or content moved more
    than twice ``max_motion_px``: a fast pan, a shaky stretch), the frame halfway between them is
    added, again until every consecutive pair holds or they are neighbours. The median that chose the
    step says what most of the video does; this keeps the chain where it does something else."""
    keyframes = list(range(0, count, step))
    if keyframes[-1] != count - 1:
        keyframes.append(count - 1)
    if motion is None:
        return keyframes
    chained = [keyframes[0]]
    pending = keyframes[1:][::-1]
    while pending:
        target = pending[-1]
        moved, inliers = motion.get((chained[-1], target), (float("inf"), 0))
        if target - chained[-1] > 1 and (inliers < min_inliers or moved > 2 * max_motion_px):
            pending.append((chained[-1] + target) // 2)
            continue
        chained.append(pending.pop())
    return chained
