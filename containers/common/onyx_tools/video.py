"""What ffprobe says about an input video, the checks every boundary applies to it, and H.264 out.

Used by the CLI, the drop-folder sensor and the ``video`` asset before anything is
written, and by the ingest tool itself; ``encode_mp4`` by the sample renderer and the
viewer's fly-through.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path

from .errors import ToolError

MIN_FRAMES = 3
MAX_PIXELS = 16384 * 8192  # larger than any 360 camera delivers; beyond this is a broken header
EQUIRECT_ASPECT_TOLERANCE = 0.05
DUAL_FISHEYE_SUFFIXES = (".insv",)  # Insta360's camera files: the two lenses' images, not stitched
STITCH_HINT = ("Onyx accepts stitched equirectangular 360 video (one 2:1 image of the whole sphere); "
               "stitch it first with the camera maker's software (Insta360 Studio or the Insta360 app: "
               "export as a 360 video in MP4), then give Onyx the exported file")
# A dual-fisheye frame is black outside its two image circles: corners this dark (0-255 luma) ...
_DARK_CORNER = 12.0
# ... around circles this much brighter on average
_LIT_CIRCLE = 28.0


class VideoError(ToolError):
    """The input is not a video Onyx can use; the message says why and what to do."""


@dataclass(frozen=True)
class VideoInfo:
    path: str
    duration_s: float
    width: int
    height: int
    fps: float
    frame_count: int
    codec: str
    projection: str  # "equirectangular" when the file says so, else ""
    size_bytes: int
    pix_fmt: str = ""  # ffprobe's names, "" when it does not say: decode uses them to
    color_space: str = ""  # hand frames over as the decoder made them (onyx_ingest.yuv)

    @property
    def aspect(self) -> float:
        return self.width / self.height

    @property
    def looks_equirectangular(self) -> bool:
        """360 detection as Onyx 1.0 did it: metadata first, else a 2:1 frame."""
        if self.projection:
            return True
        return abs(self.aspect - 2.0) <= EQUIRECT_ASPECT_TOLERANCE

    def as_metadata(self) -> dict:
        return asdict(self)


def require_ffmpeg() -> None:
    for binary in ("ffprobe", "ffmpeg"):
        if shutil.which(binary) is None:
            raise ToolError(f"{binary} is not installed: install ffmpeg (Debian: apt-get install ffmpeg)")


def _projection(stream: dict, fmt: dict) -> str:
    texts = []
    for side in stream.get("side_data_list", []) or []:
        texts.append(json.dumps(side).lower())
    for tags in (stream.get("tags", {}), fmt.get("tags", {})):
        texts.extend(f"{k}={v}".lower() for k, v in (tags or {}).items())
    blob = " ".join(texts)
    return "equirectangular" if ("equirectangular" in blob or "spherical" in blob) else ""


def _rate(text: str | None) -> float:
    try:
        value = float(Fraction(text)) if text else 0.0
    except (ValueError, ZeroDivisionError):
        return 0.0
    return value


def _unreadable_hint(path: Path, stderr: str) -> str:
    """Why ffprobe failed, in words: a cut-off MP4 and a non-video file both lack a 'moov atom'."""
    with open(path, "rb") as handle:
        head = handle.read(512)
    if head[4:8] == b"ftyp" and "moov atom not found" in stderr:
        return " (an MP4 without its index, the moov atom: the file is truncated, copy it again)"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as error:
        if error.start < len(head) - 3:  # not just a character cut at the 512th byte
            return ""
        text = head[: error.start].decode("utf-8")
    if text and all(ch.isprintable() or ch.isspace() for ch in text):
        return " (the file holds text, not video: give the path of the video file itself)"
    return ""


def probe_video(path: str | Path) -> VideoInfo:
    """Probe ``path`` with ffprobe; raise ``VideoError`` naming the problem and the fix."""
    path = Path(path)
    if not path.exists():
        raise VideoError(f"input video {path} does not exist: check the path")
    if not path.is_file():
        raise VideoError(f"input {path} is not a file: give the path of a video file")
    size = path.stat().st_size
    if size == 0:
        raise VideoError(f"input video {path} is empty (0 bytes): the copy or download did not finish")
    if path.suffix.lower() in DUAL_FISHEYE_SUFFIXES:
        raise VideoError(f"input {path} is an Insta360 camera file (.insv): the two lenses' circular images, "
                         f"not stitched; {STITCH_HINT}")
    require_ffmpeg()
    result = subprocess.run(
        ["ffprobe", "-v", "error", "-print_format", "json", "-show_format", "-show_streams",
         "-select_streams", "v:0", str(path)],
        capture_output=True, text=True, timeout=120,
    )
    if result.returncode != 0:
        claimed = re.search(r"Picture size (\d+)x(\d+) is invalid", result.stderr)
        if claimed:
            raise VideoError(
                f"input {path} claims {claimed[1]}x{claimed[2]} pixels, beyond the {MAX_PIXELS // 1_000_000} MP "
                "Onyx accepts: the header is damaged or the video must be downscaled first")
        reason = (result.stderr.strip().splitlines() or ["unreadable"])[-1]
        raise VideoError(f"input {path} is not a readable video: ffprobe says '{reason}'"
                         f"{_unreadable_hint(path, result.stderr)}")
    data = json.loads(result.stdout or "{}")
    streams = data.get("streams") or []
    fmt = data.get("format") or {}
    if not streams:
        raise VideoError(f"input {path} has no video stream: give a video file (MP4, MOV, MKV...)")
    stream = streams[0]
    width, height = int(stream.get("width") or 0), int(stream.get("height") or 0)
    if width <= 0 or height <= 0:
        raise VideoError(f"input {path} has a video stream without a frame size: the file is damaged")
    if width * height > MAX_PIXELS:
        raise VideoError(
            f"input {path} claims {width}x{height} pixels, beyond the {MAX_PIXELS // 1_000_000} MP Onyx accepts: "
            "the header is damaged or the video must be downscaled first")
    fps = _rate(stream.get("avg_frame_rate")) or _rate(stream.get("r_frame_rate"))
    duration = float(stream.get("duration") or fmt.get("duration") or 0.0)
    frame_count = int(stream.get("nb_frames") or 0) or int(round(duration * fps))
    if duration <= 0 and frame_count and fps:
        duration = frame_count / fps
    if frame_count < MIN_FRAMES:
        raise VideoError(
            f"input {path} has {frame_count} frame(s); Onyx needs at least {MIN_FRAMES} to reconstruct a scene")
    if _looks_dual_fisheye(path, width, height):
        raise VideoError(f"input {path} is an unstitched dual-fisheye recording (two circular images side by "
                         f"side): {STITCH_HINT}")
    return VideoInfo(
        path=str(path), duration_s=round(duration, 3), width=width, height=height, fps=round(fps, 3),
        frame_count=frame_count, codec=str(stream.get("codec_name") or "unknown"),
        projection=_projection(stream, fmt), size_bytes=size,
        pix_fmt=str(stream.get("pix_fmt") or ""), color_space=str(stream.get("color_space") or ""),
    )


def _looks_dual_fisheye(path: Path, width: int, height: int) -> bool:
    """True when the first frame of a 2:1 video is two image circles on black, not an equirectangular image."""
    if abs(width / height - 2.0) > EQUIRECT_ASPECT_TOLERANCE:
        return False
    import numpy as np

    side = 64
    result = subprocess.run(
        ["ffmpeg", "-v", "error", "-nostdin", "-i", str(path), "-frames:v", "1",
         "-vf", f"scale={2 * side}:{side}:flags=area,format=gray", "-f", "rawvideo", "-"],
        capture_output=True, timeout=120)
    if result.returncode != 0 or len(result.stdout) != 2 * side * side:
        return False  # not decodable: check_decodable says why
    frame = np.frombuffer(result.stdout, np.uint8).reshape(side, 2 * side).astype(np.float64)
    ys, xs = np.mgrid[0:side, 0:2 * side] + 0.5
    centre_x = np.where(xs < side, side / 2, 1.5 * side)
    radius = np.hypot(xs - centre_x, ys - side / 2) / (side / 2)
    outside, inside = frame[radius > 1.08], frame[radius < 0.85]
    return float(np.percentile(outside, 90)) < _DARK_CORNER and float(inside.mean()) > _LIT_CIRCLE


def check_decodable(path: str | Path, seconds: float = 1.0) -> None:
    """Decode the first ``seconds`` to prove ffmpeg has a decoder for this codec and the data is sound."""
    result = subprocess.run(
        ["ffmpeg", "-v", "error", "-nostdin", "-t", str(seconds), "-i", str(path), "-f", "null", "-"],
        capture_output=True, text=True, timeout=300,
    )
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    if result.returncode != 0 or any("decoder" in line.lower() for line in errors):
        reason = errors[-1] if errors else f"ffmpeg exit code {result.returncode}"
        raise VideoError(
            f"input {path} cannot be decoded: ffmpeg says '{reason}'; re-encode it to H.264 or H.265 "
            "(ffmpeg -i IN -c:v libx264 OUT.mp4)")


def encode_mp4(frames: Iterable, out_path: str | Path, width: int, height: int, fps: float,
               crf: int = 17, equirectangular: bool = False, threads: int = 2) -> int:
    """Stream (H, W, 3) uint8 RGB frames into ``out_path`` (H.264 libx264, yuv420p, constant ``fps``);
    returns the number of frames written.

    Frames go to ffmpeg one at a time, so memory does not grow with the video's length. yuv420p
    and ``+faststart`` are what browsers play. For a 360 video the stream and file carry a
    ``spherical=equirectangular`` tag (ffmpeg 5 cannot write the sv3d box from the command line;
    the 2:1 aspect is what detection relies on anyway).
    """
    import numpy as np

    require_ffmpeg()
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
    written = 0
    try:
        for frame in frames:
            if frame.shape != (height, width, 3) or frame.dtype != np.uint8:
                raise ValueError(f"frame of shape {frame.shape} {frame.dtype}, expected ({height}, {width}, 3) uint8")
            proc.stdin.write(np.ascontiguousarray(frame).tobytes())
            written += 1
        proc.stdin.close()
        err = proc.stderr.read().decode(errors="replace")
        if proc.wait() != 0:
            raise ToolError(f"ffmpeg failed encoding {out_path}: {err.strip()}")
    except BaseException:
        proc.kill()
        proc.wait()
        out_path.unlink(missing_ok=True)
        raise
    return written
