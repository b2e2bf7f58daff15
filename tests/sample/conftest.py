import shutil

import pytest

from components import needs, require

from onyx_sample import build_scene, make_sample_video

needs_ffmpeg = needs("ffmpeg", shutil.which("ffmpeg") is not None and shutil.which("ffprobe") is not None,
                     "ffmpeg/ffprobe not installed (Debian: apt-get install ffmpeg)")


@pytest.fixture(scope="session")
def scene0():
    return build_scene(0)


@pytest.fixture(scope="session")
def walk30(tmp_path_factory):
    """The 30-frame 640x360 pinhole walk, rendered and encoded once for the session."""
    require("ffmpeg", shutil.which("ffmpeg") is not None, "ffmpeg not installed (Debian: apt-get install ffmpeg)")
    return make_sample_video(tmp_path_factory.mktemp("walk30"), kind="normal", frames=30, fps=10)
