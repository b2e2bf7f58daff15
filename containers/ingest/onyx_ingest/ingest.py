"""The ingest step without Pipes: video in, ``images/`` (+ ``panoramas/``) and a contact sheet out.

``ingest_video`` is what ``python -m onyx_ingest`` runs; tests call it directly.

    images/frame_00001.jpg ...              normal video
    images/frame_00001_v00.jpg ...          360 video: the views of each frame
    panoramas/pano_00001.jpg ...            360 video: the equirectangular frames
    images/index.json                       what each image is (SfM builds rigs from it)
    previews/contact_sheet.png
"""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import shutil
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from onyx_tools.errors import ToolError
from onyx_tools.layout import OPERATOR_MASKS, BatchLayout
from onyx_tools.manifest import data_version
from onyx_tools.publish import publishing
from onyx_tools.spherical import view_set
from onyx_tools.video import (
    EQUIRECT_ASPECT_TOLERANCE,
    MIN_FRAMES,
    VideoError,
    VideoInfo,
    probe_video,
)

from .config import MAX_GAP_S, MIN_GAP_S, IngestConfig, frame_interval, source_frame_count
from .contact_sheet import write_contact_sheet
from .decode import stream_frames
from .motion import MotionWindows
from .operator_mask import CameraFixedRegions, OperatorMask, preview
from .selection import SelectedFrame, SelectionStats, select_frames
from .split import ViewSplitter

CONTACT_SHEET = "previews/contact_sheet.png"
OPERATOR_MASK_PREVIEW = "previews/operator_mask.png"
WRITE_AHEAD = 4  # kept frames waiting to be written
INDEX_SCHEMA = 1

Progress = Callable[[str, int, int, str], None]


@dataclass
class IngestPlan:
    """What will be extracted, decided from the parameters and ffprobe before decoding."""

    info: VideoInfo
    is_360: bool
    views_per_frame: int
    source_frames: int  # the target number of frames to take from the video (0: chosen by motion)
    interval_s: float  # seconds between frames (0: chosen by motion)

    @property
    def by_motion(self) -> bool:
        return self.is_360 and self.interval_s == 0


def plan_ingest(cfg: IngestConfig, info: VideoInfo) -> IngestPlan:
    if cfg.video == "auto":
        is_360 = info.looks_equirectangular
    else:
        is_360 = cfg.video == "360"
        if is_360 and not info.projection and abs(info.aspect - 2.0) > EQUIRECT_ASPECT_TOLERANCE:
            raise ToolError(
                f"video is set to 360 but {info.path} is {info.width}x{info.height}, not a 2:1 equirectangular "
                "frame: set video to normal (or auto), or convert the 360 footage to equirectangular first")
    per_frame = len(view_set(cfg.view_set)) if is_360 else 1
    if is_360 and cfg.interval is None:
        # A fixed count (Onyx 1.0: target // 12, 8 frames for a 40 s walk) is too sparse for a walk
        # and too dense for a pause: the panoramas' parallax decides (motion.py).
        return IngestPlan(info=info, is_360=True, views_per_frame=per_frame, source_frames=0, interval_s=0.0)
    source_frames = source_frame_count(cfg.scene, cfg.quality, per_frame)
    interval = frame_interval(info.duration_s, source_frames, cfg.interval)
    return IngestPlan(info=info, is_360=is_360, views_per_frame=per_frame, source_frames=source_frames,
                      interval_s=interval)


@dataclass
class _Writer:
    """Writes the selected frames into the staged folders and keeps the index."""

    cfg: IngestConfig
    images_dir: Path
    panoramas_dir: Path | None
    splitter: ViewSplitter | None = None
    entries: list[dict] = field(default_factory=list)
    panoramas: list[dict] = field(default_factory=list)
    sheet_items: list[tuple[Path, str]] = field(default_factory=list)
    image_size: tuple[int, int] = (0, 0)

    def _jpeg(self, path: Path, image: np.ndarray) -> None:
        if not cv2.imwrite(str(path), image, [cv2.IMWRITE_JPEG_QUALITY, self.cfg.jpeg_quality]):
            raise ToolError(f"could not write {path}: check free disk space and permissions of the batch folder")

    def write(self, number: int, selected: SelectedFrame) -> None:
        frame = selected.frame
        record = {"frame": number, "source_frame": frame.index, "timestamp_s": round(frame.timestamp_s, 4),
                  "sharpness": round(selected.sharpness, 2)}
        label = f"#{number}  {frame.timestamp_s:.2f}s"
        if self.panoramas_dir is None:
            name = f"frame_{number:05d}.jpg"
            self._jpeg(self.images_dir / name, frame.image)
            self.entries.append({"name": name, **record, "view": None})
            self.image_size = (frame.image.shape[1], frame.image.shape[0])
            self.sheet_items.append((self.images_dir / name, label))
            return
        height, width = frame.image.shape[:2]
        if self.splitter is None or (self.splitter.pano_width, self.splitter.pano_height) != (width, height):
            self.splitter = ViewSplitter(view_set(self.cfg.view_set), self.cfg.view_side(width), width, height,
                                         self.cfg.fov_deg())
        pano_name = f"pano_{number:05d}.jpg"
        self._jpeg(self.panoramas_dir / pano_name, frame.image)
        self.panoramas.append({"name": pano_name, **record, "size": [width, height]})
        self.sheet_items.append((self.panoramas_dir / pano_name, label))
        for spec, view in self.splitter.split(frame.image):
            name = f"frame_{number:05d}_{spec.name}.jpg"
            self._jpeg(self.images_dir / name, view)
            self.entries.append({"name": name, **record, "view": spec.name, "panorama": pano_name})
        self.image_size = (self.splitter.size, self.splitter.size)

    def write_operator_masks(self, operator: OperatorMask) -> None:
        """COLMAP masks (``<folder>/<image name>.png``) of every panorama and view: one mask, as each is cut."""
        if self.splitter is None:
            return
        pano_mask = operator.at_size(self.splitter.pano_width, self.splitter.pano_height)
        pano_png = _png(pano_mask)
        view_pngs = {spec.name: _png(np.where(view >= 128, 255, 0).astype(np.uint8))
                     for spec, view in self.splitter.split(pano_mask)}
        masks = [(self.panoramas_dir, entry["name"], pano_png) for entry in self.panoramas]
        masks += [(self.images_dir, entry["name"], view_pngs[entry["view"]]) for entry in self.entries]
        for folder, name, data in masks:
            (folder / OPERATOR_MASKS).mkdir(exist_ok=True)
            (folder / OPERATOR_MASKS / f"{name}.png").write_bytes(data)


def _png(mask: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".png", mask)
    if not ok:
        raise ToolError("could not encode a mask as PNG")
    return data.tobytes()


def ingest_video(cfg: IngestConfig, video_path: str | Path, layout: BatchLayout,
                 progress: Progress | None = None, log: logging.Logger | None = None) -> dict[str, Any]:
    """Extract frames (or 360 views) from ``video_path`` into ``layout``; return the report's metadata."""
    log = log or logging.getLogger("onyx.ingest")
    progress = progress or (lambda stage, done, total, detail="": None)
    started = time.monotonic()
    timings: dict[str, float] = {}

    info = probe_video(video_path)  # re-validated here: the file may have changed since it was added
    plan = plan_ingest(cfg, info)
    timings["probe_s"] = round(time.monotonic() - started, 3)
    kind = "360" if plan.is_360 else "normal"
    choice = (f"a frame per {cfg.motion_step_deg:g} degrees of parallax" if plan.by_motion else
              f"one frame per {plan.interval_s:.2f} s, target {plan.source_frames} frame(s)")
    log.info("%s video %dx%d, %.2f s at %.3g fps (%d frames): %s%s", kind, info.width, info.height,
             info.duration_s, info.fps, info.frame_count, choice,
             f" x {plan.views_per_frame} views ({cfg.view_set})" if plan.is_360 else "")

    stats = SelectionStats()
    decode_started = time.monotonic()
    with contextlib.ExitStack() as stack:
        images_dir = stack.enter_context(publishing(layout.images))
        panoramas_dir = stack.enter_context(publishing(layout.panoramas)) if plan.is_360 else None
        writer = _Writer(cfg, images_dir, panoramas_dir)
        decoded = stream_frames(video_path, max_width=None if plan.is_360 else cfg.max_width, info=info)
        total_ms = max(1, int(info.duration_s * 1000))
        number = 0
        regions = CameraFixedRegions()
        motion = (MotionWindows(cfg.motion_step_deg, MIN_GAP_S, MAX_GAP_S, plan.interval_s or None,
                                observers=[regions] if cfg.operator_mask else [])
                  if plan.is_360 else None)
        # Kept frames are converted and written (JPEG) on a thread of their own while decoding and
        # scoring go on: OpenCV and the decoder release the GIL, so the two overlap on two cores.
        # At most WRITE_AHEAD frames wait, so memory stays flat.
        pending: collections.deque[Future] = collections.deque()
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest-write") as writing:
            for selected in select_frames(decoded, plan.interval_s, cfg.sharpest_in_window, stats,
                                          window_of_frame=motion):
                number += 1
                pending.append(writing.submit(writer.write, number, selected))
                while len(pending) > WRITE_AHEAD:
                    pending.popleft().result()
                progress("extract", min(int(selected.frame.timestamp_s * 1000), total_ms), total_ms,
                         f"{number} frame(s), {len(writer.entries)} image(s)")
            while pending:
                pending.popleft().result()
        if stats.decoded < MIN_FRAMES:
            raise VideoError(f"ffmpeg decoded only {stats.decoded} frame(s) from {video_path}; Onyx needs at "
                             f"least {MIN_FRAMES}: the file is damaged or too short, give a longer video")
        if info.frame_count and stats.decoded < 0.9 * info.frame_count:
            log.warning("decoded %d of the %d frames ffprobe announced: the end of the video may be damaged",
                        stats.decoded, info.frame_count)
        operator = regions.mask(cfg.nadir_mask_deg) if plan.is_360 and cfg.operator_mask else None
        if operator is not None:
            writer.write_operator_masks(operator)
            if operator.note:
                log.warning("operator mask: %s", operator.note)
        views = ([{"name": s.name, "yaw_deg": s.yaw_deg, "pitch_deg": s.pitch_deg} for s in view_set(cfg.view_set)]
                 if plan.is_360 else [])
        index = {
            "schema": INDEX_SCHEMA,
            "kind": kind,
            "video": info.as_metadata(),
            "interval_s": plan.interval_s or None,
            "frame_selection": "motion" if plan.by_motion else "interval",
            "motion": motion.stats.as_metadata() if motion else None,
            "operator_mask": ({"folder": OPERATOR_MASKS, **operator.as_metadata()} if operator else None),
            "view_set": cfg.view_set if plan.is_360 else None,
            "views": views,
            "view_size": writer.splitter.size if plan.is_360 else None,
            "fov_deg": writer.splitter.fov_deg if plan.is_360 else None,
            "focal_px": writer.splitter.focal_px if plan.is_360 else None,
            "image_size": list(writer.image_size),
            "selection": {"sharpest_in_window": cfg.sharpest_in_window, **stats.as_metadata()},
            "images": writer.entries,
            "panoramas": writer.panoramas,
        }
        (images_dir / "index.json").write_text(json.dumps(index, indent=1), encoding="utf-8")
        timings["extract_s"] = round(time.monotonic() - decode_started, 3)
        progress("publish", 1, 1, "")
    if not plan.is_360 and layout.panoramas.exists():
        shutil.rmtree(layout.panoramas)  # an earlier 360 run's panoramas would describe other images

    sheet_started = time.monotonic()
    final_dir = layout.panoramas if plan.is_360 else layout.images
    items = [(final_dir / path.name, label) for path, label in writer.sheet_items]
    write_contact_sheet([p for p, _ in items], [lbl for _, lbl in items], layout.root / CONTACT_SHEET)
    timings["contact_sheet_s"] = round(time.monotonic() - sheet_started, 3)
    if operator is not None and writer.panoramas:
        middle = writer.panoramas[len(writer.panoramas) // 2]["name"]
        pano = cv2.imread(str(layout.panoramas / middle), cv2.IMREAD_COLOR)
        target = layout.root / OPERATOR_MASK_PREVIEW
        target.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(target), preview(pano, operator.at_size(pano.shape[1], pano.shape[0])))
    timings["total_s"] = round(time.monotonic() - started, 3)
    log.info("%d image(s) from %d frame(s) (%d decoded); %d blurrier frame(s) passed over, %d window(s) "
             "picked a later, sharper frame", len(writer.entries), number, stats.decoded,
             stats.blurry_passed_over, stats.sharpest_not_first)

    width, height = writer.image_size
    return {
        "frames": len(writer.entries),
        "source_frames": number,
        "target_source_frames": plan.source_frames,
        "views_per_frame": plan.views_per_frame,
        "is_360": plan.is_360,
        "resolution": f"{width}x{height}",
        "interval_s": plan.interval_s or round(info.duration_s / max(1, number), 2),
        "frame_selection": "motion" if plan.by_motion else "interval",
        "duration_s": info.duration_s,
        "decoded_frames": stats.decoded,
        "blurry_passed_over": stats.blurry_passed_over,
        "sharpest_not_first": stats.sharpest_not_first,
        "median_sharpness_gain": stats.as_metadata()["median_sharpness_gain"],
        "view_set": cfg.view_set if plan.is_360 else "none",
        "contact_sheet_path": CONTACT_SHEET,
        "index_path": "images/index.json",
        "timings": timings,
        **({"motion": motion.stats.as_metadata()} if motion else {}),
        **({"operator_mask": operator.as_metadata(), "operator_mask_preview_path": OPERATOR_MASK_PREVIEW} if operator else {}),
    }


def images_data_version(layout: BatchLayout) -> str:
    return data_version(layout.images)
