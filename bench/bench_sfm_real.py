"""The sfm step on every real sequence in ../shared/datasets: Onyx's default against exhaustive matching
+ incremental mapping (what COLMAP does with its defaults) and against sequential + global mapping,
scored against the ground-truth cameras where the dataset has them.

    .venv/bin/python -m bench sfm_real

Frames as ``onyx run --scene outdoor --quality production`` makes them: the real ingest step on the
videos (stone_sign, holiday_display_01, and the Strecha scenes' videos), the photographs as they are
for chair_images and resized to 1024 px wide for the Strecha scenes (the frames step's size for a
photograph set of that kind). Rows per sequence: the step's seconds, Onyx vs exhaustive+incremental
(the notes say every strategy's registration, error and seconds); and, where there is ground truth,
the camera-centre RMS as % of the true path, Onyx vs exhaustive+incremental (goal <= 1.5x, issue
"poses that hold on real walks"). ONYX_BENCH_SFM_REAL_ONLY=castle,fountain runs the sequences whose
names hold one of those words. One run each on a shared machine: the seconds are noisy.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from .harness import DATASETS, Row

PHOTO_WIDTH = 1024
VIDEOS = {"stone_sign": "real_videos/stone_sign.mp4", "holiday_display_01": "real_videos/holiday_display_01.mp4",
          "castle-P30 video": "strecha_castle_p30", "fountain-P11 video": "strecha_fountain_p11"}
PHOTOGRAPHS = {"chair": "chair_images", "castle-P30 photographs": "strecha_castle_p30",
               "fountain-P11 photographs": "strecha_fountain_p11"}


def _video_frames(source: Path, target: Path) -> tuple[Path, dict[str, int]]:
    """The real frames step with its defaults; each image's source frame (0-based)."""
    from onyx_ingest.config import IngestConfig
    from onyx_ingest.ingest import ingest_video
    from onyx_tools.layout import BatchLayout

    video = source if source.suffix == ".mp4" else next(source.glob("*.mp4"))
    layout = BatchLayout(target)
    ingest_video(IngestConfig(scene="outdoor", quality="production", video="normal"), video, layout)
    index = json.loads(layout.image_index.read_text())
    return layout.images, {image["name"]: image["source_frame"] for image in index["images"]}


def _photographs(source: Path, target: Path) -> tuple[Path, dict[str, int]]:
    import cv2

    folder = source / "images" if (source / "images").is_dir() else source
    target.mkdir(parents=True)
    names = sorted(p.name for p in folder.glob("*.jpg"))
    for name in names:
        image = cv2.imread(str(folder / name))
        if folder != source and image.shape[1] > PHOTO_WIDTH:
            height = round(image.shape[0] * PHOTO_WIDTH / image.shape[1])
            image = cv2.resize(image, (PHOTO_WIDTH, height), interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(target / name), image, [cv2.IMWRITE_JPEG_QUALITY, 95])
    return target, {name: k for k, name in enumerate(names)}


def _truth(source: Path):
    from onyx_tools.pose_score import read_strecha_cameras

    cameras = source / "gt" / "cameras.json"
    return read_strecha_cameras(cameras) if cameras.is_file() else None


def _measure(images: Path, frame_of: dict[str, int], truth, work: Path, config) -> tuple[float, str, float | None]:
    """Seconds, a summary, and the centre RMS (% of the path) when there is ground truth."""
    from onyx_sfm.image_index import read_image_index
    from onyx_sfm.model_stats import model_poses
    from onyx_sfm.reconstruct import reconstruct
    from onyx_tools.pose_score import score_poses

    started = time.perf_counter()
    try:
        result = reconstruct(images, read_image_index(images), work, config)
    except Exception as error:  # a strategy that registers nothing is a result here, not a crash
        return time.perf_counter() - started, f"failed ({error})", None
    seconds = time.perf_counter() - started
    text = f"{result.registered}/{result.total} registered by {result.strategy}"
    rms = None
    if truth is not None and result.registered >= 3:
        cameras = sorted(truth)
        estimated = {cameras[frame_of[name]]: pose for name, pose in model_poses(result.reconstruction).items()}
        score = score_poses(truth, estimated)
        rms = score.centre_rms_pct
        text += f", centre RMS {rms:.3f}% of the path, median rotation {score.median_rotation_deg:.3f} deg"
    notes = "; ".join(a.note for a in result.attempts if a.note)
    return seconds, text + (f" ({notes})" if notes else "") + f", {seconds:.0f} s", rms


def run() -> list[Row]:
    import pycolmap

    from onyx_sfm.config import SfmConfig

    if not os.environ.get("ONYX_BENCH_SFM_VERBOSE"):
        pycolmap.logging.minloglevel = 1
    strategies = {"Onyx default": SfmConfig(),
                  "exhaustive+incremental": SfmConfig(matching="exhaustive", keyframe_motion=0),
                  "sequential+global": SfmConfig(mapper="global")}
    sequences = [(name, DATASETS / path, _video_frames) for name, path in VIDEOS.items()]
    sequences += [(name, DATASETS / path, _photographs) for name, path in PHOTOGRAPHS.items()]
    only = [word.strip() for word in os.environ.get("ONYX_BENCH_SFM_REAL_ONLY", "").split(",") if word.strip()]
    if only:
        sequences = [sequence for sequence in sequences if any(word in sequence[0] for word in only)]
    rows = []
    for name, source, make_frames in sequences:
        if not source.exists():
            print(f"sfm_real: {source} not found, {name} left out", flush=True)
            continue
        truth = _truth(source)
        with tempfile.TemporaryDirectory(prefix="onyx-bench-sfm-real-") as tmp:
            images, frame_of = make_frames(source, Path(tmp) / "frames")
            measured = {}
            for strategy, config in strategies.items():
                measured[strategy] = _measure(images, frame_of, truth, Path(tmp) / strategy.replace("+", "-"),
                                              config)
                shutil.rmtree(Path(tmp) / strategy.replace("+", "-"), ignore_errors=True)
                print(f"sfm_real {name}: {strategy}: {measured[strategy][1]}", flush=True)
        onyx, base = measured["Onyx default"], measured["exhaustive+incremental"]
        notes = "; ".join(f"{strategy}: {text}" for strategy, (_, text, _) in measured.items())
        rows.append(Row(f"SfM step, {name} ({len(frame_of)} frames), Onyx default vs exhaustive+incremental",
                        onyx[0], base[0], "s", "", notes))
        if onyx[2] is not None and base[2] is not None:
            rows.append(Row(f"camera centre RMS, {name}, Onyx default vs exhaustive+incremental", onyx[2],
                            base[2], "% of path", "<= 1.5x",
                            f"sequential+global: {measured['sequential+global'][2]}% of path"))
    return rows
