"""The splat's web page and web formats, written by PlayCanvas's ``splat-transform`` (pinned in npm).

- ``viewer.html``: the SuperSplat viewer with the scene embedded as SOG and the experience
  settings inline: one file that opens from disk, no server and no network. It opens at the
  first captured camera and plays the smoothed captured path (the viewer's camera animation;
  a click hands the camera to the person, ``?noanim`` holds it at the start).
- ``splat.sog``: the very SOG the page embeds (taken from the page, so the slow SOG
  compression, k-means over the SH palette, runs once).
- ``splat.spz``: Niantic's SPZ (the glTF KHR_gaussian_splatting compression).

Both formats are written upright, as 3DGS files are: the viewer turns every splat by 180
degrees about Z on load (y down, like COLMAP), so the files carry ``diag(-1, -1, 1)`` times
the viewer rotation. Each is read back by splat-transform and its Gaussian count compared.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import subprocess
from pathlib import Path

import numpy as np

from onyx_tools.errors import ToolError
from onyx_tools.process import run_program

from .node import INSTALL_HINT, splat_transform

PAGE_FILE, SOG_FILE, SPZ_FILE = "viewer.html", "splat.sog", "splat.spz"
VIEWER_FLIP = np.diag([-1.0, -1.0, 1.0])  # the SuperSplat viewer's own turn of every splat (0, 0, 180 degrees)
BOOTSTRAP = re.compile(r'<script type="application/json" id="sse-bootstrap">(.*?)</script>', re.S)
SOG_DATA_URL = "data:application/octet-stream;base64,"
MAX_TRACK_KEYS = 200  # keyframes of the captured path in the page: plenty for a spline


def playcanvas_euler_degrees(rotation: np.ndarray) -> tuple[float, float, float]:
    """Angles (x, y, z) in degrees with ``rotation = Rz(z) Ry(y) Rx(x)``, what splat-transform's ``-r`` takes
    (PlayCanvas's ``Quat.setFromEulerAngles``)."""
    r = np.asarray(rotation, dtype=np.float64)
    y = np.arcsin(np.clip(-r[2, 0], -1.0, 1.0))
    if abs(r[2, 0]) < 1.0 - 1e-9:
        x = np.arctan2(r[2, 1], r[2, 2])
        z = np.arctan2(r[1, 0], r[0, 0])
    else:  # gimbal lock: only x - z (or x + z) is defined; put it all in x
        x = np.arctan2(-r[1, 2], r[1, 1])
        z = 0.0
    return tuple(float(np.degrees(angle)) for angle in (x, y, z))


def splat_transform_angles(rotation: np.ndarray) -> tuple[float, float, float]:
    """The ``-r`` angles that make splat-transform turn a file's Gaussians by ``rotation``.

    splat-transform reads the angles in the viewer's frame (its rotation is applied as
    ``VIEWER_FLIP @ E @ VIEWER_FLIP`` to the file), so the flip is undone around them.
    """
    return playcanvas_euler_degrees(VIEWER_FLIP @ rotation @ VIEWER_FLIP)


def euler_rotation(x_deg: float, y_deg: float, z_deg: float) -> np.ndarray:
    """The matrix of ``playcanvas_euler_degrees``'s angles: Rz(z) Ry(y) Rx(x)."""
    x, y, z = np.radians([x_deg, y_deg, z_deg])
    rx = np.array([[1, 0, 0], [0, np.cos(x), -np.sin(x)], [0, np.sin(x), np.cos(x)]])
    ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    rz = np.array([[np.cos(z), -np.sin(z), 0], [np.sin(z), np.cos(z), 0], [0, 0, 1]])
    return rz @ ry @ rx


FOV_RANGE_DEG = (10.0, 120.0)  # what the viewer's settings accept


def viewer_settings(position: np.ndarray, target: np.ndarray, fov_deg: float,
                    track: list[tuple[float, np.ndarray, np.ndarray]]) -> dict:
    """SuperSplat experience settings (version 2): the first camera (``fov_deg`` across the window's
    longer side, as the viewer reads it) and the captured path, (time, position, target), as the
    camera animation the page starts with."""
    fov_deg = float(np.clip(fov_deg, *FOV_RANGE_DEG))
    step = max(1, int(np.ceil(len(track) / MAX_TRACK_KEYS)))
    keys = track[::step] if track[::step][-1] is track[-1] else track[::step] + [track[-1]]
    start = keys[0][0]
    animation = {
        "name": "captured path", "duration": float(keys[-1][0] - start), "frameRate": 30,
        "loopMode": "repeat", "interpolation": "spline", "smoothness": 1,
        "keyframes": {
            "times": [round(float(t - start), 4) for t, _, _ in keys],
            "values": {"position": [round(float(v), 5) for _, p, _ in keys for v in p],
                       "target": [round(float(v), 5) for _, _, g in keys for v in g],
                       "fov": [round(float(fov_deg), 3)] * len(keys)},
        },
    }
    return {
        "version": 2, "tonemapping": "linear", "highPrecisionRendering": False,
        "background": {"color": [0, 0, 0]},
        "postEffectSettings": {
            "sharpness": {"enabled": False, "amount": 0},
            "bloom": {"enabled": False, "intensity": 0.1, "blurLevel": 2},
            "grading": {"enabled": False, "brightness": 1, "contrast": 1, "saturation": 1, "tint": [1, 1, 1]},
            "vignette": {"enabled": False, "intensity": 0.5, "inner": 0.3, "outer": 0.75, "curvature": 1},
            "fringing": {"enabled": False, "intensity": 0.5},
        },
        "animTracks": [animation] if animation["duration"] > 0 else [],
        "cameras": [{"initial": {"position": [round(float(v), 5) for v in position],
                                 "target": [round(float(v), 5) for v in target], "fov": round(float(fov_deg), 3)}}],
        "annotations": [],
        "startMode": "animTrack" if animation["duration"] > 0 else "default",
    }


def sog_from_page(page: Path) -> bytes:
    """The SOG a splat-transform page embeds (its bootstrap block's data: URL)."""
    match = BOOTSTRAP.search(page.read_text(encoding="utf-8"))
    content = json.loads(match.group(1)).get("contentUrl", "") if match else ""
    if not content.startswith(SOG_DATA_URL):
        raise ToolError(f"{page} holds no embedded SOG scene: the installed splat-transform is not the pinned one "
                        f"({INSTALL_HINT})")
    return base64.b64decode(content[len(SOG_DATA_URL):])


def gaussian_count(path: Path) -> int:
    """How many Gaussians splat-transform reads back from ``path``."""
    command = [*splat_transform(), "-q", str(path), "null", "--info", "json"]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=600)
    try:
        return int(json.loads(completed.stdout)["numGaussians"])
    except (ValueError, KeyError, TypeError):
        raise ToolError(f"splat-transform cannot read back {path.name}: {completed.stderr.strip()[-500:]}") from None


def write_splat_web(ply: Path, folder: Path, file_rotation: np.ndarray, settings: dict, work: Path,
                    log: logging.Logger, gpu: str = "cpu", sh_iterations: int = 10,
                    sh_bands: int = 3) -> dict[str, int]:
    """viewer.html, splat.sog and splat.spz of ``ply`` in ``folder``; returns each one's Gaussian count.
    The page (and the SOG it embeds) keeps ``sh_bands`` spherical-harmonic bands; the SPZ keeps them all."""
    work.mkdir(parents=True, exist_ok=True)
    settings_file = work / "viewer-settings.json"
    settings_file.write_text(json.dumps(settings), encoding="utf-8")
    rotate = ",".join(f"{angle:.9f}" for angle in splat_transform_angles(file_rotation))
    tool = splat_transform()
    run_program([*tool, "--no-tty", "-w", "-g", gpu, "-i", str(sh_iterations), str(ply), "-r", rotate,
                 "-H", str(sh_bands), str(folder / PAGE_FILE), "--viewer-settings", str(settings_file)],
                log=log, hint=INSTALL_HINT)
    (folder / SOG_FILE).write_bytes(sog_from_page(folder / PAGE_FILE))
    run_program([*tool, "--no-tty", "-w", str(ply), "-r", rotate, str(folder / SPZ_FILE)], log=log, hint=INSTALL_HINT)
    return {name: gaussian_count(folder / name) for name in (SOG_FILE, SPZ_FILE)}
