"""The main job: a synthetic walk-through through the whole pipeline, then what came out.

    scripts/demo                 (or: .venv/bin/python -m onyx_sample.demo)

1. renders a textured room walked through along a known camera path and encodes it with
   ffmpeg (``onyx_sample``: no download, nothing from ../shared);
2. ``onyx run`` on it (a new batch) or ``onyx resume`` (when the batch exists: only what
   is missing, failed or stale runs again), on the embedded default: local runner,
   SQLite instance, CPU;
3. prints frames, registered images, the camera path error against the known path
   after similarity alignment, the recipe's output, how to open the UI, and last the
   viewer page (output/<recipe>/viewer/viewer.html: open it in a browser, offline).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from onyx_tools.layout import BatchLayout

from onyx_dagster.cli import main as onyx
from onyx_dagster.operations.context import STEPS, Onyx, resolve_data_root
from onyx_dagster.operations.verbs import default_batch_key, key_exists

from . import make_sample_video
from .align import camera_path_error
from .make import load_truth


def estimated_centres(layout: BatchLayout) -> dict[int, list[float]]:
    """Camera centre per source frame, from sparse/0 and the ingest index."""
    import pycolmap

    index = json.loads(layout.image_index.read_text())
    source_of = {image["name"]: image["source_frame"] for image in index["images"]}
    model = pycolmap.Reconstruction(str(layout.sparse_model))
    return {source_of[image.name]: image.projection_center().tolist()
            for image in model.images.values() if image.has_pose and image.name in source_of}


def summary(layout: BatchLayout, truth_path: Path, recipe: str) -> list[str]:
    index = json.loads(layout.image_index.read_text())
    truth = load_truth(truth_path)
    centres = estimated_centres(layout)
    error = camera_path_error(truth.centres_by_frame(), centres)
    lines = [
        f"frames            {len(index['images'])} images from {truth.frame_count} video frames "
        f"({index['interval_s']} s apart)",
        f"registered        {len(centres)} / {len(index['images'])}",
        f"camera path error {1000 * error['rmse']:.2f} mm RMS over a {error['path_length']:.2f} m walk "
        f"= {100 * error['ratio']:.4f}% of the path (after similarity alignment; goal <= 0.1%)",
        f"batch folder      {layout.root}",
        f"sparse model      {layout.sparse_model}",
    ]
    output = layout.recipe_output(recipe)
    if output.is_dir():
        files = ", ".join(sorted(p.name for p in output.iterdir() if p.is_file()))
        lines.append(f"{recipe:<17} {output} ({files})")
        metrics_file = output / "metrics.json"
        if metrics_file.is_file():
            metrics = json.loads(metrics_file.read_text())
            lines.append(f"splat             {metrics['gaussians']} Gaussians, held-out PSNR "
                         f"{metrics['first_eval']['psnr']:.1f} -> {metrics['last_eval']['psnr']:.1f} dB "
                         f"({metrics['rasterizer']}, {metrics['iterations']} iterations at {metrics['resolution']}); "
                         "the viewer page below shows it")
    report_file = output / "viewer" / "viewer.json"
    if report_file.is_file():
        report = json.loads(report_file.read_text())
        sizes = ", ".join(f"{name} {report[key]:.3f} MB" for name, key in (
            ("viewer.html", "page_mb"), ("splat.ply", "splat_ply_mb"), ("splat.sog", "sog_mb"),
            ("splat.spz", "spz_mb"), ("flythrough.mp4", "flythrough_mb")) if key in report)
        lines.append(f"viewer            {sizes}")
        if "flythrough_frames" in report:
            lines.append(f"fly-through       {report['flythrough_frames']} frames at {report['flythrough_resolution']}, "
                         f"{report['flythrough_fps']:g} fps ({report['renderer']} on {report['device']})")
    if layout.previews.is_dir():
        lines.append(f"previews          {layout.previews} ({', '.join(sorted(p.name for p in layout.previews.iterdir()))})")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="onyx-demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", default=None, help="default: $ONYX_DATA or ./onyx-data")
    parser.add_argument("--samples", default="onyx-samples", help="where the sample video is written")
    parser.add_argument("--frames", type=int, default=48, help="video frames to render (8 per second)")
    parser.add_argument("--until", choices=list(STEPS), default=list(STEPS)[-1],
                        help="stop after this step (default: the whole graph)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="STEP.SETTING=VALUE",
                        help="a tool setting for this run, as `onyx run --set` takes it "
                             "(e.g. reconstruction.cpu_budget_s=60); repeatable")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    data_root = resolve_data_root(args.data_root)
    sample = make_sample_video(Path(args.samples).resolve(), frames=args.frames, name="sample-walk")
    print(f"sample video: {sample.path} ({sample.frames} frames {sample.width}x{sample.height}, "
          f"rendered in {sample.render_s:.1f} s; ground truth {sample.truth_path.name})", flush=True)

    # indoor: masking is skipped as in Onyx 1.0 (no SegFormer weights needed on a laptop);
    # gaussian-proto: gsplat, on the CPU here. Every frame is taken (interval = 1 / fps).
    settings = ["--mode", "gaussian", "--scene", "indoor", "--quality", "proto",
                "--interval", f"{1 / sample.fps:.3f}"]
    key = default_batch_key(sample.path)
    with Onyx(data_root) as probe:
        exists = key_exists(probe, key)
    overrides = [arg for setting in args.overrides for arg in ("--set", setting)]
    if exists:
        print(f"batch {key} exists: resuming it (only what is missing, failed or stale runs)", flush=True)
        code = onyx(["resume", key, "--data-root", str(data_root), "--until", args.until, *overrides])
    else:
        code = onyx(["run", "--input", str(sample.path), "--output", str(data_root), *settings,
                     "--batch", key, "--until", args.until, *overrides])
    layout = BatchLayout(data_root / key)
    print()
    if layout.sparse_model.is_dir() and layout.image_index.is_file():
        for line in summary(layout, sample.truth_path, "gaussian-proto"):
            print(line)
    print(f"took {time.perf_counter() - started:.0f} s")
    home = os.environ.get("DAGSTER_HOME") or str(Onyx(data_root).home)
    print(f"\nopen the UI on this instance:\n  DAGSTER_HOME={home} ONYX_DATA={data_root} "
          f".venv/bin/dagster dev -w workspace.yaml\n  (or: .venv/bin/onyx ui {data_root})")
    page = layout.recipe_output("gaussian-proto") / "viewer" / "viewer.html"
    if page.is_file():
        print(f"\nopen the scene in a browser (a single file, works offline):\n  {page}\n"
              f"  (or: .venv/bin/onyx view {key} --data-root {data_root})")
    return code


if __name__ == "__main__":
    sys.exit(main())
