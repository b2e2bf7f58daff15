"""The viewer step: a reconstruction -> output/<recipe>/viewer/ (page, web formats, fly-through).

    viewer.html       one self-contained page: the SuperSplat viewer (splat) or model-viewer (mesh)
    splat.sog         splat only: PlayCanvas's SOG, the scene the page embeds
    splat.spz         splat only: SPZ (glTF KHR_gaussian_splatting compression)
    flythrough.mp4    the smoothed captured path, H.264 yuv420p at the capture's aspect ratio
    flythrough.jpg    its first frame (the UI's picture)
    viewer.json       what was made, how, and the rotation that makes the scene upright

``build_viewer`` is the whole step as a function of the batch folder; ``main`` adapts it to
the tool contract. The folder is published atomically: a failed step leaves the previous
one (or none) and touches nothing else.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from onyx_tools.errors import ToolError
from onyx_tools.layout import BatchLayout
from onyx_tools.manifest import data_version
from onyx_tools.publish import publishing
from onyx_tools.splat_ply import SplatFormatError, read_splat_ply
from onyx_tools.tool import ToolRun
from onyx_tools.video import encode_mp4

from . import __version__
from .camera_path import (Camera, captured_path, frame_times, look_target, path_duration, smoothed_poses,
                          video_size, viewer_rotation)
from .config import CPU_WIDTH, ViewerConfig
from .splat_render import RenderFrame

VIEWER_FOLDER = "viewer"
SPLAT_FILE = "splat.ply"
MESH_FILES = ("mesh.glb", "mesh.ply", "mesh.obj")
VIDEO_FILE, FRAME_FILE, REPORT_FILE = "flythrough.mp4", "flythrough.jpg", "viewer.json"
VIDEO_CRF = 20

Progress = Callable[[str, int, int, str], None]


def find_reconstruction(folder: Path) -> tuple[str, Path]:
    """("splat", splat.ply) or ("mesh", mesh.glb|ply|obj) of a recipe's output folder."""
    if (folder / SPLAT_FILE).is_file():
        return "splat", folder / SPLAT_FILE
    for name in MESH_FILES:
        if (folder / name).is_file():
            return "mesh", folder / name
    raise ToolError(f"{folder} holds no {SPLAT_FILE} and no mesh ({', '.join(MESH_FILES)}): "
                    "materialise reconstruction for this recipe first")


def _size_mb(path: Path) -> float:
    return round(path.stat().st_size / 1e6, 3)


def _viewer_points(rotation: np.ndarray, *points: np.ndarray) -> list[np.ndarray]:
    return [rotation @ p for p in points]


def splat_page(ply: Path, staged: Path, work: Path, rotation: np.ndarray, cameras: list[Camera],
               config: ViewerConfig, log: logging.Logger) -> tuple[dict[str, Any], RenderFrame]:
    from .splat_page import SOG_FILE, SPZ_FILE, VIEWER_FLIP, viewer_settings, write_splat_web
    from .splat_render import pick_device, splat_renderer

    try:
        cloud = read_splat_ply(ply)
    except SplatFormatError as error:
        raise ToolError(f"the splat cannot be shown: {error}; materialise reconstruction again") from None
    if len(cloud) == 0:
        raise ToolError(f"the splat {ply} holds no Gaussians: the reconstruction produced an empty scene; "
                        "check its log and materialise reconstruction again")
    first = cameras[0]
    target = look_target(first, cloud.means)
    distance = float(np.linalg.norm(target - first.centre))
    keys = np.array([c.time_s for c in cameras])
    track = []
    for time_s, (R, t) in zip(keys, smoothed_poses(cameras, keys, config.smoothing_s)):
        centre = -R.T @ t
        track.append((float(time_s), *_viewer_points(rotation, centre, centre + R[2] * distance)))
    position, look_at = _viewer_points(rotation, first.centre, target)
    settings = viewer_settings(position, look_at, first.long_side_fov_deg, track)
    counts = write_splat_web(ply, staged, VIEWER_FLIP @ rotation, settings, work, log,
                             gpu=config.sog_gpu, sh_iterations=config.sh_iterations,
                             sh_bands=config.page_sh_bands())
    for name, count in counts.items():
        if count != len(cloud):
            raise ToolError(f"{name} reads back with {count} Gaussians, the splat has {len(cloud)}: "
                            "splat-transform dropped some (non-finite values?); check logs/viewer.log")
    device = pick_device(config.device)
    rasterizer, render = splat_renderer(cloud, device)
    facts = {"kind": "splat", "gaussians": len(cloud), "sog_gaussians": counts[SOG_FILE],
             "spz_gaussians": counts[SPZ_FILE], "splat_ply_mb": _size_mb(ply), "sog_mb": _size_mb(staged / SOG_FILE),
             "spz_mb": _size_mb(staged / SPZ_FILE), "sog_sh_bands": config.page_sh_bands(), "renderer": rasterizer,
             "device": device}
    return facts, render


def mesh_page_and_renderer(mesh_file: Path, staged: Path, rotation: np.ndarray, cameras: list[Camera],
                           title: str) -> tuple[dict[str, Any], RenderFrame]:
    from .mesh_page import PAGE_FILE, mesh_page, upright_glb
    from .mesh_render import load_mesh, mesh_renderer

    mesh = load_mesh(mesh_file)
    first = cameras[0]
    target = look_target(first, mesh.vertices)
    position, look_at = _viewer_points(rotation, first.centre, target)
    extent = float(np.linalg.norm(mesh.vertices.max(axis=0) - mesh.vertices.min(axis=0)))
    page = mesh_page(upright_glb(mesh_file, rotation), position, look_at, first.vertical_fov_deg, extent, title)
    (staged / PAGE_FILE).write_text(page, encoding="utf-8")
    facts = {"kind": "mesh", "faces": len(mesh.faces), "vertices": len(mesh.vertices),
             "textured": mesh.texture is not None, "mesh_mb": _size_mb(mesh_file),
             "renderer": "open3d-raycasting", "device": "cpu"}
    return facts, mesh_renderer(mesh)


def write_flythrough(render: RenderFrame, cameras: list[Camera], staged: Path, config: ViewerConfig, device: str,
                     progress: Progress | None) -> dict[str, Any]:
    import cv2

    first = cameras[0]
    width = config.width or (first.width if device == "cuda" else min(first.width, CPU_WIDTH))
    width, height = video_size(first, width)
    camera = first.resized(width, height)
    times = frame_times(cameras, config.fps)
    poses = smoothed_poses(cameras, times, config.smoothing_s)
    started = time.perf_counter()

    def frames():
        for number, (R, t) in enumerate(poses):
            viewmat = np.eye(4)
            viewmat[:3, :3], viewmat[:3, 3] = R, t
            frame = render(viewmat, camera.K, width, height)
            if number == 0 and not cv2.imwrite(str(staged / FRAME_FILE), frame[:, :, ::-1],
                                               [cv2.IMWRITE_JPEG_QUALITY, 90]):
                raise OSError(f"could not write {staged / FRAME_FILE}")
            if progress:
                progress("flythrough", number + 1, len(poses), f"{width}x{height}")
            yield frame

    count = encode_mp4(frames(), staged / VIDEO_FILE, width, height, config.fps, crf=VIDEO_CRF)
    return {"flythrough_frames": count, "flythrough_fps": config.fps,
            "flythrough_seconds": round(count / config.fps, 3), "path_seconds": round(path_duration(cameras), 3),
            "flythrough_resolution": f"{width}x{height}", "capture_resolution": f"{first.width}x{first.height}",
            "flythrough_mb": _size_mb(staged / VIDEO_FILE),
            "render_seconds": round(time.perf_counter() - started, 2)}


def build_viewer(layout: BatchLayout, config: ViewerConfig, log: logging.Logger,
                 progress: Progress | None = None) -> dict[str, Any]:
    """Write and publish ``output/<recipe>/viewer/``; return the materialisation metadata."""
    started = time.perf_counter()
    source = layout.recipe_output(config.recipe)
    kind, reconstruction = find_reconstruction(source)
    cameras = captured_path(layout)
    rotation = viewer_rotation(cameras)
    target = source / VIEWER_FOLDER
    work = layout.work / f"viewer-{config.recipe}-{uuid.uuid4().hex[:8]}"
    log.info("%s %s: %d captured cameras over %.2f s", kind, reconstruction.name, len(cameras), path_duration(cameras))
    try:
        with publishing(target) as staged:
            if progress:
                progress("page", 0, 1, "writing the page")
            if kind == "splat":
                facts, render = splat_page(reconstruction, staged, work, rotation, cameras, config, log)
            else:
                facts, render = mesh_page_and_renderer(reconstruction, staged, rotation, cameras,
                                                       f"{layout.root.name} ({config.recipe})")
            page_seconds = round(time.perf_counter() - started, 2)
            facts["page_mb"] = _size_mb(staged / "viewer.html")
            if config.flythrough:
                facts.update(write_flythrough(render, cameras, staged, config, facts["device"], progress))
            report = {**facts, "version": __version__, "source": reconstruction.name,
                      "first_camera": cameras[0].name, "captured_cameras": len(cameras),
                      "viewer_from_reconstruction": rotation.tolist(), "page_seconds": page_seconds,
                      "config": config.model_dump()}
            (staged / REPORT_FILE).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    finally:
        shutil.rmtree(work, ignore_errors=True)

    relative = target.relative_to(layout.root).as_posix()
    metadata: dict[str, Any] = {
        **facts,
        "viewer_path": f"{relative}/viewer.html",
        "page_seconds": page_seconds,
        "total_seconds": round(time.perf_counter() - started, 1),
    }
    if config.flythrough:
        metadata["flythrough_path"] = f"{relative}/{VIDEO_FILE}"
        metadata["flythrough_frame_path"] = f"{relative}/{FRAME_FILE}"
    return metadata


def main(run: ToolRun) -> None:
    config = ViewerConfig.from_params(run.params)
    metadata = build_viewer(run.layout, config, run.log, run.progress)
    run.report(metadata, data_version=data_version(run.layout.recipe_output(config.recipe) / VIEWER_FOLDER))
