"""What a run needs before its first step starts, checked one prerequisite at a time.

Each check looks at one thing a step needs (ffmpeg, the SegFormer weights, a GPU, the
docker images, free disk, write access) and returns ``Missing`` items, each naming what is
missing, for which step, and the fix. ``check_run`` asks every check the planned steps
need; the ``onyx`` verbs call it before anything is written (a refusal is exit 2), the
``drop_folder`` sensor before it requests runs, and the runner resource before a tool step
of any run (a launched backfill), for that step and every later step of the run, so a run
that cannot finish fails at its first tool step instead of after hours of training.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .settings import OnyxSettings

# The tool each step runs (``reconstruction``: the recipe's).
STEP_TOOLS = {"frames": "ingest", "sparse_model": "sfm", "masks": "segformer", "viewer": "viewer"}
# What a step writes per pixel of its images, roughly (JPEG frames, COLMAP's database, depth maps and
# the splat or mesh, PNG masks, the viewer's files); the free-disk check asks for this much.
BYTES_PER_PIXEL = {"frames": 0.5, "sparse_model": 0.2, "reconstruction": 2.0, "masks": 0.1, "viewer": 0.2}
DISK_MARGIN_BYTES = 256 * 1024 * 1024  # logs, previews, and what SQLite and the tools write besides
MASKS_OFF = "--masks off (or ONYX_MASKS=off) runs without masks"


@dataclass(frozen=True)
class Missing:
    step: str
    what: str
    fix: str

    def __str__(self) -> str:
        return f"{self.step}: {self.what}: {self.fix}"


@dataclass(frozen=True)
class RunShape:
    """What the checks need to know of a run: the steps, the batch's choices, the data root."""

    steps: tuple[str, ...]
    data_root: Path
    scene: str = "outdoor"
    recipes: tuple[str, ...] = ()
    images: int = 0                # frames the ingest step will write (views for 360 video)
    image_pixels: int = 0          # pixels of each
    masks_model_dir: str | None = None


# -- the checks, one per prerequisite ---------------------------------------------------------
def ffmpeg(shape: RunShape, runner_kind: str) -> list[Missing]:
    """The local runner's ingest step decodes with ffmpeg (the images bring their own)."""
    if "frames" not in shape.steps or runner_kind != "local":
        return []
    missing = [name for name in ("ffmpeg", "ffprobe") if shutil.which(name) is None]
    if not missing:
        return []
    return [Missing("frames", f"{' and '.join(missing)} not found on PATH",
                    "install ffmpeg (Debian: apt-get install ffmpeg; scripts/bootstrap does it)")]


def segformer_weights_dir(settings: OnyxSettings, model_dir: str | None = None) -> Path:
    """Where the local runner's masks step loads SegFormer from: the step's model_dir, else
    ONYX_SEGFORMER_WEIGHTS, else the weights `onyx install --weights` put in the cache."""
    from onyx_segformer.config import WEIGHTS_ENV

    chosen = model_dir or os.environ.get(WEIGHTS_ENV)
    return Path(chosen) if chosen else settings.weights / "segformer"


def segformer_weights(shape: RunShape, runner_kind: str, settings: OnyxSettings) -> list[Missing]:
    """Masks of an outdoor scene need the SegFormer checkpoint (the segformer image has it built in)."""
    if "masks" not in shape.steps or shape.scene != "outdoor" or runner_kind != "local":
        return []
    from .install.weights import weights_problem

    folder = segformer_weights_dir(settings, shape.masks_model_dir)
    problem = weights_problem(folder)
    if problem is None:
        return []
    return [Missing("masks", f"SegFormer weights {problem}",
                    f"`onyx install --weights` fetches them into {settings.weights} (ONYX_WEIGHTS), or set "
                    f"ONYX_SEGFORMER_WEIGHTS to a folder that has them; {MASKS_OFF}")]


def gpu(shape: RunShape, runner_kind: str, docker_client=None) -> list[Missing]:
    """A GPU-only recipe (MILo) where no GPU is visible: the local process's CUDA, or Docker's NVIDIA runtime."""
    from .recipes import get_recipe

    if "reconstruction" not in shape.steps or runner_kind == "k8s":
        return []
    only_gpu = [name for name in shape.recipes if get_recipe(name).gpu_only]
    if not only_gpu:
        return []
    if runner_kind == "docker":
        from .install.docker import has_nvidia_runtime

        present = docker_client is not None and has_nvidia_runtime(docker_client)
        where = "Docker has no NVIDIA runtime"
    else:
        from onyx_tools.gpu import cuda_available

        present = cuda_available()
        where = "no CUDA device is visible to this process"
    if present:
        return []
    return [Missing("reconstruction", f"recipe {', '.join(only_gpu)} needs an NVIDIA GPU and {where}",
                    "run it on a GPU host (ONYX_RUNNER=docker with the NVIDIA runtime), or choose another "
                    "recipe (--mode gaussian --quality proto runs on the CPU)")]


def docker_images(shape: RunShape, runner) -> list[Missing]:
    """The docker runner's image of every tool the run uses (unless it may pull them)."""
    from .install.docker import DockerProblem, docker_client, image_present, missing_image_message

    if getattr(runner, "pull_missing", False):
        return []
    try:
        client = docker_client(timeout=20)
    except DockerProblem as error:
        return [Missing("every step", "Docker is not usable", str(error))]
    found = []
    for step, tool in tools_of(shape):
        name = runner.image(tool)
        if not image_present(client, name):
            found.append(Missing(step, f"image {name} is missing", missing_image_message(name, tool)))
    return found


def disk(shape: RunShape) -> list[Missing]:
    """Free space on the data root's file system for what the steps will write (frames x resolution)."""
    need = estimated_bytes(shape)
    if need == 0:
        return []
    probe = existing_parent(shape.data_root)
    free = shutil.disk_usage(probe).free
    if free >= need:
        return []
    return [Missing(shape.steps[0], f"{_gb(free)} free on {probe}, and this run writes about {_gb(need)} "
                                    f"({shape.images} images of {shape.image_pixels / 1e6:.1f} MP)",
                    "free some space, or choose a data root on a larger disk (--output / ONYX_DATA)")]


def writable(shape: RunShape) -> list[Missing]:
    probe = existing_parent(shape.data_root)
    if probe.is_dir() and os.access(probe, os.W_OK | os.X_OK):
        return []
    return [Missing(shape.steps[0] if shape.steps else "run", f"{probe} refuses writes",
                    "choose another data root (--output / ONYX_DATA) or fix its permissions")]


# -- putting them together ---------------------------------------------------------------------
def tools_of(shape: RunShape) -> list[tuple[str, str]]:
    from .recipes import get_recipe

    pairs = []
    for step in shape.steps:
        if step == "reconstruction":
            pairs += [(step, get_recipe(name).tool) for name in shape.recipes]
        elif step in STEP_TOOLS:
            pairs.append((step, STEP_TOOLS[step]))
    return list(dict.fromkeys(pairs))


def runner_kind(runner) -> str:
    from .resources import DockerRunner, K8sRunner

    if isinstance(runner, DockerRunner):
        return "docker"
    if isinstance(runner, K8sRunner):
        return "k8s"
    return "local"


def check_run(shape: RunShape, runner=None, settings: OnyxSettings | None = None) -> list[Missing]:
    """Every prerequisite of the run's steps that is missing (empty: it can start)."""
    settings = settings or OnyxSettings.from_env()
    if not shape.steps:
        return []
    kind = runner_kind(runner) if runner is not None else "none"
    found = writable(shape)
    if found:
        return found
    if settings.disk_check:
        found += disk(shape)
    if runner is None:  # a code location without a tool runner (a stand-in): nothing else to ask
        return found
    found += ffmpeg(shape, kind)
    found += segformer_weights(shape, kind, settings)
    client = None
    if kind == "docker":
        found += docker_images(shape, runner)
        if not any("Docker is not usable" == m.what for m in found):
            from .install.docker import DockerProblem, docker_client

            try:
                client = docker_client(timeout=20)
            except DockerProblem:
                client = None
    found += gpu(shape, kind, client)
    return found


def estimated_bytes(shape: RunShape) -> int:
    per_image = sum(BYTES_PER_PIXEL.get(step, 0.0) for step in shape.steps) * shape.image_pixels
    if per_image == 0 or shape.images == 0:
        return 0
    return int(per_image * shape.images) + DISK_MARGIN_BYTES


def ingest_estimate(settings, video_info, frames_config: dict | None = None) -> tuple[int, int]:
    """(images, pixels of each) the ingest step will write for the batch: its frame arithmetic. A 360 video
    without an interval keeps a frame per stretch of camera motion, known only once decoded: the estimate
    takes the fewest it can keep (one every MAX_GAP_S), so the disk check refuses only what cannot fit."""
    from onyx_ingest.config import CONFIG as IngestConfig
    from onyx_ingest.config import MAX_GAP_S, source_frame_count, views_per_frame

    options = IngestConfig.model_validate({
        "scene": settings.scene, "quality": settings.quality, "video": settings.video,
        "interval": settings.interval, **(frames_config or {})})
    spherical = options.video == "360" or (options.video == "auto" and video_info.looks_equirectangular)
    views = views_per_frame(options.view_set) if spherical else 1
    if options.interval is not None:
        frames = max(1, int(video_info.duration_s / options.interval))
    elif spherical:
        frames = max(1, int(video_info.duration_s / MAX_GAP_S))
    else:
        frames = source_frame_count(options.scene, options.quality, views)
    if spherical:
        return frames * views, options.view_side(video_info.width) ** 2
    width = min(video_info.width, options.max_width)
    height = round(video_info.height * width / max(1, video_info.width))
    return frames * views, width * height


def existing_parent(path: Path) -> Path:
    probe = Path(path)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return probe


def describe(problems: Sequence[Missing], what: str) -> str:
    return f"{what} cannot start, nothing was written:\n  " + "\n  ".join(str(p) for p in problems)


def _gb(n: float) -> str:
    return f"{n / 1024 ** 3:.1f} GB"


def steps_after(step: str, selected: Iterable[str]) -> tuple[str, ...]:
    """The run's steps from ``step`` on, in flow order."""
    from .operations.context import ASSET_ORDER

    chosen = set(selected)
    order = [name for name in ASSET_ORDER if name in chosen]
    return tuple(order[order.index(step):]) if step in order else (step,)


def shape_for_batch(steps: Iterable[str], data_root: Path, settings, recipes: Iterable[str], *,
                    frames_config: dict | None = None, masks_model_dir: str | None = None) -> RunShape:
    """The run's shape from the batch's settings; its input video is probed for the disk estimate
    (a batch whose video has moved away is estimated at nothing: its frames exist already)."""
    from onyx_tools.video import VideoError, probe_video

    from .operations.context import ASSET_ORDER

    chosen = set(steps)
    images = pixels = 0
    try:
        images, pixels = ingest_estimate(settings, probe_video(settings.input), frames_config)
    except (VideoError, OSError, ValueError):
        pass
    return RunShape(steps=tuple(name for name in ASSET_ORDER if name in chosen), data_root=Path(data_root),
                    scene=settings.scene, recipes=tuple(dict.fromkeys(recipes)), images=images,
                    image_pixels=pixels, masks_model_dir=masks_model_dir)


def run_shape_for_step(context, batch_dir: Path) -> RunShape:
    """The shape of what is left of a run, seen from one of its steps (a run launched by Dagster:
    the UI, a sensor, a backfill): this step and the later ones of its selection."""
    from dagster import MultiPartitionKey

    from .batches import BatchError, read_settings
    from .operations.context import ASSET_ORDER
    from onyx_tools.layout import BatchLayout

    step = context.asset_key.to_user_string()
    # A run of a whole job (a backfill of batch_job) has no asset selection of its own: the job's assets are the run's.
    selection = context.run.asset_selection or context.job_def.asset_layer.selected_asset_keys
    selected = [key.to_user_string() for key in selection] if selection else list(ASSET_ORDER)
    steps = steps_after(step, selected)
    partition = context.partition_key if context.has_partition_key else None
    recipes = (partition.keys_by_dimension["recipe"],) if isinstance(partition, MultiPartitionKey) else ()
    ops = (context.run.run_config or {}).get("ops", {})
    config_of = lambda name: (ops.get(name) or {}).get("config") or {}  # noqa: E731
    layout = BatchLayout(Path(batch_dir))
    try:
        settings = read_settings(layout)
    except BatchError:
        return RunShape(steps=steps, data_root=layout.root.parent, recipes=recipes)
    return shape_for_batch(steps, layout.root.parent, settings, recipes,
                           frames_config={k: v for k, v in config_of("frames").items() if v is not None},
                           masks_model_dir=config_of("masks").get("model_dir"))
