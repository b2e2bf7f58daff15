"""Depth maps into COLMAP's dense workspace, then ``pycolmap.stereo_fusion`` (CPU) to a dense cloud.

Fusion reads, for every image named in ``stereo/fusion.cfg``, the undistorted image,
``stereo/depth_maps/<name>.<input_type>.bin`` and ``stereo/normal_maps/<name>.<input_type>.bin``
(an image missing either is skipped), and keeps a point only where at least
``min_num_pixels`` views agree on depth and normal.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .colmap_arrays import write_array

INPUT_TYPE = "geometric"  # swept depths were matched against several neighbours


@dataclass(frozen=True)
class FusionConfig:
    min_num_pixels: int = 3        # views that must agree (COLMAP's default 5 suits PatchMatch's denser maps)
    max_reproj_error: float = 2.0
    max_depth_error: float = 0.01
    max_normal_error: float = 30.0 # normals are derived from depth, noisier than PatchMatch's
    max_image_size: int = -1


def depth_map_path(workspace: Path, name: str) -> Path:
    return Path(workspace) / "stereo" / "depth_maps" / f"{name}.{INPUT_TYPE}.bin"


def normal_map_path(workspace: Path, name: str) -> Path:
    return Path(workspace) / "stereo" / "normal_maps" / f"{name}.{INPUT_TYPE}.bin"


def write_maps(workspace: Path, name: str, depth: np.ndarray, normal: np.ndarray) -> None:
    for path, array in ((depth_map_path(workspace, name), depth), (normal_map_path(workspace, name), normal)):
        path.parent.mkdir(parents=True, exist_ok=True)
        write_array(path, array)


def fuse(workspace: Path, names: list[str], out_ply: Path, config: FusionConfig = FusionConfig()) -> Path:
    """Fuse the depth maps of ``names`` (listed in fusion.cfg, the rest left out) into ``out_ply``."""
    import pycolmap

    workspace = Path(workspace)
    (workspace / "stereo" / "fusion.cfg").write_text("".join(f"{name}\n" for name in names))
    options = pycolmap.StereoFusionOptions()
    options.min_num_pixels = config.min_num_pixels
    options.max_reproj_error = config.max_reproj_error
    options.max_depth_error = config.max_depth_error
    options.max_normal_error = config.max_normal_error
    options.max_image_size = config.max_image_size
    pycolmap.stereo_fusion(str(out_ply), str(workspace), workspace_format="COLMAP",
                           input_type=INPUT_TYPE, options=options, output_type="PLY")
    return Path(out_ply)
