"""The ground truth of a rendered sample (the frames are encoded by ``onyx_tools.video.encode_mp4``)."""

from __future__ import annotations

import json
from pathlib import Path

from .path import CameraPath, Intrinsics

TRUTH_FORMAT = "onyx-sample-truth/1"


def truth_document(path: CameraPath, intr: Intrinsics, kind: str, seed: int, scene_summary: dict,
                   video_name: str) -> dict:
    centres = path.centres
    return {
        "format": TRUTH_FORMAT,
        "video": video_name,
        "kind": kind,
        "seed": seed,
        "fps": path.fps,
        "frame_count": len(path),
        "intrinsics": intr.as_dict(),
        "convention": "cam_from_world: x_cam = R x_world + t (OpenCV/COLMAP axes: x right, y down, z forward);"
                      " centre = -R^T t; world: floor y = 0, y down, walk along +z; metres",
        "path_length": path.path_length,
        "scene": scene_summary,
        "frames": [{"index": i, "timestamp_s": float(i / path.fps),
                    "cam_from_world": {"R": path.rotations[i].tolist(), "t": path.translations[i].tolist()},
                    "centre": centres[i].tolist()} for i in range(len(path))],
    }


def write_truth(doc: dict, out_path: str | Path) -> Path:
    out_path = Path(out_path)
    tmp = out_path.with_name(out_path.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1))
    tmp.replace(out_path)
    return out_path
