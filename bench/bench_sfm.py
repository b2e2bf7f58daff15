"""The sfm step with Onyx's default strategy against exhaustive matching + incremental mapping, on the
same frames, scored against the known camera path; and how Onyx's time grows with the frame count.

    .venv/bin/python -m bench sfm

Both sides are the sfm tool's own code (``onyx_sfm``), on the same images/ folder written by the real
ingest step from the synthetic walk-through (onyx_sample, 640x360, every frame):
- Onyx: ``reconstruct`` with the tool's default ``SfmConfig``, exactly what ``python -m onyx_sfm`` runs
  for a normal video (sequential matching, retrieval pairs if that falls short, the default mapper from keyframes
  where frames are dense, re-registration of frames left out).
- baseline: ``run_sequence_sfm`` with ``matching="exhaustive", mapper="incremental", keyframe_motion=0``:
  the same SIFT extraction, every pair matched (Onyx 1.0 hard-coded exhaustive matching), COLMAP's
  incremental mapper on every frame at once.

Rows: for each N in ONYX_BENCH_SFM_FRAMES (default "100,300") the whole step's seconds, Onyx vs
baseline (goal <= 0.2x), with both sides' registration and centre RMS (% of the true path) in the
notes, and the matching seconds of the retrieval fallback run on its own (``matching="retrieval"``:
the sequential pairs and each frame's top-k retrieved frames) vs the baseline's exhaustive matching
(goal <= 0.2x, with the same registration); then for each N in ONYX_BENCH_SFM_GROWTH (default "100,300,1000") Onyx's seconds per frame
against its seconds per frame at the smallest N (goal near-linear: <= 2x). Onyx's runs are shared by
both lists. ONYX_BENCH_SFM_SIZE=WxH changes the frame size. One run each on a shared machine: noisy.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from .harness import OUT, Row

CACHE = OUT / "cache"


def _counts(variable: str, default: str) -> list[int]:
    return sorted({int(v) for v in os.environ.get(variable, default).split(",") if v.strip()})


def _sample(frames: int, width: int, height: int) -> Path:
    folder = CACHE / f"walk_{frames}_{width}x{height}"
    video = folder / "sample-normal.mp4"
    if not video.is_file():
        from onyx_sample.make import make_sample_video

        tmp = folder.with_name(f".tmp-{folder.name}")
        shutil.rmtree(tmp, ignore_errors=True)
        make_sample_video(tmp, "normal", frames=frames, width=width, height=height)
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(tmp, folder)
    return video


def _extract(video: Path, batch: Path):
    from onyx_ingest.config import IngestConfig
    from onyx_ingest.ingest import ingest_video
    from onyx_tools.layout import BatchLayout
    from onyx_tools.video import probe_video

    layout = BatchLayout(batch)
    every_frame = 1 / probe_video(video).fps
    ingest_video(IngestConfig(video="normal", interval=every_frame * 0.999, sharpest_in_window=False), video, layout)
    return layout


def _score(result, layout, truth) -> str:
    """Registration and centre RMS as % of the true path (image names mapped to source frames)."""
    from onyx_sfm.model_stats import model_poses
    from onyx_tools.pose_score import score_poses

    index = json.loads(layout.image_index.read_text())
    source = {image["name"]: image["source_frame"] for image in index["images"]}
    true = {frame: (truth.path.rotations[frame], truth.path.centres[frame]) for frame in source.values()}
    estimated = {source[name]: pose for name, pose in model_poses(result.reconstruction).items()}
    text = f"{result.registered}/{result.total} registered"
    if len(estimated) >= 3:
        score = score_poses(true, estimated)
        text += f", centre RMS {score.centre_rms_pct:.3f}% of the path, median rotation {score.median_rotation_deg:.3f} deg"
    return text


def _attempts(result) -> str:
    return "; ".join(f"{a.strategy} {a.registered}/{a.total} in {a.models} model(s) {a.seconds:.0f} s"
                     + (f" ({a.note})" if a.note else "") for a in result.attempts)


def _timings(result) -> str:
    return ", ".join(f"{stage} {seconds:.0f} s" for stage, seconds in result.timings.items())


def run() -> list[Row]:
    import pycolmap

    from onyx_sample.make import load_truth
    from onyx_sfm.config import SfmConfig
    from onyx_sfm.image_index import read_image_index
    from onyx_sfm.reconstruct import reconstruct
    from onyx_sfm.sequence_sfm import run_sequence_sfm

    if not os.environ.get("ONYX_BENCH_SFM_VERBOSE"):  # COLMAP's INFO lines would bury the table
        pycolmap.logging.minloglevel = 1
    width, height = (int(v) for v in os.environ.get("ONYX_BENCH_SFM_SIZE", "640x360").lower().split("x"))
    compared = _counts("ONYX_BENCH_SFM_FRAMES", "100,300")
    growth = _counts("ONYX_BENCH_SFM_GROWTH", "100,300,1000")
    rows, onyx_seconds = [], {}
    for frames in sorted(set(compared) | set(growth)):
        video = _sample(frames, width, height)
        truth = load_truth(video.with_name("sample-normal.truth.json"))
        with tempfile.TemporaryDirectory(prefix="onyx-bench-sfm-") as tmp:
            layout = _extract(video, Path(tmp) / "batch")
            index = read_image_index(layout.images)
            started = time.perf_counter()
            onyx = reconstruct(layout.images, index, Path(tmp) / "onyx", SfmConfig())
            onyx_seconds[frames] = time.perf_counter() - started
            onyx_text = (f"Onyx kept {onyx.strategy}: {_score(onyx, layout, truth)} "
                         f"[{_attempts(onyx)}; {_timings(onyx)}]")
            print(f"sfm {frames} frames: {onyx_seconds[frames]:.0f} s, {onyx_text}", flush=True)
            if frames not in compared:
                continue
            started = time.perf_counter()
            base = run_sequence_sfm(layout.images, index.names, Path(tmp) / "exhaustive",
                                    SfmConfig(matching="exhaustive", mapper="incremental", keyframe_motion=0))
            base_seconds = time.perf_counter() - started
            base_text = f"exhaustive+incremental: {_score(base, layout, truth)} [{_timings(base)}]"
            print(f"sfm {frames} frames: baseline {base_seconds:.0f} s, {base_text}", flush=True)
            # The fallback on its own (sequential + retrieved pairs in one pass, on a fresh database): what a
            # sequence costs whose sequential pass fell short, against matching every pair.
            fallback = run_sequence_sfm(layout.images, index.names, Path(tmp) / "retrieval",
                                        SfmConfig(matching="retrieval"))
            fallback_text = (f"retrieval: {_score(fallback, layout, truth)} "
                             f"[{'; '.join(a.note for a in fallback.attempts)}; {_timings(fallback)}]")
            print(f"sfm {frames} frames: {fallback_text}", flush=True)
        rows.append(Row(f"SfM step, {frames} frames, Onyx default vs exhaustive+incremental", onyx_seconds[frames],
                        base_seconds, "s", "<= 0.2x",
                        f"synthetic walk {width}x{height}; {onyx_text}; {base_text}; one run each, Onyx first"))
        rows.append(Row(f"matching, {frames} frames, the retrieval fallback (sequential + retrieved pairs) vs "
                        f"exhaustive", fallback.timings["matching_retrieval"], base.timings["matching_exhaustive"],
                        "s", "<= 0.2x", fallback_text))
    smallest = min(growth)
    for frames in growth:
        per_frame = onyx_seconds[frames] / frames
        rows.append(Row(f"SfM growth, Onyx default, s per frame at {frames} vs {smallest} frames", per_frame,
                        onyx_seconds[smallest] / smallest, "s/frame", "<= 2x",
                        f"{onyx_seconds[frames]:.0f} s for {frames} frames"))
    return rows


if __name__ == "__main__":
    for row in run():
        print(row, f"ratio {row.ratio:.3f}")
