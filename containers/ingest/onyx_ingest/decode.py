"""Streaming decode in this process (PyAV, the FFmpeg libraries): planar Y'CbCr frames, one at a time.

The decoder's own frame buffers are handed on as numpy views, without a copy: selection reads
their luma only, and only the frames that are kept are converted to BGR (``yuv.py``). Nothing is
piped between processes, which was most of what ingest spent beyond decoding. Memory does not grow
with the video's length: a frame is let go as soon as selection has passed it over.

What the decode does matches what ``ffmpeg -i IN -vf scale=...,format=... -fps_mode passthrough``
gives: every decoded frame once; portrait phone video turned upright by its display matrix as ffmpeg
auto-rotates (transpose before the scale, so the frame size is the displayed one); downscaling with
the same filter (``scale``, area) to the planar format of ``yuv.planar_pix_fmt``; timestamps
relative to the file's start, as ffmpeg's own. Frames that need none of that (no rotation, narrow
enough, planar Y'CbCr of any depth or range) skip the filter graph entirely.
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import av.logging
import numpy as np
from onyx_tools.video import VideoError, VideoInfo, probe_video

from .yuv import PlanarFormat, native_layout, planar_pix_fmt, planar_to_bgr, to_8bit

# FFmpeg's messages are kept while decoding (errors only: the callback costs nothing otherwise); a
# demuxer that meets the end of the file inside a sample says "partial file".
_PARTIAL = "partial file"


@dataclass(frozen=True)
class DecodedFrame:
    index: int  # 0-based position in the decoded stream
    timestamp_s: float  # presentation time, from the start of the file
    planes: tuple[np.ndarray, np.ndarray, np.ndarray]  # Y', Cb, Cr: views of the decoder's buffers
    layout: PlanarFormat  # chroma layout, bit depth and range of ``planes``
    color_space: str  # ffprobe's color_space of the source: picks the matrix for ``image``
    owner: object = field(default=None, repr=False, compare=False)  # keeps the buffers alive

    @functools.cached_property
    def luma(self) -> np.ndarray:
        """H x W uint8 Y' plane: a view of the decoded frame (8-bit sources), else rounded to 8 bits."""
        return to_8bit(self.planes[0], self.layout.bits)

    @functools.cached_property
    def image(self) -> np.ndarray:
        """H x W x 3 uint8 BGR, converted on first use."""
        return planar_to_bgr(self.planes, self.layout, self.color_space)


def _plane(frame: av.VideoFrame, number: int, rows: int, cols: int, bits: int) -> np.ndarray:
    """One plane as a rows x cols view (no copy): the buffer's rows are ``line_size`` bytes apart."""
    plane = frame.planes[number]
    dtype = np.dtype(np.uint8 if bits == 8 else np.uint16)
    stride = plane.line_size // dtype.itemsize
    flat = np.frombuffer(plane, dtype=dtype)
    return flat[: rows * stride].reshape(rows, stride)[:, :cols]


def _layout(frame: av.VideoFrame) -> PlanarFormat | None:
    return native_layout(frame.format.name, frame.width, frame.height, frame.color_range == 2)  # 2: JPEG range


@functools.cache
def keep_frame_buffers_on_the_heap() -> None:
    """Let frame-sized buffers be reused from the heap instead of mapped afresh for each frame.

    glibc serves allocations over its mmap threshold (128 KiB, adaptive up to 32 MiB) with a new
    mapping, and every page of a new mapping faults on first touch: the sharpness score's scaled copy
    and Laplacian of every decoded frame, the kept frames' conversions. Measured on a 60 s 720p video:
    590,000 page faults and about 1.5 s of CPU; keeping such buffers on the heap makes it 33,000.
    glibc only; a no-op elsewhere.
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    m_trim_threshold, m_mmap_threshold = -1, -3
    mallopt(m_mmap_threshold, 32 << 20)  # glibc's largest; holds 4:2:0 frames up to 5.7K (360 cameras)
    mallopt(m_trim_threshold, 256 << 20)  # do not hand freed frames back to the kernel at once


def _orientation_filters(rotation: int) -> list[tuple[str, str]]:
    """The filters ffmpeg's auto-rotation inserts for a display matrix turned ``rotation`` degrees."""
    theta = round(rotation) % 360
    if theta == 90:
        return [("transpose", "clock")]
    if theta == 180:
        return [("hflip", ""), ("vflip", "")]
    if theta == 270:
        return [("transpose", "cclock")]
    if theta:
        return [("rotate", f"{theta}*PI/180")]
    return []


class _Filters:
    """Rotation, downscale and planar format for the frames that need them (an FFmpeg filter graph)."""

    def __init__(self, stream, first: av.VideoFrame, max_width: int | None, pix_fmt: str):
        chain = _orientation_filters(first.rotation)
        displayed_width = first.height if chain and chain[0][0] == "transpose" else first.width
        if max_width and displayed_width > max_width:
            # area, as the decode always did; never an upscale (ffmpeg's -vf scale=w='min(iw,W)':h=-1)
            chain.append(("scale", f"w='min(iw,{int(max_width)})':h=-1:flags=area"))
        # Planar Y'CbCr of any depth and range is used as decoded (yuv.py converts it); other formats
        # (RGB, NV12, ...) are converted by the scaler FFmpeg inserts before the format filter.
        self.needed = bool(chain) or _layout(first) is None
        if not self.needed:
            return
        chain.append(("format", f"pix_fmts={pix_fmt}:color_ranges=tv"))
        self.graph = av.filter.Graph()
        nodes = [self.graph.add_buffer(template=stream)]
        nodes += [self.graph.add(name, args) for name, args in chain]
        nodes.append(self.graph.add("buffersink"))
        self.graph.link_nodes(*nodes).configure()

    def __call__(self, frame: av.VideoFrame) -> list[av.VideoFrame]:
        if not self.needed:
            return [frame]
        self.graph.vpush(frame)
        out = []
        while True:
            try:
                out.append(self.graph.vpull())
            except (av.BlockingIOError, av.EOFError):
                return out


class _Decoder:
    """Every decodable frame of the stream. A packet the decoder refuses is passed over, as ffmpeg
    does, unless most of them are refused (ffmpeg's -max_error_rate, 2/3): then the file is damaged."""

    def __init__(self, container, stream):
        self.container, self.stream = container, stream
        self.packets = self.refused = 0
        self.last_error = ""

    def __iter__(self) -> Iterator[av.VideoFrame]:
        for packet in self.container.demux(self.stream):
            self.packets += 1
            try:
                yield from packet.decode()  # the last, empty packet flushes the decoder
            except av.InvalidDataError as error:
                self.refused += 1
                self.last_error = str(error)

    @property
    def damaged(self) -> bool:
        return self.refused > 0 and self.refused > (2 / 3) * self.packets


def stream_frames(path: str | Path, max_width: int | None = None,
                  info: VideoInfo | None = None) -> Iterator[DecodedFrame]:
    """Yield every frame of ``path`` in order; raise ``VideoError`` if it cannot be decoded.

    ``info`` (ffprobe's description, probed here when not given) gives the chroma layout to ask
    for, the colour matrix, and the frame rate that fills in a timestamp for the rare frame
    without one.
    """
    path = Path(path)
    info = info or probe_video(path)
    pix_fmt = planar_pix_fmt(info.pix_fmt)
    keep_frame_buffers_on_the_heap()
    count = 0
    previous_level = av.logging.get_level()
    av.logging.set_level(av.logging.ERROR)
    try:
        with av.logging.Capture(local=False) as messages:
            try:
                container = av.open(str(path))
            except av.FFmpegError as error:
                raise VideoError(f"could not open {path} for decoding: {error}; the file may be damaged: "
                                 "copy it again or re-encode it (ffmpeg -i IN -c:v libx264 OUT.mp4)") from None
            with container:
                stream = container.streams.video[0]
                stream.thread_type = "AUTO"  # frame and slice threads, as ffmpeg decodes
                start = container.start_time / av.time_base if container.start_time is not None else 0.0
                filters = None
                decoder = _Decoder(container, stream)
                try:
                    for decoded in decoder:
                        if filters is None:
                            filters = _Filters(stream, decoded, max_width, pix_fmt)
                        for frame in filters(decoded):
                            yield _frame(frame, count, start, info)
                            count += 1
                except av.FFmpegError as error:
                    raise VideoError(
                        f"ffmpeg could not decode {path} after {count} frame(s): '{error}'; the file may be "
                        "damaged or truncated: copy it again or re-encode it (ffmpeg -i IN -c:v libx264 OUT.mp4)"
                    ) from None
    finally:
        av.logging.set_level(previous_level)
    if decoder.damaged:
        raise VideoError(
            f"ffmpeg could not decode {path}: {decoder.refused} of {decoder.packets} packets refused "
            f"('{decoder.last_error}'); the file is damaged: copy it again or re-encode it "
            "(ffmpeg -i IN -c:v libx264 OUT.mp4)")
    if any(_PARTIAL in message for _level, _name, message in messages):
        # The demuxer met the end of the file inside a sample: a cut-off MP4 whose index sits at the
        # front (faststart) promises samples past the end. Frames from it would silently miss the end.
        raise VideoError(
            f"input {path} is truncated: its index lists more data than the file holds, and ffmpeg decoded "
            f"only {count} frame(s) before the end; copy the file again")


def _frame(frame: av.VideoFrame, index: int, start: float, info: VideoInfo) -> DecodedFrame:
    layout = _layout(frame)
    if layout is None:  # the stream changed format midway, past what the filter graph was built for
        raise VideoError(f"{info.path}: frame {index} is {frame.format.name}, unlike the frames before it; "
                         "re-encode the video (ffmpeg -i IN -c:v libx264 -pix_fmt yuv420p OUT.mp4)")
    rows, cols = layout.chroma_shape
    if frame.pts is not None and frame.time_base is not None:
        timestamp = float(frame.pts * Fraction(frame.time_base)) - start
    else:
        timestamp = index / info.fps if info.fps else float(index)
    planes = (_plane(frame, 0, frame.height, frame.width, layout.bits), _plane(frame, 1, rows, cols, layout.bits),
              _plane(frame, 2, rows, cols, layout.bits))
    return DecodedFrame(index=index, timestamp_s=timestamp, planes=planes, layout=layout,
                        color_space=info.color_space, owner=frame)
