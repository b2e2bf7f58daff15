"""SfM with Onyx's strategy against exhaustive matching as the first version did it, on the same frames.

    .venv/bin/python -m bench sfm

Both sides are the sfm tool's own code (``onyx_sfm``), on the same images/ folder written by the real
ingest step:
- Onyx: ``reconstruct`` with the tool's default ``SfmConfig`` (matching=auto: sequential matching, and
  only if that registers under 90% in one model, a wider retry; incremental mapper), exactly what
  ``python -m onyx_sfm`` runs for a normal video.
- baseline: ``run_sequence_sfm`` with ``matching="exhaustive"``: the same SIFT extraction, every pair
  matched (the first version hard-coded exhaustive matching), then the mapper. The first version's own
  mapper was a GPU global SfM, later the COLMAP (incremental) mapper; the default here is incremental, so
  only the matching strategy differs (ONYX_BENCH_SFM_BASELINE_MAPPER=global for the global mapper).

Frames: the issue asks for 300. On 2 CPU cores the 300-frame run takes 81 minutes (measured
2026-11-29: exhaustive matching 19 min for 44,850 pairs, and the incremental mapper about 29 min on
each side), so the default is N = 100 frames of the synthetic walk-through
(onyx_dagster.sample, 640x360, every frame: 4,950 exhaustive pairs). The matching ratio improves with N since
sequential matching is linear in frames (0.18x at 100, 0.074x at 300), but the mapper then dominates. Scale with ONYX_BENCH_SFM_FRAMES=300 (and ONYX_BENCH_SFM_SIZE=WxH);
ONYX_BENCH_SFM_SOURCE=stone_sign uses every frame of ../shared/datasets/real_videos/stone_sign.mp4 (83
real frames, 450x800) instead. Each side runs once (minutes each); the machine is shared, so the wall
times are noisy.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

from .harness import DATASETS, OUT, Row

CACHE = OUT / "cache"


def _frames_source() -> tuple[str, Path, float]:
    """(description, video, seconds between frames that takes every frame)."""
    source = os.environ.get("ONYX_BENCH_SFM_SOURCE", "sample")
    if source == "stone_sign":
        video = DATASETS / "real_videos" / "stone_sign.mp4"
        if not video.is_file():
            raise FileNotFoundError(f"{video} not found (the ../shared checkout beside the repo)")
        return "stone_sign.mp4 (real, 450x800), every frame", video, 1 / 25
    if source != "sample":
        raise ValueError(f"ONYX_BENCH_SFM_SOURCE={source!r}: use sample or stone_sign")
    frames = int(os.environ.get("ONYX_BENCH_SFM_FRAMES", 100))
    width, height = (int(v) for v in os.environ.get("ONYX_BENCH_SFM_SIZE", "640x360").lower().split("x"))
    folder = CACHE / f"walk_{frames}_{width}x{height}"
    video = folder / "sample-normal.mp4"
    if not video.is_file():
        from onyx_dagster.sample.make import make_sample_video as make

        tmp = folder.with_name(f".tmp-{folder.name}")
        shutil.rmtree(tmp, ignore_errors=True)
        make(tmp, "normal", frames=frames, width=width, height=height)
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(tmp, folder)
    from onyx_tools.video import probe_video

    fps = probe_video(video).fps
    return f"synthetic walk-through {width}x{height}, {frames} frames, every frame", video, 1 / fps


def _extract(video: Path, interval_s: float, batch: Path):
    from onyx_ingest.config import IngestConfig
    from onyx_ingest.ingest import ingest_video
    from onyx_tools.layout import BatchLayout

    layout = BatchLayout(batch)
    cfg = IngestConfig(video="normal", interval=interval_s * 0.999, sharpest_in_window=False)
    report = ingest_video(cfg, video, layout)
    return layout, report


def _figures(result) -> str:
    from onyx_sfm.model_stats import model_figures

    fig = model_figures(result.reconstruction, result.total)
    return (f"{fig['registered']}/{fig['total']} registered, {fig['points3d']} points, "
            f"{fig['mean_reprojection_error']:.3f} px reproj")


def _attempts(result) -> str:
    return "; ".join(f"{a.strategy} {a.registered}/{a.total} in {a.models} model(s) {a.seconds:.0f} s"
                     for a in result.attempts)


def _matching_s(result) -> float:
    return sum(v for k, v in result.timings.items() if k.startswith("matching"))


def run() -> list[Row]:
    from onyx_sfm.image_index import read_image_index
    from onyx_sfm.reconstruct import reconstruct
    from onyx_sfm.sequence_sfm import run_sequence_sfm
    from onyx_sfm.strategy import SfmConfig

    import pycolmap

    if not os.environ.get("ONYX_BENCH_SFM_VERBOSE"):  # COLMAP's INFO lines would bury the table
        pycolmap.logging.minloglevel = 1
    description, video, interval = _frames_source()
    baseline_mapper = os.environ.get("ONYX_BENCH_SFM_BASELINE_MAPPER", "incremental")
    with tempfile.TemporaryDirectory(prefix="onyx-bench-sfm-") as tmp:
        layout, report = _extract(video, interval, Path(tmp) / "batch")
        index = read_image_index(layout.images)
        n = len(index.names)

        started = time.perf_counter()
        onyx = reconstruct(layout.images, index, Path(tmp) / "onyx", SfmConfig())
        onyx_s = time.perf_counter() - started

        started = time.perf_counter()
        base = run_sequence_sfm(layout.images, index.names, Path(tmp) / "exhaustive",
                                SfmConfig(matching="exhaustive", mapper=baseline_mapper))
        base_s = time.perf_counter() - started

    pairs_exhaustive = n * (n - 1) // 2
    notes = (f"N = {n} frames: {description} ({report['resolution']}); "
             f"Onyx (kept {onyx.strategy}; attempts: {_attempts(onyx)}): {_figures(onyx)}, "
             f"SIFT {onyx.timings.get('features', 0):.0f} s, matching {_matching_s(onyx):.0f} s; "
             f"baseline (exhaustive+{baseline_mapper}, {pairs_exhaustive} pairs): {_figures(base)}, "
             f"SIFT {base.timings.get('features', 0):.0f} s, matching {_matching_s(base):.0f} s; "
             "one run each, Onyx first, shared 2-core machine (noisy)")
    return [Row(f"SfM, {n} frames, Onyx strategy vs exhaustive", onyx_s, base_s, "s", "<= 0.2x", notes)]


if __name__ == "__main__":
    for row in run():
        print(row, f"ratio {row.ratio:.3f}")
