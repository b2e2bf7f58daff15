"""What the step leaves behind: the splat PLY, a preview picture and metrics.json."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import torch
from onyx_tools.publish import write_bytes_atomic
from onyx_tools.splat_ply import read_splat_ply, write_splat_ply

from .dataset import View
from .gaussians import to_cloud
from .render import Rasterize
from .train import render_view

SPLAT_FILE = "splat.ply"
PREVIEW_FILE = "preview.png"
METRICS_FILE = "metrics.json"
PREVIEW_MIN_WIDTH = 320  # px per half; tiny CPU renders are enlarged (nearest) so the UI shows something


def write_splat(folder: Path, params) -> int:
    """Write and read back the standard 3DGS PLY; returns the Gaussian count."""
    path = folder / SPLAT_FILE
    write_splat_ply(path, to_cloud(params))
    return len(read_splat_ply(path))  # validates: a file we cannot read back is a failed step


@torch.no_grad()
def write_preview(path: Path, params, view: View, sh_degree: int, rasterize: Rasterize) -> None:
    """A held-out view: render on the left, the photograph on the right."""
    image, _, _ = render_view(params, view, sh_degree, rasterize)
    pair = torch.cat([image.clamp(0, 1), view.image], dim=1).cpu().numpy()
    bgr = (pair[:, :, ::-1] * 255.0 + 0.5).astype(np.uint8)
    if view.width < PREVIEW_MIN_WIDTH:
        factor = -(-PREVIEW_MIN_WIDTH // view.width)
        bgr = cv2.resize(bgr, None, fx=factor, fy=factor, interpolation=cv2.INTER_NEAREST)
    if not cv2.imwrite(str(path), bgr):
        raise OSError(f"could not write {path}")


def write_metrics(path: Path, metrics: dict) -> None:
    path.write_text(json.dumps(metrics, indent=2, sort_keys=True, default=float) + "\n", encoding="utf-8")


def copy_atomic(source: Path, target: Path) -> None:
    """Copy so readers of ``target`` see the old or the new file, never half of one."""
    write_bytes_atomic(target, Path(source).read_bytes())
