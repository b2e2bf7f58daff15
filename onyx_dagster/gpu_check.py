"""The GPU check: one command that says whether the GPU paths work on this machine (``scripts/gpu-check``).

    scripts/gpu-check [--work DIR] [--iterations 7000] [--cpu-budget 45] [--offline]

``scripts/gpu-check`` makes the environments (``requirements-cuda/``) and runs this module in them.
On a machine with an NVIDIA GPU it checks, each as one line of the closing table:

- the pinned CUDA wheels (torch's CUDA, gsplat's kernels compiled for this GPU with the pip nvcc);
- SIFT extraction and matching on the GPU against the CPU on castle-P30 (pycolmap-cuda12, its own
  environment), registration compared;
- one view rendered by gsplat's CUDA rasterizer and by the CPU tile rasterizer from the same Gaussians;
- the gaussian recipe through Onyx (local runner, its own Dagster instance under the work folder) on
  the demo scene at full resolution and on castle-P30, 7,000 steps with gsplat's CUDA rasterizer:
  time, held-out PSNR/SSIM, Gaussians, peak GPU memory, beside the CPU path's figures on the same
  batch at the CPU's resolution and time budget;
- SegFormer masks with real weights when ONYX_SEGFORMER_WEIGHTS names a saved checkpoint (no package
  registry ships the weights, so otherwise the line says so).

Without a GPU it says so in one line, checks what it can (the pins, that they resolve with pip, the
demo scene and the splat renderer on the CPU) and exits 2. Exit codes: 0 every line passed, 1 a line
failed, 2 no GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATASETS = REPO.parent / "shared" / "datasets"
REQUIREMENTS = REPO / "requirements-cuda"
NO_GPU_EXIT = 2


@dataclass
class Table:
    rows: list[tuple[str, str, str]] = field(default_factory=list)

    def add(self, check: str, status: str, figures: str) -> None:
        self.rows.append((check, status, figures))
        print(f"  {status:<4} {check}: {figures}", flush=True)

    def print(self) -> None:
        width = max(len(check) for check, _, _ in self.rows)
        print(f"\n{'check':<{width}}  result  figures")
        for check, status, figures in self.rows:
            print(f"{check:<{width}}  {status:<6}  {figures}")

    @property
    def failed(self) -> bool:
        return any(status == "FAIL" for _, status, _ in self.rows)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


# -- pins -------------------------------------------------------------------------------------------

PIN = re.compile(r"^([A-Za-z0-9_.\-]+)(\[[^\]]*\])?==([^\s;#]+)")


def read_pins(path: Path) -> dict[str, str]:
    """name (lower case, '-' for '_') -> version of every ``name==version`` line; any other requirement raises."""
    pins = {}
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        match = PIN.match(line)
        if not match:
            raise ValueError(f"{path.name}:{number}: {line!r} is not pinned with ==")
        pins[match.group(1).lower().replace("_", "-")] = match.group(3)
    return pins


def check_pins(table: Table) -> None:
    """The CUDA environment's pins are exact and agree with the project's lock where both name a package."""
    try:
        lock = read_pins(REPO / "requirements.lock")
        files = sorted(REQUIREMENTS.glob("*.txt"))
        if not files:
            raise ValueError(f"no requirement files in {REQUIREMENTS}")
        pins = {path.name: read_pins(path) for path in files}
    except (OSError, ValueError) as error:
        table.add("pins", "FAIL", str(error))
        return
    clashes = [f"{name} {package}=={version} but requirements.lock has {lock[package]}"
               for name, file_pins in pins.items() for package, version in file_pins.items()
               if package in lock and lock[package] != version]
    colmap = pins.get("sfm-cu12.txt", {}).get("pycolmap-cuda12")
    if colmap is not None and colmap != lock.get("pycolmap"):
        clashes.append(f"pycolmap-cuda12=={colmap} is not the lock's pycolmap=={lock.get('pycolmap')}")
    counted = ", ".join(f"{name} {len(file_pins)}" for name, file_pins in pins.items())
    table.add("pins", verdict(not clashes), "; ".join(clashes) or f"exact and consistent with requirements.lock "
                                                                   f"({counted} pins)")


def check_resolves(table: Table, offline: bool) -> None:
    """pip resolves each environment's pins together (metadata only, nothing installed)."""
    if offline:
        table.add("resolve", "SKIP", "--offline: pip's resolution of requirements-cuda/ not tried")
        return
    commands = {
        "onyx+cuda": ["-r", str(REPO / "requirements.lock"), "-r", str(REQUIREMENTS / "onyx-cu130.txt")],
        "sfm": ["-r", str(REQUIREMENTS / "sfm-cu12.txt")],
    }
    problems, started = [], time.perf_counter()
    for name, requirement_args in commands.items():
        try:
            done = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed",
                                   "--quiet", "--no-deps", *requirement_args],
                                  capture_output=True, text=True, timeout=600)
        except subprocess.TimeoutExpired:
            problems.append(f"{name}: pip did not answer in 600 s")
            continue
        if done.returncode != 0:
            lines = [line for line in done.stderr.splitlines() if line.startswith("ERROR")]
            problems.append(f"{name}: {(lines or done.stderr.splitlines() or ['pip failed'])[-1]}")
    table.add("resolve", verdict(not problems),
              "; ".join(problems) or f"every pin found by pip ({time.perf_counter() - started:.0f} s)")


# -- what the CPU can check ---------------------------------------------------------------------------

def check_cpu_render(table: Table, work: Path) -> None:
    """The demo scene renders (onyx_sample, to a video) and the splat renderer draws the same on both CPU
    rasterizers."""
    import numpy as np
    import torch

    from onyx_gsplat.gaussians import activated, init_gaussians
    from onyx_gsplat.render import Camera, rasterizer, render
    from onyx_sample import make_sample_video

    started = time.perf_counter()
    sample = make_sample_video(work / "render-check", frames=4, name="render-check")
    import cv2

    capture = cv2.VideoCapture(str(sample.path))
    ok, frame = capture.read()
    capture.release()
    textured = bool(ok) and float(np.std(frame)) > 10.0

    generator = torch.Generator().manual_seed(0)
    points = torch.rand(400, 3, generator=generator) * torch.tensor([2.0, 2.0, 1.0]) + torch.tensor([-1.0, -1.0, 3.0])
    params = init_gaussians(points, torch.rand(400, 3, generator=generator), 0, seed=0)
    K = torch.tensor([[80.0, 0.0, 64.0], [0.0, 80.0, 48.0], [0.0, 0.0, 1.0]])
    camera = Camera(K, torch.eye(4), 128, 96)
    with torch.no_grad():
        tiles, alpha, _ = render(activated(params, 0), camera, 0, rasterize=rasterizer("tiles-cpu"))
        reference, _, _ = render(activated(params, 0), camera, 0, rasterize=rasterizer("torch-cpu"))
    difference = float((tiles - reference).abs().max())
    covered = float((alpha > 0.5).float().mean())
    ok = textured and difference < 1e-3 and covered > 0.1
    table.add("cpu render", verdict(ok),
              f"demo scene {sample.width}x{sample.height} rendered and encoded ({'textured' if textured else 'FLAT'}), "
              f"splat tile vs reference rasterizer max |diff| {difference:.1e}, {100 * covered:.0f}% covered "
              f"({time.perf_counter() - started:.0f} s)")


# -- the GPU ------------------------------------------------------------------------------------------

def gpu_present() -> tuple[bool, str]:
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return False, "no nvidia-smi on PATH (no NVIDIA driver)"
    try:
        listed = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as error:
        return False, f"nvidia-smi did not answer: {error}"
    gpus = [line for line in listed.stdout.splitlines() if line.startswith("GPU")]
    if listed.returncode != 0 or not gpus:
        return False, f"nvidia-smi lists no GPU ({(listed.stderr or listed.stdout).strip()[:120]})"
    return True, gpus[0]


def check_cuda(table: Table) -> bool:
    import torch

    if not torch.cuda.is_available() or torch.version.cuda is None:
        table.add("torch cuda", "FAIL", f"torch {torch.__version__} (CUDA {torch.version.cuda}) sees no GPU: the "
                                        "driver may be older than this CUDA (torch 2.13 wheels need CUDA 13: driver "
                                        ">= 580)")
        return False
    name = torch.cuda.get_device_name(0)
    capability = ".".join(map(str, torch.cuda.get_device_capability(0)))
    table.add("torch cuda", "PASS", f"torch {torch.__version__}, CUDA {torch.version.cuda}, {name} (sm {capability}), "
                                    f"{torch.cuda.get_device_properties(0).total_memory / 2**30:.0f} GiB")
    return True


def check_gsplat_kernels(table: Table) -> bool:
    started = time.perf_counter()
    try:
        from onyx_gsplat.tool import gsplat_kernels_loaded

        loaded = gsplat_kernels_loaded()
    except Exception as error:  # the JIT build's own message says what is missing
        loaded, reason = False, f"{type(error).__name__}: {str(error).splitlines()[-1][:200] if str(error) else ''}"
    else:
        reason = "gsplat's CUDA extension did not load (nvcc missing? CUDA_HOME=" + os.environ.get("CUDA_HOME", "-") + ")"
    seconds = time.perf_counter() - started
    table.add("gsplat kernels", verdict(loaded), f"ready in {seconds:.0f} s (a JIT build the first time, "
                                                 f"cached after)" if loaded else reason)
    return loaded


def check_cross(table: Table, batch: Path) -> None:
    """One held-out view, gsplat CUDA vs the CPU tile rasterizer, same Gaussians."""
    import torch

    from onyx_gsplat.dataset import load_scene
    from onyx_gsplat.gaussians import activated, init_gaussians
    from onyx_gsplat.render import Camera, rasterizer, render
    from onyx_tools.layout import BatchLayout

    scene = load_scene(BatchLayout(batch), lambda width, height: max(1, round(width / 320)), eval_every=8)
    params = init_gaussians(scene.points, scene.colors, 0, max_count=20000)
    view = (scene.test or scene.train)[0]
    camera = Camera(view.K, view.viewmat, view.width, view.height)
    with torch.no_grad():
        cpu, _, _ = render(activated(params, 0), camera, 0, rasterize=rasterizer("tiles-cpu"))
        on_gpu = {k: v.to("cuda") for k, v in activated(params, 0).items()}
        cuda, _, _ = render(on_gpu, Camera(view.K.cuda(), view.viewmat.cuda(), view.width, view.height), 0,
                            rasterize=rasterizer("gsplat-cuda"))
    difference = float((cuda.cpu() - cpu).abs().max())
    table.add("cuda vs cpu render", verdict(difference < 0.05),
              f"max |gsplat CUDA - CPU tiles| {difference:.4f} on {view.name} at {view.width}x{view.height}, "
              f"{len(params['means'])} Gaussians")


def check_sift(table: Table, sfm_python: str | None, work: Path) -> None:
    images = DATASETS / "strecha_castle_p30" / "images"
    if not images.is_dir():
        table.add("sift gpu vs cpu", "FAIL", f"{images} not found (../shared/datasets beside the repository)")
        return
    python = sfm_python or sys.executable
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(REPO / "containers" / "common"), str(REPO / "containers" / "sfm"), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([python, "-m", "onyx_sfm.device_check", str(images), str(work / "sift")],
                          capture_output=True, text=True, env=env, timeout=900)
    rows = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    by_device = {row["device"]: row for row in rows if "device" in row}
    build = rows[0] if rows else {}
    cpu, cuda = by_device.get("cpu"), by_device.get("cuda")
    if done.returncode != 0 or cpu is None or cuda is None or "error" in cuda:
        reason = (cuda or {}).get("error") or (done.stderr.strip().splitlines() or ["no output"])[-1]
        table.add("sift gpu vs cpu", "FAIL", f"pycolmap {build.get('pycolmap', '?')} "
                                             f"(CUDA build: {build.get('cuda_build')}): {reason}")
        return

    def said(row: dict) -> str:
        return (f"{row['registered']}/{row['images']} registered, {row['points']} points, "
                f"{row['reprojection_px']} px, extract {row['extract_s']} s + match {row['match_s']} s")

    ok = cuda["registered"] >= max(3, cpu["registered"] - 1)
    table.add("sift gpu vs cpu", verdict(ok), f"castle-P30: GPU {said(cuda)} | CPU {said(cpu)}")


# -- the recipe through Onyx ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Scene:
    name: str
    video: Path
    scene: str          # indoor | outdoor
    interval: float     # every frame of these short videos
    gpu_settings: dict


def run_through_onyx(onyx, scene: Scene, iterations: int) -> dict:
    """Batch assets, then the gaussian-proto reconstruction with the GPU settings, in one Dagster instance."""
    from dagster import AssetKey, MultiPartitionKey

    from onyx_dagster.batches import add_batch, parse_settings

    instance = onyx.instance()
    key = scene.name
    add_batch(instance, onyx.data_root, key, parse_settings(
        {"input": str(scene.video), "scene": scene.scene, "mode": "gaussian", "quality": "proto",
         "interval": scene.interval}))
    started = time.perf_counter()
    result = onyx.job.execute_in_process(instance=instance, partition_key=key, raise_on_error=False,
                                         asset_selection=[AssetKey(n) for n in ("video", "frames", "sparse_model")],
                                         tags={"onyx/batch": key})
    if not result.success:
        raise RuntimeError(f"{key}: frames/sparse_model failed (logs in {onyx.data_root / key / 'logs'})")
    batch_seconds = time.perf_counter() - started
    partition = MultiPartitionKey({"batch": key, "recipe": "gaussian-proto"})
    settings = {"device": "cuda", "iterations": iterations, **scene.gpu_settings}
    started = time.perf_counter()
    result = onyx.job.execute_in_process(
        instance=instance, partition_key=partition, raise_on_error=False, tags={"onyx/batch": key},
        asset_selection=[AssetKey("reconstruction")],
        run_config={"ops": {"reconstruction": {"config": {"settings": settings}}}})
    wall = time.perf_counter() - started
    if not result.success:
        raise RuntimeError(f"{key}: reconstruction failed (logs in {onyx.data_root / key / 'logs'})")
    event = result.get_asset_materialization_events()[0]
    metadata = {k: getattr(v, "value", v) for k, v in event.materialization.metadata.items()}
    return {**metadata, "step_wall_s": round(wall, 1), "batch_s": round(batch_seconds, 1)}


CPU_SPLAT = """
import json, logging, sys
from onyx_gsplat.config import GsplatConfig
from onyx_gsplat.tool import build_splat
from onyx_tools.layout import BatchLayout
batch, scene, budget = sys.argv[1], sys.argv[2], float(sys.argv[3])
config = GsplatConfig(recipe="gaussian-proto-cpu", scene=scene, device="cpu", cpu_budget_s=budget)
print(json.dumps(build_splat(BatchLayout(batch), config, logging.getLogger("cpu"))))
"""


def cpu_splat(batch: Path, scene: str, budget: float) -> dict:
    """The CPU path on the same batch (its own output folder, output/gaussian-proto-cpu/)."""
    done = subprocess.run([sys.executable, "-c", CPU_SPLAT, str(batch), scene, str(budget)],
                          capture_output=True, text=True, env={**os.environ, "CUDA_VISIBLE_DEVICES": ""}, timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(f"CPU splat failed: {(done.stderr.strip().splitlines() or ['?'])[-1]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def splat_figures(meta: dict) -> str:
    memory = f"{meta['peak_gpu_mb']} MB GPU" if "peak_gpu_mb" in meta else f"{meta.get('peak_rss_mb', '?')} MB RSS"
    return (f"{meta['iterations']} steps at {meta['resolution']} in {meta['train_seconds']} s, PSNR "
            f"{meta.get('psnr_first_eval')}->{meta.get('psnr_last_eval')} dB, SSIM {meta.get('ssim_last_eval')}, "
            f"{meta['gaussians']} Gaussians, peak {memory}")


def check_recipe(table: Table, onyx, scene: Scene, iterations: int, cpu_budget: float) -> Path | None:
    label = f"gaussian {scene.name}"
    try:
        gpu = run_through_onyx(onyx, scene, iterations)
    except Exception as error:
        table.add(f"{label} (gpu)", "FAIL", str(error)[:300])
        return None
    batch = onyx.data_root / scene.name
    gained = (gpu.get("psnr_last_eval") or 0) - (gpu.get("psnr_first_eval") or 0)
    ok = gpu.get("rasterizer") == "gsplat-cuda" and gpu["gaussians"] > 0 and gained >= 5.0
    table.add(f"{label} (gpu)", verdict(ok), f"{splat_figures(gpu)}; step {gpu['step_wall_s']} s through Onyx "
                                             f"(frames+sfm {gpu['batch_s']} s)")
    try:
        cpu = cpu_splat(batch, scene.scene, cpu_budget)
    except Exception as error:
        table.add(f"{label} (cpu)", "FAIL", str(error)[:300])
        return batch
    better = (gpu.get("psnr_last_eval") or 0) >= (cpu.get("psnr_last_eval") or 0)
    table.add(f"{label} (cpu)", verdict(better),
              f"{splat_figures(cpu)} (the CPU path, {cpu_budget:.0f} s budget; PASS when the GPU's PSNR is at least "
              "this)")
    return batch


def check_segformer(table: Table, onyx, batch: str) -> None:
    from dagster import AssetKey, MultiPartitionKey

    from onyx_segformer.config import WEIGHTS_ENV

    weights = os.environ.get(WEIGHTS_ENV)  # the segformer tool's own variable: the tool reads it
    if not weights or not Path(weights).is_dir():
        table.add("segformer masks", "SKIP", "no SegFormer weights: no package registry ships them; set "
                                             "ONYX_SEGFORMER_WEIGHTS to a folder saved by "
                                             "containers/segformer/fetch_weights.py to run this line")
        return
    started = time.perf_counter()
    result = onyx.job.execute_in_process(
        instance=onyx.instance(), partition_key=MultiPartitionKey({"batch": batch, "recipe": "gaussian-proto"}),
        asset_selection=[AssetKey("masks")], raise_on_error=False, tags={"onyx/batch": batch})
    if not result.success:
        table.add("segformer masks", "FAIL", f"masks failed on {batch} (logs in {onyx.data_root / batch / 'logs'})")
        return
    meta = {k: getattr(v, "value", v)
            for k, v in result.get_asset_materialization_events()[0].materialization.metadata.items()}
    ok = meta.get("masks", 0) > 0 and meta.get("masks") == meta.get("images")
    table.add("segformer masks", verdict(ok), f"{meta.get('masks')}/{meta.get('images')} masks on {batch} with "
                                              f"{weights} on {meta.get('device', '?')} in "
                                              f"{time.perf_counter() - started:.0f} s")


def gpu_checks(table: Table, args, work: Path) -> None:
    from onyx_dagster.operations.context import Onyx
    from onyx_sample import make_sample_video

    if not check_cuda(table) or not check_gsplat_kernels(table):
        return
    check_sift(table, args.sfm_python, work)
    sample = make_sample_video(work / "samples", name="sample-walk")
    castle = DATASETS / "strecha_castle_p30" / "castle_p30_3fps.mp4"
    scenes = [Scene("demo", sample.path, "indoor", round(1 / sample.fps, 3), {"downscale": 1}),
              Scene("castle", castle, "outdoor", round(1 / 3, 3), {})]
    with Onyx(work / "onyx-data", home=work / "dagster-home") as onyx:
        for scene in scenes:
            if not scene.video.is_file():
                table.add(f"gaussian {scene.name} (gpu)", "FAIL", f"{scene.video} not found")
                continue
            batch = check_recipe(table, onyx, scene, args.iterations, args.cpu_budget)
            if batch is not None and scene.name == "demo":
                check_cross(table, batch)
        check_segformer(table, onyx, "castle")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gpu-check", description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=None, help="work folder, kept afterwards (default: a temporary "
                                                               "one, removed when every line passed)")
    parser.add_argument("--iterations", type=int, default=7000)
    parser.add_argument("--cpu-budget", type=float, default=45.0, help="seconds of CPU training for the CPU figures")
    parser.add_argument("--sfm-python", default=None, help="interpreter with pycolmap's CUDA build (the SIFT line)")
    parser.add_argument("--offline", action="store_true", help="do not ask pip to resolve the pins")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    work = args.work or Path(tempfile.mkdtemp(prefix="onyx-gpu-check-"))
    work.mkdir(parents=True, exist_ok=True)
    present, gpu = gpu_present()
    if not present:
        print(f"no GPU: {gpu}; checking what the CPU can (pins, resolution, CPU render), then exit {NO_GPU_EXIT}",
              flush=True)
    else:
        print(f"GPU: {gpu}", flush=True)
    table = Table()
    check_pins(table)
    check_resolves(table, args.offline)
    check_cpu_render(table, work)
    if present:
        gpu_checks(table, args, work)
    else:
        table.add("gpu lines", "SKIP", f"no GPU ({gpu})")
    total = time.perf_counter() - started
    if present:
        table.add("wall", verdict(total < 600), f"{total:.0f} s for the checks (goal < 600 s; the environments' "
                                                "install before them not counted)")
    table.print()
    if args.work is None and not table.failed:
        shutil.rmtree(work, ignore_errors=True)
    elif table.failed:
        print(f"work folder kept: {work}")
    if not present:
        return NO_GPU_EXIT
    return 1 if table.failed else 0


if __name__ == "__main__":
    sys.exit(main())
