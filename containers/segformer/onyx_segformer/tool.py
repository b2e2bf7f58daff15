"""The segformer step: masks for every frame, then the recipe's splat filtered by them.

    python -m onyx_segformer   (Pipes extras: recipe, scene, model_id, model_dir, classes,
                                batch_size, device, input_size, splat_name, filter)

Reads images/, sparse/0 and output/<recipe>/{splat.ply | point_cloud.ply}; writes masks/
(published atomically), output/<recipe>/point_cloud_filtered.ply and previews/masks.png.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from onyx_tools.errors import ToolError
from onyx_tools.layout import BatchLayout
from onyx_tools.manifest import data_version, file_sha256
from onyx_tools.publish import publishing, write_png_atomic
from onyx_tools.splat_ply import read_splat_ply, write_splat_ply
from onyx_tools.tool import ToolRun

from .cameras import read_cameras
from .config import SPLAT_NAMES, SegformerConfig
from .filter_gaussians import filter_gaussians_detailed
from .images import list_images, read_mask, write_mask
from .preview import mask_preview, pick_evenly

FILTERED_NAME = "point_cloud_filtered.ply"
PREVIEW_NAME = "masks.png"
PREVIEW_COUNT = 4
INDOOR_REASON = "indoor scene: Onyx 1.0 (run_pipeline.py) masks only outdoor scenes"


class MaskFiles(Sequence):
    """Masks read from disk when indexed, so a long capture's masks are never all in memory."""

    def __init__(self, paths: Sequence[Path]):
        self._paths = list(paths)

    def __len__(self) -> int:
        return len(self._paths)

    def __getitem__(self, index):
        return read_mask(self._paths[index])


def find_splat(layout: BatchLayout, params: SegformerConfig) -> tuple[Path | None, str]:
    """The recipe's splat PLY, or None and the reason there is nothing to filter."""
    folder = layout.recipe_output(params.recipe)
    names = (params.splat_name,) if params.splat_name else SPLAT_NAMES
    for name in names:
        if (folder / name).is_file():
            return folder / name, ""
    if params.recipe.startswith("photogrammetry"):
        return None, (f"recipe {params.recipe} produces a mesh, not Gaussians: only masks are produced")
    if params.splat_name:
        raise ToolError(f"{folder / params.splat_name} does not exist: check splat_name, or materialise "
                        f"the reconstruction of recipe {params.recipe} first")
    raise ToolError(f"no splat in {folder} (looked for {', '.join(SPLAT_NAMES)}): materialise the "
                    f"reconstruction of recipe {params.recipe} for this batch first")


def _combined_version(*parts: str) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def make_masks(run: ToolRun, params: SegformerConfig, images: list[Path]) -> dict:
    """Segment every image into a staged masks/ and publish it, then draw the preview; returns metadata."""
    from .masks import (
        predict_masks,  # torch and transformers: only when there is something to segment
    )
    from .model import Preprocessing, load_model, resolve_device, saved_model_id

    layout = run.layout
    started = time.monotonic()
    device = resolve_device(params.device)
    model = load_model(params.weights_dir, params.model_id, device)
    prep = Preprocessing.from_folder(Path(params.weights_dir))
    if params.input_size:
        prep = Preprocessing(size=params.input_size, mean=prep.mean, std=prep.std)
    loaded = time.monotonic()
    weights_id = saved_model_id(params.weights_dir) or params.model_id
    if weights_id != params.model_id:
        run.log.warning("asked for %s but %s holds %s: running (and recording) %s", params.model_id,
                        params.weights_dir, weights_id, weights_id)
    run.log.info("SegFormer %s loaded from %s on %s, input %dx%d, excluding classes %s",
                 weights_id, params.weights_dir, device, prep.size[1], prep.size[0], list(params.classes))
    preview_stems = {p.stem for p in pick_evenly(images, PREVIEW_COUNT)}
    preview_pairs, excluded_fractions = [], []

    def on_batch(done: int, total: int) -> None:
        run.progress("masks", done, total, f"{done}/{total} frames segmented")

    run.progress("masks", 0, len(images), "segmenting", force=True)
    with publishing(layout.masks) as staged:
        for path, mask in predict_masks(model, images, prep, params.classes, batch_size=params.batch_size,
                                        device=device, on_batch=on_batch):
            write_mask(staged, path.stem, mask)
            excluded_fractions.append(float(np.count_nonzero(mask == 0)) / mask.size)
            if path.stem in preview_stems:
                preview_pairs.append((path, mask))
    finished = time.monotonic()
    write_png_atomic(layout.previews / PREVIEW_NAME, mask_preview(preview_pairs))
    return {
        "masks": len(excluded_fractions),
        "masked_fraction": round(float(np.mean(excluded_fractions)), 4),
        "masked_fraction_max": round(float(np.max(excluded_fractions)), 4),
        "model_id": weights_id,
        "device": str(device),
        "input_size": f"{prep.size[1]}x{prep.size[0]}",
        "seconds_load_model": round(loaded - started, 2),
        "seconds_masks": round(finished - loaded, 2),
        "seconds_per_frame": round((finished - loaded) / max(len(images), 1), 3),
        "masks_path": "masks",
        "preview_path": f"previews/{PREVIEW_NAME}",
    }


def filter_splat(run: ToolRun, params: SegformerConfig, splat: Path) -> tuple[dict, Path]:
    layout = run.layout
    started = time.monotonic()
    run.progress("filter", 0, 3, "reading cameras and the splat", force=True)
    cameras = read_cameras(layout.sparse_model)
    with_mask = [c for c in cameras if (layout.masks / f"{Path(c.name).stem}.png").is_file()]
    if len(with_mask) < len(cameras):
        run.log.warning("%d of %d registered images have no mask (not in images/); they are not used",
                        len(cameras) - len(with_mask), len(cameras))
    if not with_mask:
        raise ToolError(f"none of the {len(cameras)} images in {layout.sparse_model} has a mask: the sparse model "
                        "does not belong to images/; materialise sparse_model again")
    cloud = read_splat_ply(splat)
    masks = MaskFiles([layout.masks / f"{Path(c.name).stem}.png" for c in with_mask])
    run.progress("filter", 1, 3, f"projecting {len(cloud):,} Gaussians", force=True)
    projected = time.monotonic()
    result = filter_gaussians_detailed(cloud.means, with_mask, masks, params.filter)
    filtered_at = time.monotonic()
    target = layout.recipe_output(params.recipe) / FILTERED_NAME
    write_splat_ply(target, cloud.subset(result.keep))
    run.progress("filter", 3, 3, f"{int(result.keep.sum()):,} of {len(cloud):,} Gaussians kept", force=True)
    if len(result.views_used) < params.filter.min_kept_views:
        run.log.warning("only %d usable views (masks keeping >= %.0f%% of pixels): the filter keeps nothing",
                        len(result.views_used), 100 * params.filter.min_camera_kept_fraction)
    metadata = {
        "filtered": True,
        "gaussians_before": len(cloud),
        "gaussians_after": int(result.keep.sum()),
        "gaussians_removed_by_masks": result.removed_by_masks,
        "gaussians_removed_as_outliers": result.removed_as_outliers,
        "gaussians_unseen": result.unseen,
        "gaussians_single_view": result.single_view,
        "cameras": len(with_mask),
        "cameras_dropped_low_keep": result.cameras_dropped,
        "cameras_used": len(result.views_used),
        "seconds_read": round(projected - started, 2),
        "seconds_filter": round(filtered_at - projected, 2),
        "seconds_write": round(time.monotonic() - filtered_at, 2),
        "splat_path": splat.relative_to(layout.root).as_posix(),
        "filtered_splat_path": target.relative_to(layout.root).as_posix(),
    }
    return metadata, target


def main(run: ToolRun) -> None:
    params = SegformerConfig.from_params(run.params)
    layout = run.layout
    base = {"scene": params.scene, "recipe": params.recipe, "model_id": params.model_id,
            "classes": list(params.classes)}
    if params.scene == "indoor":
        run.log.info("skipped: %s", INDOOR_REASON)
        run.report({**base, "skipped": True, "reason": INDOOR_REASON, "masks": 0, "filtered": False},
                   data_version=data_version(layout.masks))
        return
    started = time.monotonic()
    images = list_images(layout.images)
    splat, no_filter_reason = find_splat(layout, params)  # fail before minutes of inference, not after
    metadata = {**base, "skipped": False, "images": len(images)}
    metadata.update(make_masks(run, params, images))
    version_parts = [data_version(layout.masks)]
    if splat is None:
        run.log.info("not filtering: %s", no_filter_reason)
        metadata.update({"filtered": False, "filter_reason": no_filter_reason})
    else:
        filter_metadata, filtered = filter_splat(run, params, splat)
        metadata.update(filter_metadata)
        version_parts.append(file_sha256(filtered))
    metadata["seconds_total"] = round(time.monotonic() - started, 2)
    run.report(metadata, data_version=_combined_version(*version_parts))
