"""make_sample_video: render the synthetic walk-through, encode it, and write its ground truth."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from onyx_tools.video import encode_mp4

from .actors import Operator, PasserBy, with_actors
from .encode import TRUTH_FORMAT, truth_document, write_truth
from .path import CameraPath, Intrinsics, walk_path
from .render import render_equirect, render_pinhole
from .scene import build_scene

DEFAULTS = {
    "normal": {"frames": 48, "width": 640, "height": 360, "fps": 8.0},
    "360": {"frames": 24, "width": 1024, "height": 512, "fps": 4.0},
}


@dataclass(frozen=True)
class GroundTruth:
    """The known camera path of a sample video, as written next to it."""

    kind: str
    fps: float
    intrinsics: Intrinsics
    path: CameraPath
    path_length: float
    doc: dict = field(repr=False)

    @property
    def frame_count(self) -> int:
        return len(self.path)

    def centres_by_frame(self) -> dict[int, np.ndarray]:
        """True camera centre per source frame index (0-based, as decoded)."""
        return {i: c for i, c in enumerate(self.path.centres)}

    def centres_by_timestamp(self) -> dict[float, np.ndarray]:
        """True camera centre per presentation timestamp in seconds (i / fps)."""
        return {float(t): c for t, c in zip(self.path.timestamps, self.path.centres)}

    def rotations_by_frame(self) -> dict[int, np.ndarray]:
        """True cam_from_world rotation per source frame index."""
        return {i: r for i, r in enumerate(self.path.rotations)}

    def frame_at(self, timestamp_s: float) -> int:
        """The source frame index shown at ``timestamp_s``."""
        return int(np.clip(round(timestamp_s * self.fps), 0, self.frame_count - 1))

    def cam_from_world(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        return self.path.rotations[index], self.path.translations[index]


def load_truth(path: str | Path) -> GroundTruth:
    doc = json.loads(Path(path).read_text())
    if doc.get("format") != TRUTH_FORMAT:
        raise ValueError(f"{path} is not a sample ground-truth file ({TRUTH_FORMAT})")
    i = doc["intrinsics"]
    intr = Intrinsics(i["model"], i["width"], i["height"], i["fx"], i["fy"], i["cx"], i["cy"])
    frames = sorted(doc["frames"], key=lambda f: f["index"])
    cam_path = CameraPath(float(doc["fps"]),
                          np.array([f["cam_from_world"]["R"] for f in frames], np.float64),
                          np.array([f["cam_from_world"]["t"] for f in frames], np.float64))
    return GroundTruth(doc["kind"], float(doc["fps"]), intr, cam_path, float(doc["path_length"]), doc)


@dataclass(frozen=True)
class SampleVideo:
    path: Path           # the MP4
    truth_path: Path     # its ground truth JSON (next to it)
    kind: str            # "normal" or "360"
    frames: int
    width: int
    height: int
    fps: float
    seed: int
    path_length: float   # metres, along the true centres
    render_s: float      # rendering time, all frames (including scene build)
    encode_s: float      # total wall time minus render_s

    @property
    def duration_s(self) -> float:
        return self.frames / self.fps

    def truth(self) -> GroundTruth:
        return load_truth(self.truth_path)


def make_sample_video(out_dir: str | Path, kind: str = "normal", frames: int | None = None,
                      width: int | None = None, height: int | None = None, fps: float | None = None,
                      seed: int = 0, name: str | None = None, crf: int = 17,
                      hfov_deg: float = 70.0, operator: bool = False, passer_by: bool = False) -> SampleVideo:
    """Render a textured synthetic walk-through with a known camera path and encode it with ffmpeg.

    ``kind`` "normal": pinhole frames (default 48 at 640x360, 8 fps, 70 degree horizontal FOV);
    "360": equirectangular panoramas (default 24 at 1024x512, 4 fps), optionally with an operator who
    moves with the camera and a passer-by who crosses the room (``actors.py``). Writes ``<name>.mp4`` and
    ``<name>.truth.json`` into ``out_dir`` (name defaults to ``sample-<kind>``).
    """
    if kind not in DEFAULTS:
        raise ValueError(f"kind must be 'normal' or '360', got {kind!r}")
    d = DEFAULTS[kind]
    frames = int(frames or d["frames"])
    width, height = int(width or d["width"]), int(height or d["height"])
    fps = float(fps or d["fps"])
    if kind == "360" and width != 2 * height:
        raise ValueError(f"a 360 video is 2:1, got {width}x{height}")
    if kind != "360" and (operator or passer_by):
        raise ValueError("the operator and the passer-by belong to a 360 walk: use kind='360'")
    actors = (Operator() if operator else None, PasserBy() if passer_by else None)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    name = name or f"sample-{kind}"
    video_path = out_dir / f"{name}.mp4"
    truth_path = out_dir / f"{name}.truth.json"

    start = time.perf_counter()
    render_s = 0.0
    t0 = time.perf_counter()
    scene = build_scene(seed)
    cam_path = walk_path(frames, fps)
    intr = Intrinsics.pinhole(width, height, hfov_deg) if kind == "normal" else Intrinsics.equirectangular(width, height)
    render_s += time.perf_counter() - t0

    def rendered():
        nonlocal render_s
        for i in range(frames):
            t = time.perf_counter()
            img = (render_pinhole(scene, cam_path, i, intr) if kind == "normal"
                   else with_actors(render_equirect(scene, cam_path, i, width, height), cam_path, i, *actors))
            render_s += time.perf_counter() - t
            yield img

    encode_mp4(rendered(), video_path, width, height, fps, crf=crf, equirectangular=(kind == "360"))
    summary = {**scene.summary(), "operator": operator, "passer_by": passer_by}
    write_truth(truth_document(cam_path, intr, kind, seed, summary, video_path.name), truth_path)
    total = time.perf_counter() - start
    return SampleVideo(video_path, truth_path, kind, frames, width, height, fps, seed,
                       cam_path.path_length, render_s, total - render_s)

