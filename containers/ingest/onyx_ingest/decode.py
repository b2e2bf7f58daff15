"""Streaming decode: ffmpeg pipes raw planar Y'CbCr frames, one at a time.

Memory does not grow with the video's length: ffmpeg decodes in its own process and
writes each frame to a pipe; we read exactly one frame's bytes, hand it on, and let
it go. Frames stay in the decoder's Y'CbCr (``yuv.py``): selection reads their luma only,
and only the frames that are kept are converted to BGR. ffmpeg's ``showinfo`` filter,
placed last in the filter chain, prints each frame's number, presentation time and final
size to stderr before the frame's bytes reach the pipe, so timestamps stay exact for
variable-frame-rate phone video and the frame size is right even when ffmpeg auto-rotates a
portrait clip.
"""

from __future__ import annotations

import collections
import ctypes
import functools
import queue
import re
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from onyx_tools.video import VideoError, VideoInfo, probe_video

from .yuv import PlanarFormat, luma_plane, planar_pix_fmt, planar_to_bgr

# "[Parsed_showinfo_2 @ 0x..] n:   1 pts:    512 pts_time:0.04    ... s:300x533 ..."
_SHOWINFO = re.compile(r"\bn:\s*(\d+)\s+pts:\s*(\S+)\s+pts_time:(\S+).*?\bs:(\d+)x(\d+)")
_STDERR_TAIL = 40
# Frames read ahead of the consumer, so ffmpeg keeps decoding while a kept frame is converted
# and written (measured: 10% less wall time on a 60 s 720p video). Memory stays flat: at most
# this many frames wait.
READ_AHEAD = 4


@dataclass(frozen=True)
class DecodedFrame:
    index: int  # 0-based position in the decoded stream
    timestamp_s: float  # presentation time in the source
    raw: np.ndarray  # the frame as ffmpeg wrote it: flat uint8, laid out as ``layout``
    layout: PlanarFormat
    color_space: str  # ffprobe's color_space of the source: picks the matrix for ``image``

    @property
    def luma(self) -> np.ndarray:
        """H x W uint8 Y' plane (limited range), a view of ``raw``."""
        return luma_plane(self.raw, self.layout)

    @functools.cached_property
    def image(self) -> np.ndarray:
        """H x W x 3 uint8 BGR, converted on first use."""
        return planar_to_bgr(self.raw, self.layout, self.color_space)


def ffmpeg_command(path: Path, max_width: int | None, pix_fmt: str = "yuv420p") -> list[str]:
    """The decode command: every frame once (no fps conversion), optionally downscaled."""
    filters = []
    if max_width:
        # Downscale in ffmpeg (area filter) so Python never sees the full-size frame;
        # never upscale. iw is the displayed width, after ffmpeg's auto-rotation.
        filters.append(f"scale=w='min(iw,{int(max_width)})':h=-1:flags=area")
    filters += [f"format={pix_fmt}", "showinfo=checksum=0"]
    return [
        "ffmpeg", "-nostdin", "-hide_banner", "-nostats", "-loglevel", "info",
        "-i", str(path), "-map", "0:v:0", "-an", "-sn", "-dn",
        "-vf", ",".join(filters),
        "-fps_mode", "passthrough",  # one output frame per decoded frame, in step with showinfo
        "-f", "rawvideo", "-pix_fmt", pix_fmt, "pipe:1",
    ]


class _StderrReader(threading.Thread):
    """Drains ffmpeg's stderr: frame lines go to a queue, the rest to a short tail for errors."""

    def __init__(self, stream):
        super().__init__(daemon=True)
        self._stream = stream
        self.frames: queue.Queue = queue.Queue()
        self.tail: collections.deque[str] = collections.deque(maxlen=_STDERR_TAIL)
        self.truncated = False  # the demuxer met the end of the file inside a sample

    def run(self) -> None:
        for raw in iter(self._stream.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip()
            match = _SHOWINFO.search(line) if "showinfo" in line else None
            if match:
                n, _pts, pts_time, w, h = match.groups()
                self.frames.put((int(n), _float_or_none(pts_time), int(w), int(h)))
            elif line:
                self.tail.append(line)
                self.truncated |= "partial file" in line
        self.frames.put(None)  # end of stream


class _FrameReader(threading.Thread):
    """Pairs each showinfo line with its frame's bytes from stdout, a few frames ahead of the consumer."""

    def __init__(self, stdout, shown: queue.Queue, pix_fmt: str):
        super().__init__(daemon=True)
        self._stdout, self._shown, self._pix_fmt = stdout, shown, pix_fmt
        self.frames: queue.Queue = queue.Queue(maxsize=READ_AHEAD)
        self.stop = threading.Event()  # the consumer has gone: stop reading

    def _put(self, item) -> bool:
        while not self.stop.is_set():
            try:
                self.frames.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def run(self) -> None:
        while True:
            shown = self._shown.get()
            if shown is None:
                break
            _n, pts_time, width, height = shown
            layout = PlanarFormat(width, height, self._pix_fmt)
            data = self._stdout.read(layout.frame_bytes)
            if len(data) < layout.frame_bytes or not self._put((pts_time, layout, data)):
                break  # ffmpeg stopped mid-frame, or nobody is reading
        self._put(None)


@functools.cache
def keep_frame_buffers_on_the_heap() -> None:
    """Let frame-sized buffers be reused from the heap instead of mapped afresh for each frame.

    glibc serves allocations over its mmap threshold (128 KiB, adaptive up to 32 MiB) with a new
    mapping, and every page of a new mapping faults on first touch: measured here, 590,000 page
    faults and about 1.5 s of CPU for a 60 s 720p video (three buffers a frame: read, converted,
    resized). Keeping such buffers on the heap makes it 33,000. glibc only; a no-op elsewhere.
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    m_trim_threshold, m_mmap_threshold = -1, -3
    mallopt(m_mmap_threshold, 32 << 20)  # glibc's largest; holds 4:2:0 frames up to 5.7K (360 cameras)
    mallopt(m_trim_threshold, 256 << 20)  # do not hand freed frames back to the kernel at once


def _float_or_none(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:  # "NOPTS"
        return None


def stream_frames(path: str | Path, max_width: int | None = None,
                  info: VideoInfo | None = None) -> Iterator[DecodedFrame]:
    """Yield every frame of ``path`` in order; raise ``VideoError`` if ffmpeg fails.

    ``info`` (ffprobe's description, probed here when not given) gives the chroma layout to ask
    for, the colour matrix, and the frame rate that fills in a timestamp for the rare frame
    without one.
    """
    path = Path(path)
    info = info or probe_video(path)
    pix_fmt = planar_pix_fmt(info.pix_fmt)
    keep_frame_buffers_on_the_heap()
    process = subprocess.Popen(ffmpeg_command(path, max_width, pix_fmt), stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=1 << 20)
    reader = _StderrReader(process.stderr)
    reader.start()
    frames = _FrameReader(process.stdout, reader.frames, pix_fmt)
    frames.start()
    count = 0
    try:
        while True:
            item = frames.frames.get()
            if item is None:
                break
            pts_time, layout, data = item
            if pts_time is None:
                pts_time = count / info.fps if info.fps else float(count)
            yield DecodedFrame(index=count, timestamp_s=pts_time, raw=np.frombuffer(data, dtype=np.uint8),
                               layout=layout, color_space=info.color_space)
            count += 1
        frames.join()
        process.stdout.close()
        returncode = process.wait()
        reader.join(timeout=10)
    finally:
        frames.stop.set()
        if process.poll() is None:  # the consumer stopped early or failed: stop ffmpeg
            process.kill()
            process.wait()
    if reader.truncated:
        # ffmpeg exits 0 on a cut-off MP4 whose index sits at the front (faststart): its index
        # promises samples past the end of the file. Frames from it would silently miss the end.
        raise VideoError(
            f"input {path} is truncated: its index lists more data than the file holds, and ffmpeg decoded "
            f"only {count} frame(s) before the end; copy the file again")
    if returncode != 0:
        reason = next((line for line in reversed(reader.tail) if "error" in line.lower()),
                      reader.tail[-1] if reader.tail else f"exit code {returncode}")
        raise VideoError(
            f"ffmpeg could not decode {path} after {count} frame(s): '{reason}'; "
            "the file may be damaged or truncated: copy it again or re-encode it "
            "(ffmpeg -i IN -c:v libx264 OUT.mp4)")
