"""Encode rendered frames to an MP4 with ffmpeg through a stdin pipe, and write the ground truth."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from .path import CameraPath, Intrinsics

TRUTH_FORMAT = "onyx-sample-truth/1"


def encode_mp4(frames: Iterable[np.ndarray], out_path: str | Path, width: int, height: int, fps: float,
               crf: int = 17, equirectangular: bool = False, threads: int = 2) -> Path:
    """Stream (H, W, 3) uint8 RGB frames into ``out_path`` (H.264 libx264, yuv420p, constant ``fps``).

    Frames go to ffmpeg one at a time, so memory does not grow with the video's length. For a 360
    video the stream and file carry a ``spherical=equirectangular`` tag (ffmpeg 5 cannot write the
    sv3d box from the command line; the 2:1 aspect is what detection relies on anyway).
    """
    if shutil.which("ffmpeg") is None:
        raise RuntimeError("ffmpeg is not installed: install ffmpeg (Debian: apt-get install ffmpeg)")
    if width % 2 or height % 2:
        raise ValueError(f"yuv420p needs an even frame size, got {width}x{height}")
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    cmd = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
           "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-framerate", f"{fps}",
           "-i", "-", "-c:v", "libx264", "-preset", "medium", "-crf", str(crf), "-pix_fmt", "yuv420p",
           "-threads", str(threads), "-r", f"{fps}"]
    if equirectangular:
        cmd += ["-movflags", "+faststart+use_metadata_tags",
                "-metadata", "spherical=equirectangular",
                "-metadata:s:v:0", "spherical=equirectangular"]
    else:
        cmd += ["-movflags", "+faststart"]
    cmd.append(str(out_path))
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        for frame in frames:
            if frame.shape != (height, width, 3) or frame.dtype != np.uint8:
                raise ValueError(f"frame of shape {frame.shape} {frame.dtype}, expected ({height}, {width}, 3) uint8")
            proc.stdin.write(np.ascontiguousarray(frame).tobytes())
        proc.stdin.close()
        err = proc.stderr.read().decode(errors="replace")
        if proc.wait() != 0:
            raise RuntimeError(f"ffmpeg failed encoding {out_path}: {err.strip()}")
    except BaseException:
        proc.kill()
        proc.wait()
        out_path.unlink(missing_ok=True)
        raise
    return out_path


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
