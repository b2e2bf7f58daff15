"""One-command GPU check of the gsplat step (for a machine with CUDA; under 8 minutes on one H200).

    python containers/gsplat/gpu_check.py [--iterations 7000] [--work DIR]     (from the repository root)

1. SfM with pycolmap on ../shared/datasets/chair_images (21 photographs, exhaustive matching).
2. Compiles/loads gsplat's CUDA kernels (timed on their own: gsplat 1.5.3 from PyPI JIT-compiles
   them on first use, which needs nvcc and takes minutes; prebuilt wheels skip it).
3. Cross-check: one view rendered by gsplat's CUDA rasterizer and by this package's plain-PyTorch
   rasterizer (on the GPU) from the same Gaussians; prints the largest pixel difference.
4. The real step (``build_splat``: undistortion, training, PLY, preview, metrics) with the CUDA
   rasterizer, first-version settings: 7,000 iterations, indoor downscale 2; prints training time
   and held-out PSNR (every 8th image) before and after.
Exit code 0 when the splat is valid and the held-out PSNR rose by at least 5 dB.

NOT RUN in the session that wrote it: no GPU was available there. Everything but the CUDA
rasterizer call is exercised by the CPU tests in tests/gsplat/.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DATASET = REPO / ".." / "shared" / "datasets" / "chair_images"


def run_sfm(batch: Path, dataset: Path) -> None:
    import pycolmap

    (batch / "images").mkdir(parents=True, exist_ok=True)
    for image in sorted(dataset.glob("*.jpg")):
        shutil.copyfile(image, batch / "images" / image.name)
    work = batch / ".work" / "sfm"
    work.mkdir(parents=True, exist_ok=True)
    database = work / "database.db"
    pycolmap.extract_features(database, batch / "images", camera_mode=pycolmap.CameraMode.SINGLE)
    pycolmap.match_exhaustive(database)
    models = pycolmap.incremental_mapping(database, batch / "images", work / "models")
    if not models:
        sys.exit("SfM found no model on chair_images")
    best = max(models.values(), key=lambda m: m.num_reg_images())
    (batch / "sparse" / "0").mkdir(parents=True, exist_ok=True)
    best.write(batch / "sparse" / "0")
    shutil.rmtree(work)
    print(f"sfm: {best.num_reg_images()}/{len(list(dataset.glob('*.jpg')))} registered, "
          f"{best.num_points3D()} points")


def cross_check(batch: Path) -> float:
    """Largest |CUDA - torch| over one rendered held-out view (colours in [0, 1])."""
    import torch

    from onyx_gsplat.config import GsplatConfig
    from onyx_gsplat.dataset import load_scene
    from onyx_gsplat.gaussians import init_gaussians
    from onyx_gsplat.rasterize_torch import rasterization_torch
    from onyx_gsplat.train import cuda_rasterization, render
    from onyx_tools.layout import BatchLayout

    scene = load_scene(BatchLayout(batch), lambda width: max(1, round(width / 160)), eval_every=8)
    params = init_gaussians(scene.points, scene.colors, 0, max_count=GsplatConfig().resolved("cpu", 640).max_gaussians,
                            device="cuda")
    view = scene.test[0].to("cuda")
    with torch.no_grad():
        cuda_image, _, _ = render(params, view, 0, cuda_rasterization())
        torch_image, _, _ = render(params, view, 0, rasterization_torch)
    return float((cuda_image - torch_image).abs().max())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=7000)
    parser.add_argument("--scene", default="indoor", choices=["indoor", "outdoor"])
    parser.add_argument("--dataset", type=Path, default=DATASET)
    parser.add_argument("--work", type=Path, default=None, help="kept afterwards when given")
    args = parser.parse_args()

    import torch

    if not torch.cuda.is_available():
        sys.exit("no CUDA device visible to torch: this check needs a GPU")
    if not args.dataset.is_dir():
        sys.exit(f"dataset not found at {args.dataset}")
    print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, {torch.cuda.get_device_name(0)}")

    work = args.work or Path(tempfile.mkdtemp(prefix="onyx-gsplat-gpu-"))
    batch = work / "batch"
    started = time.perf_counter()
    run_sfm(batch, args.dataset)
    print(f"sfm: {time.perf_counter() - started:.1f} s")

    t = time.perf_counter()
    from gsplat.cuda._backend import _C  # noqa: F401  triggers the JIT build when there is no prebuilt one

    if _C is None:
        sys.exit("gsplat's CUDA extension did not load (see the messages above: nvcc missing?)")
    print(f"gsplat CUDA kernels ready in {time.perf_counter() - t:.1f} s")

    difference = cross_check(batch)
    print(f"cross-check: max |gsplat CUDA - torch rasterizer| = {difference:.4f} on one held-out view "
          "(small differences are expected: the CUDA kernel stops at transmittance 1e-4)")

    from onyx_gsplat.config import GsplatConfig
    from onyx_gsplat.tool import build_splat
    from onyx_tools.layout import BatchLayout
    from onyx_tools.splat_ply import splat_summary

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    log = logging.getLogger("gpu_check")
    config = GsplatConfig(scene=args.scene, device="cuda", iterations=args.iterations)
    meta = build_splat(BatchLayout(batch), config, log)
    summary = splat_summary(batch / meta["splat_path"])
    print(f"RESULT: {meta['iterations']} iterations at {meta['resolution']} with {meta['rasterizer']}: "
          f"train {meta['train_seconds']:.1f} s, held-out PSNR {meta['psnr_first_eval']:.2f} -> "
          f"{meta['psnr_last_eval']:.2f} dB, SSIM {meta.get('ssim_last_eval')}, {summary['gaussians']} Gaussians, "
          f"{summary['size_mb']} MB PLY; whole check {time.perf_counter() - started:.1f} s")
    print(f"outputs in {batch / 'output'}")
    ok = meta["psnr_last_eval"] >= meta["psnr_first_eval"] + 5.0 and summary["gaussians"] > 0 and difference < 0.05
    if args.work is None and ok:
        shutil.rmtree(work, ignore_errors=True)
    print("GPU CHECK", "PASSED" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
