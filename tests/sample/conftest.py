import shutil

import pytest

from onyx_dagster.sample import build_scene, make_sample_video

needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None,
                                  reason="ffmpeg/ffprobe not installed (Debian: apt-get install ffmpeg)")


@pytest.fixture(scope="session")
def scene0():
    return build_scene(0)


@pytest.fixture(scope="session")
def walk30(tmp_path_factory):
    """The 30-frame 640x360 pinhole walk, rendered and encoded once for the session."""
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg not installed (Debian: apt-get install ffmpeg)")
    return make_sample_video(tmp_path_factory.mktemp("walk30"), kind="normal", frames=30, fps=10)
