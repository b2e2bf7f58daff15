"""Undistortion of a batch's sparse model to PINHOLE cameras (pycolmap, CPU).

OpenMVS, MILo and the CPU photogrammetry path all want undistorted PINHOLE
images; COLMAP's undistorter writes the standard dense workspace:

    <out>/images/        undistorted images (same names as in the model)
    <out>/sparse/        the model with PINHOLE cameras (binary)
    <out>/stereo/        depth_maps/, normal_maps/, patch-match.cfg, fusion.cfg
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from .errors import ToolError


@dataclass(frozen=True)
class UndistortConfig:
    max_image_size: int = -1   # -1 keeps the size; OpenMVS/MILo downscale themselves
    blank_pixels: float = 0.0  # 0: crop so no black border remains (borders look like texture)


def undistort_to_pinhole(sparse_model: Path, images: Path, out: Path,
                         config: UndistortConfig = UndistortConfig()) -> Path:
    """Write the undistorted dense workspace for ``sparse_model`` into ``out`` (replaced)."""
    import pycolmap

    sparse_model, images, out = Path(sparse_model), Path(images), Path(out)
    if not (sparse_model / "images.bin").is_file() and not (sparse_model / "images.txt").is_file():
        raise ToolError(f"no COLMAP model in {sparse_model}: materialise sparse_model for this batch first")
    if out.exists():
        shutil.rmtree(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    options = pycolmap.UndistortCameraOptions()
    options.max_image_size = config.max_image_size
    options.blank_pixels = config.blank_pixels
    pycolmap.undistort_images(out, sparse_model, images, output_type="COLMAP", undistort_options=options)
    if not (out / "sparse" / "images.bin").is_file():
        raise ToolError(f"undistortion wrote no model into {out}: check that {images} holds the model's images")
    return out
