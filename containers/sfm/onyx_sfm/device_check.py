"""SIFT extraction and matching on the GPU against the CPU, on one image folder (the GPU check's SfM line).

    python -m onyx_sfm.device_check IMAGE_DIR WORK_DIR [--devices cpu,cuda]

For each device: features and exhaustive matching with that device, then the same incremental
mapper, and one JSON line on stdout with the seconds of each stage, the registered images, the
points and the mean reprojection error. It needs only pycolmap (the CPU build, or a CUDA build
such as pycolmap-cuda12), so it runs in the small SfM environment of ``scripts/gpu-check``.
"""

from __future__ import annotations

from onyx_tools import native_order  # noqa: F401  (before pycolmap: see onyx_tools/native_order.py)

import argparse
import json
import sys
import time
from pathlib import Path

import pycolmap

from .colmap_steps import extract_sift, largest_model, map_incremental, match_exhaustive

DEVICES = {"cpu": pycolmap.Device.cpu, "cuda": pycolmap.Device.cuda}


def run_on(device: str, image_dir: Path, work: Path) -> dict:
    names = sorted(p.name for p in image_dir.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    work.mkdir(parents=True, exist_ok=True)
    database = work / "database.db"
    database.unlink(missing_ok=True)
    row: dict = {"device": device, "images": len(names)}
    started = time.perf_counter()
    extract_sift(database, image_dir, names, camera_model="SIMPLE_RADIAL", device=DEVICES[device])
    row["extract_s"] = round(time.perf_counter() - started, 2)
    started = time.perf_counter()
    match_exhaustive(database, device=DEVICES[device])
    row["match_s"] = round(time.perf_counter() - started, 2)
    started = time.perf_counter()
    model = largest_model(map_incremental(database, image_dir, work / "models"))
    row["map_s"] = round(time.perf_counter() - started, 2)
    row["registered"] = model.num_reg_images() if model else 0
    row["points"] = model.num_points3D() if model else 0
    row["reprojection_px"] = round(model.compute_mean_reprojection_error(), 3) if model else None
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images", type=Path)
    parser.add_argument("work", type=Path)
    parser.add_argument("--devices", default="cpu,cuda")
    args = parser.parse_args(argv)
    print(json.dumps({"pycolmap": pycolmap.__version__, "cuda_build": bool(pycolmap.has_cuda)}), flush=True)
    for device in args.devices.split(","):
        if device not in DEVICES:
            print(f"unknown device {device!r}: cpu or cuda", file=sys.stderr)
            return 2
        if device == "cuda" and not pycolmap.has_cuda:
            print(json.dumps({"device": device, "error": "this pycolmap build has no CUDA"}), flush=True)
            continue
        print(json.dumps(run_on(device, args.images, args.work / device)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
