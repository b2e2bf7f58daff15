"""The project's own sample walk-through: a textured synthetic room rendered along a known camera
path (pinhole or 360 equirectangular), encoded with ffmpeg, with a ground-truth JSON next to it.

    video = make_sample_video("out/", kind="normal")          # sample-normal.mp4 + .truth.json
    truth = video.truth()                                      # or load_truth(path)
    err = camera_path_error(truth.centres_by_frame(), {frame_index: centre, ...})
"""

from .align import camera_path_error, rotation_error_deg, umeyama
from .make import DEFAULTS, GroundTruth, SampleVideo, load_truth, make_sample_video
from .path import CameraPath, Intrinsics, walk_path
from .render import render_equirect, render_pinhole
from .scene import SampleScene, build_scene

__all__ = [
    "CameraPath", "DEFAULTS", "GroundTruth", "Intrinsics", "SampleScene", "SampleVideo", "build_scene",
    "camera_path_error", "load_truth", "make_sample_video", "render_equirect", "render_pinhole", "rotation_error_deg",
    "umeyama", "walk_path",
]
