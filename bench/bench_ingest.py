"""Ingest against bare ffmpeg extraction of the same frames, and ingest's peak memory against video length.

    .venv/bin/python -m bench ingest

Rows:
- normal video (testsrc2, 1280x720, 30 fps, 60 s): Onyx's ingest (``ingest_video`` with the product's
  defaults: outdoor/production = 300 frames, the sharpest frame of each interval window, JPEG quality 95)
  against ``ffmpeg -vf fps=1/interval -frames:v N`` writing the same number of JPEGs at the same size.
- 360 video (a real equirectangular still from ../shared/datasets/equirect_stills scaled to 3840x1920 and
  turned about the vertical axis over time with ffmpeg's ``scroll``, i.e. a yaw pan): ingest with
  view_size 1024 (cube12: 12 views of 25 panoramas, plus the panoramas themselves) against one ffmpeg
  command that takes the same frames with ``fps`` and cuts the same 12 views with its own ``v360`` filter
  (90 degree FOV, 1024 px, bilinear), also writing the panoramas, so both write the same images.
- peak memory of ingest on a 10 s and a 100 s video (1280x720, 30 fps; both yield 300 frames): flat is the
  goal. Peak RSS comes from ``wait4`` on the child: the largest of the Python process and the ffmpeg it
  waited for (Linux reports the maximum, not a sum).

Both sides run as child processes (``run_measured``), so Onyx's figure includes Python's start and its
imports. Each pair runs interleaved (ingest, ffmpeg, ingest, ffmpeg, ... ``ONYX_BENCH_INGEST_REPEAT`` times,
default 2) and the fastest of each is kept: the machine is shared, timings are noisy.

Scaling knobs (environment): ONYX_BENCH_INGEST_SECONDS (normal video length, default 60),
ONYX_BENCH_INGEST_SIZE (default 1280x720), ONYX_BENCH_INGEST_360_SECONDS (default 20),
ONYX_BENCH_INGEST_360_SIZE (default 3840x1920), ONYX_BENCH_INGEST_VIEW_SIZE (default 1024),
ONYX_BENCH_INGEST_REPEAT (default 2). Generated videos are cached in bench/out/cache/.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from .harness import DATASETS, OUT, Row, run_measured

CACHE = OUT / "cache"
FFMPEG = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y"]
# mjpeg at its finest quantiser: on the testsrc2 frames this writes the same bytes as OpenCV's quality 95
# (26 MiB for 300 720p frames either way), where ffmpeg's usual -q:v 2 writes a quarter less.
FFMPEG_JPEG_Q = ["-qmin", "1", "-q:v", "1"]

# The child that runs Onyx's ingest: the real ingest_video, no Pipes, no Dagster.
INGEST_CHILD = """
import json, sys
from pathlib import Path
from onyx_ingest.config import IngestConfig
from onyx_ingest.ingest import ingest_video
from onyx_tools.layout import BatchLayout
cfg = IngestConfig(**json.loads(sys.argv[3]))
report = ingest_video(cfg, sys.argv[1], BatchLayout(Path(sys.argv[2])))
Path(sys.argv[2], "report.json").write_text(json.dumps(report))
"""


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def _size(name: str, default: str) -> tuple[int, int]:
    w, h = os.environ.get(name, default).lower().split("x")
    return int(w), int(h)


def _cached(name: str, make) -> Path:
    """A generated input video, made once into bench/out/cache/ (atomically)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / name
    if not path.is_file():
        tmp = path.with_name(f".tmp-{path.name}")
        make(tmp)
        os.replace(tmp, path)
    return path


def testsrc_video(seconds: int, width: int, height: int, fps: int = 30) -> Path:
    def make(out: Path) -> None:
        subprocess.run([*FFMPEG, "-f", "lavfi", "-i", f"testsrc2=size={width}x{height}:rate={fps}:duration={seconds}",
                        "-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-pix_fmt", "yuv420p",
                        "-f", "mp4", str(out)], check=True)
    return _cached(f"testsrc2_{width}x{height}_{fps}fps_{seconds}s.mp4", make)


def pano_video(seconds: int, width: int, height: int, fps: int = 15) -> Path:
    still = DATASETS / "equirect_stills" / "equirectangular_half_dome_01.jpg"

    def make(out: Path) -> None:
        if still.is_file():
            source = ["-loop", "1", "-framerate", str(fps), "-i", str(still)]
            chain = f"scale={width}:{height}:flags=bicubic,scroll=h=0.0015,format=yuv420p"
        else:  # no ../shared: a synthetic 2:1 source instead
            source = ["-f", "lavfi", "-i", f"testsrc2=size={width}x{height}:rate={fps}"]
            chain = "format=yuv420p"
        subprocess.run([*FFMPEG, *source, "-t", str(seconds), "-vf", chain, "-r", str(fps),
                        "-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-f", "mp4", str(out)], check=True)
    kind = "half_dome" if still.is_file() else "testsrc2"
    return _cached(f"pano_{kind}_{width}x{height}_{fps}fps_{seconds}s.mp4", make)


def _folder_stats(folder: Path) -> tuple[int, float]:
    jpgs = [p for p in folder.rglob("*.jpg")]
    return len(jpgs), sum(p.stat().st_size for p in jpgs) / 2**20


def run_ingest(video: Path, batch: Path, cfg: dict) -> tuple[float, float, dict]:
    shutil.rmtree(batch, ignore_errors=True)
    batch.mkdir(parents=True)
    wall, rss = run_measured([sys.executable, "-c", INGEST_CHILD, str(video), str(batch), json.dumps(cfg)])
    return wall, rss, json.loads((batch / "report.json").read_text())


def plan(video: Path, cfg: dict):
    from onyx_ingest.config import IngestConfig
    from onyx_ingest.ingest import plan_ingest
    from onyx_tools.video import probe_video

    return plan_ingest(IngestConfig(**cfg), probe_video(video))


def ffmpeg_frames_command(video: Path, out: Path, interval_s: float, count: int) -> list[str]:
    return [*FFMPEG, "-i", str(video), "-map", "0:v:0", "-an", "-vf", f"fps=1/{interval_s}",
            "-frames:v", str(count), *FFMPEG_JPEG_Q, str(out / "frame_%05d.jpg")]


def ffmpeg_views_command(video: Path, out: Path, interval_s: float, count: int, view_size: int,
                         views) -> list[str]:
    """One decode, ``fps``, then the panorama and each view (v360 equirect -> flat, 90 degrees) as JPEGs."""
    n = len(views)
    graph = [f"[0:v]fps=1/{interval_s},split={n + 1}[pano]" + "".join(f"[s{i}]" for i in range(n))]
    for i, spec in enumerate(views):
        graph.append(f"[s{i}]v360=input=e:output=flat:h_fov=90:v_fov=90:w={view_size}:h={view_size}:"
                     f"yaw={(spec.yaw_deg + 180) % 360 - 180:g}:pitch={spec.pitch_deg:g}:interp=linear[v{i}]")
    command = [*FFMPEG, "-i", str(video), "-filter_complex", ";".join(graph),
               "-map", "[pano]", "-frames:v", str(count), *FFMPEG_JPEG_Q, str(out / "pano_%05d.jpg")]
    for i, spec in enumerate(views):
        command += ["-map", f"[v{i}]", "-frames:v", str(count), *FFMPEG_JPEG_Q,
                    str(out / f"frame_%05d_{spec.name}.jpg")]
    return command


def compare(label: str, video: Path, cfg: dict, baseline_command, work: Path, repeat: int,
            baseline_desc: str) -> Row:
    onyx_s, base_s = [], []
    report: dict = {}
    base_dir = work / "ffmpeg"
    for _ in range(repeat):  # interleaved: both sides see the same background load, as far as possible
        wall, _rss, report = run_ingest(video, work / "onyx", cfg)
        onyx_s.append(wall)
        shutil.rmtree(base_dir, ignore_errors=True)
        base_dir.mkdir(parents=True)
        base_s.append(run_measured(baseline_command(report, base_dir))[0])
    onyx_count, onyx_mib = _folder_stats(work / "onyx")
    base_count, base_mib = _folder_stats(base_dir)
    info = plan(video, cfg).info
    notes = (f"{info.width}x{info.height} {info.duration_s:.0f} s {info.fps:g} fps; {onyx_count} JPEGs "
             f"({report['resolution']} + panoramas where 360), {onyx_mib:.0f} MiB vs ffmpeg {base_count} JPEGs "
             f"{base_mib:.0f} MiB; interval {report['interval_s']} s; baseline: {baseline_desc}; "
             f"Onyx decodes every frame and keeps the sharpest per window; "
             f"best of {repeat} interleaved (all: Onyx {', '.join(f'{s:.1f}' for s in onyx_s)} s, "
             f"ffmpeg {', '.join(f'{s:.1f}' for s in base_s)} s); shared 2-core machine, noisy")
    shutil.rmtree(work / "onyx", ignore_errors=True)
    shutil.rmtree(base_dir, ignore_errors=True)
    return Row(label, min(onyx_s), min(base_s), "s", "<= 1.15x", notes)


def run() -> list[Row]:
    from onyx_tools.spherical import view_set

    repeat = max(1, _env_int("ONYX_BENCH_INGEST_REPEAT", 2))
    seconds = _env_int("ONYX_BENCH_INGEST_SECONDS", 60)
    width, height = _size("ONYX_BENCH_INGEST_SIZE", "1280x720")
    pano_seconds = _env_int("ONYX_BENCH_INGEST_360_SECONDS", 20)
    pano_w, pano_h = _size("ONYX_BENCH_INGEST_360_SIZE", "3840x1920")
    view_size = _env_int("ONYX_BENCH_INGEST_VIEW_SIZE", 1024)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="onyx-bench-ingest-") as tmp:
        work = Path(tmp)

        # 1. normal video
        normal = testsrc_video(seconds, width, height)
        cfg = {"video": "normal"}
        rows.append(compare(
            f"ingest, normal video {width}x{height} {seconds} s", normal, cfg,
            lambda report, out: ffmpeg_frames_command(normal, out, report["interval_s"], report["frames"]),
            work, repeat, "ffmpeg -vf fps=1/interval -frames:v N -qmin 1 -q:v 1"))

        # 2. 360 video: the same views cut by ffmpeg's v360
        pano = pano_video(pano_seconds, pano_w, pano_h)
        cfg360 = {"video": "360", "view_size": view_size, "view_set": "cube12"}
        views = view_set("cube12")
        rows.append(compare(
            f"ingest, 360 video {pano_w}x{pano_h} {pano_seconds} s, 12 views of {view_size} px", pano, cfg360,
            lambda report, out: ffmpeg_views_command(pano, out, report["interval_s"], report["source_frames"],
                                                     view_size, views),
            work, repeat, "one ffmpeg: fps, split, v360 e->flat 90 deg x12 + the panorama, -qmin 1 -q:v 1"))

        # 3. peak memory, short against long video
        peaks = {}
        details = {}
        for length in (10, 100):
            video = testsrc_video(length, 1280, 720)
            wall, rss, report = run_ingest(video, work / f"mem{length}", {"video": "normal"})
            peaks[length] = rss
            details[length] = (f"{length} s: {report['frames']} frames of {report['decoded_frames']} decoded, "
                               f"{wall:.0f} s")
            shutil.rmtree(work / f"mem{length}", ignore_errors=True)
        rows.append(Row("ingest peak memory, 100 s vs 10 s video (1280x720)", peaks[100], peaks[10], "MiB",
                        "<= 1.2x", "peak RSS of the ingest child (max of Python and its ffmpeg, via wait4); "
                        + "; ".join(details.values())))
    return rows


if __name__ == "__main__":
    for row in run():
        print(row, f"ratio {row.ratio:.3f}")
