"""360 walks: frames kept as the camera moves, and what moves with the camera masked out.

The walk is the project's synthetic 360 sample (onyx_sample) with an operator painted at fixed
panorama pixels in the lower hemisphere and a passer-by crossing the room.
"""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from onyx_ingest.config import MAX_GAP_S, IngestConfig
from onyx_ingest.ingest import ingest_video
from onyx_ingest.operator_mask import nadir_cap
from onyx_sample import make_sample_video
from onyx_sample.actors import Operator
from onyx_tools.layout import OPERATOR_MASKS, BatchLayout

from .conftest import EQUIRECT_STILLS, ffmpeg, need

WIDTH, HEIGHT = 384, 192


@pytest.fixture(scope="module")
def operator_walk(tmp_path_factory):
    """4 s of walking 6 m at 10 fps, with the operator and a passer-by."""
    return make_sample_video(tmp_path_factory.mktemp("walk"), kind="360", frames=40, width=WIDTH, height=HEIGHT,
                             fps=10, operator=True, passer_by=True).path


@pytest.fixture(scope="module")
def walked(operator_walk, tmp_path_factory):
    layout = BatchLayout(tmp_path_factory.mktemp("batch"))
    metadata = ingest_video(IngestConfig(), operator_walk, layout)
    return layout, metadata, json.loads(layout.image_index.read_text())


def test_frames_follow_the_motion(walked, operator_walk, tmp_path):
    _layout, metadata, index = walked
    assert metadata["frame_selection"] == "motion" and index["interval_s"] is None
    motion = metadata["motion"]
    assert motion["analysed_frames"] == 40 and motion["untracked_frames"] == 0
    assert motion["windows_by_motion"] >= 5 and motion["windows_by_max_gap"] == 0
    times = [p["timestamp_s"] for p in index["panoramas"]]
    assert 6 <= len(times) <= 16 and max(np.diff(times)) <= MAX_GAP_S
    # twice the step: about half the frames
    coarse = ingest_video(IngestConfig(motion_step_deg=2 * IngestConfig().motion_step_deg), operator_walk,
                          BatchLayout(tmp_path))
    assert coarse["source_frames"] <= 0.65 * metadata["source_frames"]


def test_views_are_sized_from_the_panorama(walked):
    _layout, metadata, index = walked
    # 384 px around: a 105 degree view holds the panorama's resolution at 158 px
    assert index["view_size"] == 158 and index["fov_deg"] == 105.0 and metadata["resolution"] == "158x158"


def test_the_operator_is_masked_and_the_room_is_not(walked):
    layout, metadata, index = walked
    assert index["operator_mask"]["folder"] == OPERATOR_MASKS and not index["operator_mask"]["note"]
    assert (layout.root / metadata["operator_mask_preview_path"]).is_file()
    pano_masks = {p.name for p in (layout.panoramas / OPERATOR_MASKS).iterdir()}
    assert pano_masks == {f"{p['name']}.png" for p in index["panoramas"]}
    view_masks = {p.name for p in (layout.images / OPERATOR_MASKS).iterdir()}
    assert view_masks == {f"{e['name']}.png" for e in index["images"]}

    mask = cv2.imread(str(layout.panoramas / OPERATOR_MASKS / f"{index['panoramas'][0]['name']}.png"),
                      cv2.IMREAD_UNCHANGED)
    assert mask.shape == (HEIGHT, WIDTH) and set(np.unique(mask)) == {0, 255}
    _, operator = Operator().layer(WIDTH, HEIGHT)
    nadir = nadir_cap(WIDTH, HEIGHT, 20.0)
    assert (mask[nadir] == 0).all()
    body = operator & ~nadir
    masked = mask == 0
    assert masked[body].mean() >= 0.85, "the operator is not masked"
    assert masked[~operator & ~nadir].mean() <= 0.03, "the room is masked"

    # the views' masks are the panorama's, cut as the views are: the top row (pitch +35) sees hardly any
    views = {v["name"]: v for v in index["views"]}
    frame = [e for e in index["images"] if e["frame"] == 1]
    for entry in frame:
        view_mask = cv2.imread(str(layout.images / OPERATOR_MASKS / f"{entry['name']}.png"), cv2.IMREAD_UNCHANGED)
        assert view_mask.shape == (index["view_size"], index["view_size"])
        if views[entry["view"]]["pitch_deg"] > 0:
            assert (view_mask == 0).mean() < 0.01
    assert any((cv2.imread(str(layout.images / OPERATOR_MASKS / f"{e['name']}.png"), 0) == 0).mean() > 0.2
               for e in frame)


def test_a_camera_that_does_not_move(tmp_path):
    """A still panorama: one frame every MAX_GAP_S, and no evidence either way about the operator."""
    video = tmp_path / "still.mp4"
    still = sorted(need(EQUIRECT_STILLS).glob("*.jpg"))[0]
    ffmpeg("-loop", "1", "-framerate", "10", "-t", "5", "-i", str(still), "-vf", "scale=512:256,format=yuv420p",
           "-c:v", "libx264", "-preset", "ultrafast", str(video))
    metadata = ingest_video(IngestConfig(), video, BatchLayout(tmp_path / "batch"))
    assert metadata["motion"]["windows_by_motion"] == 0 and metadata["source_frames"] == 3  # 0-2, 2-4, 4-5 s
    assert metadata["operator_mask"]["camera_fixed_fraction"] == 0
    assert "moved too little" in metadata["operator_mask"]["note"]


def test_a_turn_is_no_parallax_and_a_step_is(tmp_path):
    """The measure itself, on rendered panoramas of the sample room: turning in place gives (almost) no
    parallax, walking half a metre gives degrees of it."""
    from onyx_ingest.motion import shrink_panorama, track_motion
    from onyx_sample import build_scene, render_equirect
    from onyx_sample.path import CameraPath
    from onyx_tools.spherical import rot_y

    scene = build_scene(0)
    centre = np.array([0.2, -1.5, 2.0])
    poses = [(0.0, centre), (20.0, centre), (0.0, centre + [0.0, 0.0, 0.5])]
    rotations = np.array([rot_y(np.radians(yaw)).T for yaw, _ in poses])
    path = CameraPath(1.0, rotations, np.array([-r @ c for r, (_, c) in zip(rotations, poses)]))
    lumas = [shrink_panorama(cv2.cvtColor(render_equirect(scene, path, i, 1024, 512), cv2.COLOR_RGB2GRAY))
             for i in range(3)]
    turn, step = track_motion(lumas[0], lumas[1]), track_motion(lumas[0], lumas[2])
    assert turn.rotation_deg == pytest.approx(20.0, abs=1.0) and turn.parallax_deg < 0.5
    assert step.rotation_deg < 2.0 and step.parallax_deg > 3.0  # parallax bends the rotation fit a little
