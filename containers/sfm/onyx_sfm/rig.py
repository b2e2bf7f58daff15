"""The views of one 360 frame as a COLMAP camera rig with fixed, known relative rotations.

COLMAP groups images into rig frames by name: an image ``<prefix><rest>`` belongs to the
sensor whose ``image_prefix`` it starts with, and images with the same ``<rest>`` form one
frame. The frames step names views ``frame_00001_v00.jpg``, so the rig run sees them through
links ``v00/frame_00001.jpg`` in its scratch folder and renames them back afterwards.
"""

from __future__ import annotations

from onyx_tools import native_order  # noqa: F401  (before pycolmap: see onyx_tools/native_order.py)

import os
from pathlib import Path

import numpy as np
import pycolmap

from .image_index import ImageIndex, ViewInfo
from .poses import view_from_ref


def rig_image_name(view: str, frame: int) -> str:
    return f"{view}/frame_{frame:05d}.jpg"


def rig_names(index: ImageIndex) -> dict[str, str]:
    """rig-layout name -> name in images/, for every view image of the index."""
    return {rig_image_name(entry.view or "", entry.frame): entry.name for entry in index.images}


def link_rig_layout(images_dir: Path, index: ImageIndex, target: Path) -> dict[str, str]:
    """Make ``target/<view>/frame_NNNNN.jpg`` links to the views in ``images_dir`` (relative links)."""
    mapping = rig_names(index)
    for rig_name, name in mapping.items():
        link = target / rig_name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.unlink(missing_ok=True)
        os.symlink(os.path.relpath(Path(images_dir).resolve() / name, link.parent.resolve()), link)
    return mapping


def build_rig_config(views: list[ViewInfo]) -> pycolmap.RigConfig:
    """One sensor per view; the first view is the reference, the others are fixed rotations of it."""
    ref = views[0]
    cameras = []
    for i, view in enumerate(views):
        rotation = view_from_ref(view.yaw_deg, view.pitch_deg, ref.yaw_deg, ref.pitch_deg)
        cam_from_rig = pycolmap.Rigid3d(pycolmap.Rotation3d(rotation), np.zeros(3))
        cameras.append(pycolmap.RigConfigCamera(image_prefix=f"{view.name}/", ref_sensor=(i == 0),
                                                cam_from_rig=None if i == 0 else cam_from_rig))
    return pycolmap.RigConfig(cameras=cameras)


def rename_images(reconstruction: pycolmap.Reconstruction, mapping: dict[str, str]) -> None:
    """Give the model's images their names in images/ back."""
    for image in reconstruction.images.values():
        image.name = mapping.get(image.name, image.name)
