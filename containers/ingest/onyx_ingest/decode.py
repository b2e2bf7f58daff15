"""Streaming decode: ffmpeg pipes raw BGR frames, one at a time.

Memory does not grow with the video's length: ffmpeg decodes in its own process and
writes each frame to a pipe; we read exactly one frame's bytes, hand it on, and let
it go. ffmpeg's ``showinfo`` filter, placed last in the filter chain, prints each
frame's number, presentation time and final size to stderr before the frame's bytes
reach the pipe, so timestamps stay exact for variable-frame-rate phone video and the
frame size is right even when ffmpeg auto-rotates a portrait clip.
"""

from __future__ import annotations

import collections
import queue
import re
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from onyx_tools.video import VideoError

# "[Parsed_showinfo_2 @ 0x..] n:   1 pts:    512 pts_time:0.04    ... s:300x533 ..."
_SHOWINFO = re.compile(r"\bn:\s*(\d+)\s+pts:\s*(\S+)\s+pts_time:(\S+).*?\bs:(\d+)x(\d+)")
_STDERR_TAIL = 40


@dataclass(frozen=True)
class DecodedFrame:
    index: int  # 0-based position in the decoded stream
    timestamp_s: float  # presentation time in the source
    image: np.ndarray  # H x W x 3 uint8, BGR


def ffmpeg_command(path: Path, max_width: int | None) -> list[str]:
    """The decode command: every frame once (no fps conversion), optionally downscaled."""
    filters = []
    if max_width:
        # Downscale in ffmpeg (area filter) so Python never sees the full-size frame;
        # never upscale. iw is the displayed width, after ffmpeg's auto-rotation.
        filters.append(f"scale=w='min(iw,{int(max_width)})':h=-1:flags=area")
    filters += ["format=bgr24", "showinfo=checksum=0"]
    return [
        "ffmpeg", "-nostdin", "-hide_banner", "-nostats", "-loglevel", "info",
        "-i", str(path), "-map", "0:v:0", "-an", "-sn", "-dn",
        "-vf", ",".join(filters),
        "-fps_mode", "passthrough",  # one output frame per decoded frame, in step with showinfo
        "-f", "rawvideo", "-pix_fmt", "bgr24", "pipe:1",
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


def _float_or_none(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:  # "NOPTS"
        return None


def stream_frames(path: str | Path, max_width: int | None = None, fps_hint: float = 0.0) -> Iterator[DecodedFrame]:
    """Yield every frame of ``path`` in order; raise ``VideoError`` if ffmpeg fails.

    ``fps_hint`` fills in a timestamp for the rare frame without one.
    """
    path = Path(path)
    process = subprocess.Popen(ffmpeg_command(path, max_width), stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=1 << 20)
    reader = _StderrReader(process.stderr)
    reader.start()
    count = 0
    try:
        while True:
            info = reader.frames.get()
            if info is None:
                break
            _n, pts_time, width, height = info
            size = width * height * 3
            data = process.stdout.read(size)
            if len(data) < size:  # ffmpeg stopped mid-frame
                break
            if pts_time is None:
                pts_time = count / fps_hint if fps_hint else float(count)
            image = np.frombuffer(data, dtype=np.uint8).reshape(height, width, 3)
            yield DecodedFrame(index=count, timestamp_s=pts_time, image=image)
            count += 1
        process.stdout.close()
        returncode = process.wait()
        reader.join(timeout=10)
    finally:
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
