"""The demo's real run (tests/viewer/conftest.py): the README's main job, and what a person opens and plays.

- the demo registers every frame on the known path, with its Dagster instance beside the data root;
- the demo ends by printing the page; the page renders the scene in headless Chromium
  (SwiftShader WebGL2), from the first captured camera and upright, with no page error;
- splat.sog and splat.spz read back with splat-transform to the splat's Gaussian count;
- the fly-through has the path's frame count and duration, H.264 yuv420p at the capture's
  aspect ratio, and a render at a captured pose matches the photograph taken there;
- the same page and video for a photogrammetry mesh (a fork of the demo batch);
- ``onyx view`` prints the page and serves the batch's output on loopback.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest

from onyx_viewer.camera_path import captured_path, frame_times

pytestmark = pytest.mark.slow  # one demo run (a few minutes on two cores), shared by the module

PAGE_WAIT_MS = 25_000  # real time: the viewer decodes the scene in workers (a virtual time budget shows nothing)
HIDE_CONTROLS = """() => {
  for (const element of document.querySelectorAll('body *')) {
    if (element.tagName !== 'CANVAS' && !element.querySelector('canvas')) element.style.visibility = 'hidden';
  }
}"""


def screenshot_page(browser, path, width: int, height: int, hide_controls: bool,
                    save_as, query: str = "") -> tuple[np.ndarray, list[str]]:
    """(RGB screenshot after a real-time wait, uncaught page errors); the PNG is kept at ``save_as``
    and, when ONYX_SCREENSHOTS names a folder, there too."""
    page = browser.new_page(viewport={"width": width, "height": height})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        page.goto(path.as_uri() + (f"?{query}" if query else ""))
        page.wait_for_timeout(PAGE_WAIT_MS)
        if hide_controls:  # measure what the scene renders, not the buttons over it
            page.evaluate(HIDE_CONTROLS)
            page.wait_for_timeout(500)
        png = page.screenshot()
    finally:
        page.close()
    for folder in (save_as.parent, os.environ.get("ONYX_SCREENSHOTS")):
        if folder:
            Path(folder).mkdir(parents=True, exist_ok=True)
            (Path(folder) / save_as.name).write_bytes(png)
    return cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)[:, :, ::-1], errors


def empty_page_std(browser, tmp_path, width: int, height: int) -> float:
    blank = tmp_path / "blank.html"
    blank.write_text("<!doctype html><html><body style='margin:0;background:#000'></body></html>")
    page = browser.new_page(viewport={"width": width, "height": height})
    try:
        page.goto(blank.as_uri())
        png = page.screenshot()
    finally:
        page.close()
    return float(cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_GRAYSCALE).std())


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Normalised cross-correlation of two pictures' small grey versions."""
    def small(image):
        grey = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY).astype(np.float64)
        grey = cv2.resize(grey, (64, 36), interpolation=cv2.INTER_AREA)
        return (grey - grey.mean()) / (grey.std() + 1e-9)
    return float((small(a) * small(b)).mean())


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0 ** 2 / mse))


def probe(path) -> dict:
    completed = subprocess.run(
        ["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0", "-show_entries",
         "stream=codec_name,pix_fmt,width,height,nb_read_frames,duration", "-of", "json", str(path)],
        capture_output=True, text=True, check=True)
    return json.loads(completed.stdout)["streams"][0]


def decoded_frame(path, index: int) -> np.ndarray:
    capture = cv2.VideoCapture(str(path))
    try:
        for _ in range(index + 1):
            ok, frame = capture.read()
            assert ok, f"{path} has no frame {index}"
    finally:
        capture.release()
    return frame[:, :, ::-1]


def report(demo, recipe: str) -> dict:
    return json.loads((demo.viewer(recipe) / "viewer.json").read_text())


def test_demo_registers_every_frame_on_the_known_path(demo):
    out = demo.stdout
    registered, frames = map(int, re.search(r"registered\s+(\d+) / (\d+)", out).groups())
    assert registered == frames >= 24, out
    ratio = float(re.search(r"= ([0-9.]+)% of the path", out).group(1))
    assert ratio <= 0.1, out
    assert (demo.root / "dagster-home" / "dagster.yaml").is_file()   # the instance beside the data root
    assert "dagster dev -w workspace.yaml" in out


def test_demo_hands_its_settings_to_the_tools(demo):
    metrics = json.loads((demo.layout.recipe_output("gaussian-proto") / "metrics.json").read_text())
    assert metrics["config"]["cpu_budget_s"] == demo.training_budget_s     # demo --set reconstruction.cpu_budget_s


# -- the splat page ----------------------------------------------------------------------------------------
def test_demo_ends_with_the_viewer_page(demo):
    tail = demo.stdout.strip().splitlines()[-3:]
    page = demo.viewer("gaussian-proto") / "viewer.html"
    assert tail[1].strip() == str(page), demo.stdout[-2000:]
    assert page.is_file() and page.stat().st_size > 1_000_000   # the viewer and the scene in one file
    assert "fly-through" in demo.stdout and "splat.sog" in demo.stdout


def test_splat_page_renders_the_scene(demo, browser, tmp_path):
    """What a person opens: the page plays the captured path; the canvas shows the scene, no page error."""
    first = captured_path(demo.layout)[0]
    shot, errors = screenshot_page(browser, demo.viewer("gaussian-proto") / "viewer.html", first.width, first.height,
                                   hide_controls=True, save_as=tmp_path / "viewer-splat.png")
    assert errors == [], errors
    assert shot.std() > empty_page_std(browser, tmp_path, first.width, first.height) + 20, "the canvas is blank"


def test_splat_page_starts_at_the_first_camera_upright(demo, browser, tmp_path):
    """Held at its start (the viewer's own ``?noanim``), the page shows what the first photograph shows,
    and the photograph upside down much less: the scene is upright."""
    first = captured_path(demo.layout)[0]
    shot, errors = screenshot_page(browser, demo.viewer("gaussian-proto") / "viewer.html", first.width, first.height,
                                   hide_controls=True, save_as=tmp_path / "viewer-splat-start.png", query="noanim")
    assert errors == [], errors
    photo = cv2.imread(str(demo.layout.images / first.name))[:, :, ::-1]
    same, flipped = similarity(shot, photo), similarity(shot, photo[::-1, ::-1])
    assert same > 0.5 and same > flipped + 0.3, (same, flipped)


def test_web_formats_read_back_with_every_gaussian(demo):
    from onyx_tools.splat_ply import read_splat_ply
    from onyx_viewer.node import splat_transform
    from onyx_viewer.splat_page import gaussian_count

    folder = demo.viewer("gaussian-proto")
    gaussians = len(read_splat_ply(demo.layout.recipe_output("gaussian-proto") / "splat.ply"))
    assert gaussians > 0
    for name in ("splat.sog", "splat.spz"):
        assert gaussian_count(folder / name) == gaussians, name
    facts = report(demo, "gaussian-proto")
    assert facts["sog_gaussians"] == facts["spz_gaussians"] == gaussians
    assert facts["spz_mb"] < facts["splat_ply_mb"] and facts["sog_mb"] < facts["splat_ply_mb"]
    # SOG compression on the CPU keeps one SH band (its palette k-means over three takes minutes); SPZ keeps all.
    bands = {name: json.loads(subprocess.run([*splat_transform(), "-q", str(folder / name), "null", "--info", "json"],
                                             capture_output=True, text=True, timeout=300).stdout)["shBands"]
             for name in ("splat.sog", "splat.spz")}
    assert bands == {"splat.sog": facts["sog_sh_bands"], "splat.spz": 3} and facts["sog_sh_bands"] == 1, bands


# -- the fly-through -----------------------------------------------------------------------------------------
def test_flythrough_follows_the_captured_path(demo):
    facts = report(demo, "gaussian-proto")
    video = demo.viewer("gaussian-proto") / "flythrough.mp4"
    stream = probe(video)
    cameras = captured_path(demo.layout)
    expected = len(frame_times(cameras, facts["flythrough_fps"]))
    assert int(stream["nb_read_frames"]) == facts["flythrough_frames"] == expected
    assert abs(float(stream["duration"]) - expected / facts["flythrough_fps"]) < 1e-3
    assert (stream["codec_name"], stream["pix_fmt"]) == ("h264", "yuv420p")
    capture_aspect = cameras[0].width / cameras[0].height
    assert abs(stream["width"] / stream["height"] - capture_aspect) < 0.02
    assert facts["device"] == "cpu" and facts["flythrough_resolution"] == f"{stream['width']}x{stream['height']}"


def test_a_render_at_a_captured_pose_matches_the_photograph(demo):
    """The fly-through's renderer at the training views' poses scores as training did: the frames
    at captured poses match the photographs about as well as the held-out PSNR says."""
    import torch

    from onyx_gsplat.dataset import load_scene
    from onyx_tools.splat_ply import read_splat_ply
    from onyx_viewer.splat_render import splat_renderer

    output = demo.layout.recipe_output("gaussian-proto")
    metrics = json.loads((output / "metrics.json").read_text())
    held_out = metrics["last_eval"]["psnr"]
    scene = load_scene(demo.layout, lambda width, height: metrics["downscale"], metrics["config"]["eval_every"])
    _, render = splat_renderer(read_splat_ply(output / "splat.ply"), "cpu")
    scores = []
    for view in scene.train[::3]:
        frame = render(view.viewmat.double().numpy(), view.K.double().numpy(), view.width, view.height)
        photo = (view.image.clamp(0, 1) * 255.0 + 0.5).to(torch.uint8).numpy()
        scores.append(psnr(frame, photo))
    assert np.mean(scores) > held_out - 1.0, (scores, held_out)
    # The video starts at the first captured camera: its first frame is the render there (through
    # H.264), and matches that photograph as well as training scored that view (it is held out).
    video_frame = decoded_frame(demo.viewer("gaussian-proto") / "flythrough.mp4", 0)
    height, width = video_frame.shape[:2]
    first = captured_path(demo.layout)[0]
    at_first = first.resized(width, height)
    assert psnr(video_frame, render(at_first.viewmat, at_first.K, width, height)) > 28.0
    size = tuple(int(v) for v in metrics["resolution"].split("x"))
    photo = cv2.resize(cv2.imread(str(demo.layout.images / first.name))[:, :, ::-1], size, interpolation=cv2.INTER_AREA)
    scored = metrics["last_eval"]["per_view"].get(first.name, held_out)
    shown = psnr(cv2.resize(video_frame, size, interpolation=cv2.INTER_AREA), photo)
    assert shown > scored - 1.5, (shown, scored)


def test_dagster_shows_the_page_and_the_first_frame(demo):
    from dagster import AssetCheckKey, AssetKey, AssetRecordsFilter, DagsterInstance, MultiPartitionKey

    instance = DagsterInstance.from_config(str(demo.root / "dagster-home"))
    try:
        partition = str(MultiPartitionKey({"batch": demo.key, "recipe": "gaussian-proto"}))
        records = instance.fetch_materializations(
            AssetRecordsFilter(asset_key=AssetKey("viewer"), asset_partitions=[partition]), limit=1).records
        metadata = records[0].event_log_entry.asset_materialization.metadata
        assert metadata["viewer_path"].path == str(demo.viewer("gaussian-proto") / "viewer.html")
        assert metadata["flythrough_frame"].value.startswith("![flythrough frame](data:image/jpeg;base64,")
        for key in ("sog_mb", "spz_mb", "splat_ply_mb", "flythrough_resolution", "device"):
            assert key in metadata, key
        check = AssetCheckKey(AssetKey("viewer"), "web_formats_complete")
        history = instance.event_log_storage.get_asset_check_execution_history(check, limit=1)
        assert history and history[0].status.value == "SUCCEEDED", history
    finally:
        instance.dispose()


# -- the mesh page -------------------------------------------------------------------------------------------
def test_mesh_page_and_flythrough(mesh_fork, browser, tmp_path):
    demo = mesh_fork
    facts = report(demo, "photogrammetry-proto")
    assert facts["kind"] == "mesh" and facts["faces"] > 0
    first = captured_path(demo.layout)[0]
    shot, errors = screenshot_page(browser, demo.viewer("photogrammetry-proto") / "viewer.html",
                                   first.width, first.height, hide_controls=False,
                                   save_as=tmp_path / "viewer-mesh.png")
    assert errors == [], errors
    assert shot.std() > empty_page_std(browser, tmp_path, first.width, first.height) + 20, "the canvas is blank"
    # the page opens where the fly-through starts (both at the first captured camera), upright
    frame = cv2.resize(decoded_frame(demo.viewer("photogrammetry-proto") / "flythrough.mp4", 0), (first.width, first.height))
    same, flipped = similarity(shot, frame), similarity(shot, frame[::-1, ::-1])
    assert same > 0.7 and same > flipped + 0.3, (same, flipped)
    stream = probe(demo.viewer("photogrammetry-proto") / "flythrough.mp4")
    assert int(stream["nb_read_frames"]) == len(frame_times(captured_path(demo.layout), facts["flythrough_fps"]))
    assert (stream["codec_name"], stream["pix_fmt"]) == ("h264", "yuv420p")
    # the fork's reconstruction does not make the first recipe's viewer look stale
    resume = demo.onyx("resume", demo.key, "--data-root", str(demo.data_root), "--dry-run", timeout=300)
    assert resume.returncode == 0 and "is complete" in resume.stdout, resume.stdout + resume.stderr


# -- onyx view ----------------------------------------------------------------------------------------------
def test_onyx_view_prints_the_page_and_serves_the_output(demo):
    page = demo.viewer("gaussian-proto") / "viewer.html"
    shown = demo.onyx("view", demo.key, "--data-root", str(demo.data_root), "--no-open", timeout=120)
    assert shown.returncode == 0 and shown.stdout.splitlines()[0] == str(page), shown.stdout + shown.stderr
    missing = demo.onyx("view", demo.key, "--data-root", str(demo.data_root), "--recipe", "gaussian-production",
                        timeout=120)
    assert missing.returncode == 2 and "no viewer page for recipe gaussian-production" in missing.stderr
    server = subprocess.Popen([sys.executable, "-m", "onyx_dagster.cli", "view", demo.key, "--data-root",
                               str(demo.data_root), "--serve", "--port", "0", "--no-open"],
                              cwd=demo.root, env=demo.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = None
        deadline = time.monotonic() + 60
        while url is None and time.monotonic() < deadline:
            line = server.stdout.readline()
            if line.startswith("http://127.0.0.1:"):
                url = line.strip()
        assert url and url.endswith("/gaussian-proto/viewer/viewer.html"), url
        with urllib.request.urlopen(url, timeout=30) as response:
            assert response.status == 200 and b'id="sse-bootstrap"' in response.read()
    finally:
        server.terminate()
        server.wait(timeout=30)
