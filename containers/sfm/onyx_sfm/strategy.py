"""Which SfM strategy to run, when to retry, and which result to keep: pure logic, no COLMAP.

Video frames are matched sequentially (cheap: linear in frames). When that registers too
few images or splits into several models, the run is retried with retrieval matching (the
sequential pairs plus each frame's most similar frames, still linear in frames); the better
result wins and every attempt is recorded. Exhaustive matching runs only when chosen.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from onyx_tools.errors import ToolError


# Measured on 2 cores (DESIGN.md, 60 frames): spherical 60/60 frames in ~4.5 min, rig 360/360
# views in ~10 min, equally accurate. So 360 video runs spherical first and falls back to the rig.
DEFAULT_360_ORDER = ("spherical", "rig")

Progress = Callable[[str, int, int, str], None]


def no_progress(stage: str, done: int, total: int, detail: str = "") -> None:
    pass


@dataclass
class Attempt:
    """One run of matching + mapping and what it gave."""

    strategy: str              # "sequential+incremental", "exhaustive+global", "rig", "spherical", ...
    registered: int = 0        # images in the largest model
    total: int = 0
    models: int = 0            # how many separate models the mapper produced
    stranded: int = 0          # images registered only in a model other than the largest
    points3d: int = 0
    seconds: float = 0.0
    note: str = ""
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        return self.registered / self.total if self.total else 0.0

    def as_metadata(self) -> dict[str, Any]:
        data = asdict(self)
        data["registered_ratio"] = round(self.ratio, 4)
        data["seconds"] = round(self.seconds, 1)
        data["timings"] = {k: round(v, 1) for k, v in self.timings.items()}
        return data


def is_good_enough(attempt: Attempt, min_ratio: float) -> bool:
    """The largest model holds at least ``min_ratio`` of the images and the scene did not split.

    A split is images registered in another model but not in the largest. COLMAP also
    returns small extra models of images the largest one already has (measured: 100/100
    in the largest plus a 2-image duplicate); those lose nothing and are no reason to
    pay for exhaustive matching.
    """
    return attempt.ratio >= min_ratio and attempt.stranded == 0


def matching_plan(requested: str, vocab_tree_available: bool) -> tuple[list[str], list[str]]:
    """The matchers to try in order, and notes on what was skipped and why.

    ``auto``: sequential, then retrieval (sequential pairs plus each frame's most similar frames,
    found offline from the batch's own features): both linear in frames, so a long video never
    falls into exhaustive matching's quadratic cost. An explicit choice runs only that matcher
    (loop without a vocabulary tree becomes retrieval, with a note).
    """
    if requested == "auto":
        return ["sequential", "retrieval"], []
    if requested == "loop" and not vocab_tree_available:
        return ["retrieval"], ["loop detection requested but no vocabulary tree is available offline "
                               "(set vocab_tree_path or $ONYX_VOCAB_TREE): using retrieval matching instead"]
    return [requested], []


def spherical_plan(requested: str, has_panoramas: bool) -> list[str]:
    """The 360 strategies to try in order."""
    if requested == "spherical":
        if not has_panoramas:
            raise ToolError("spherical=spherical needs the equirectangular frames in panoramas/, which are "
                            "missing: run the frames step again, or use spherical=rig")
        return ["spherical"]
    if requested == "rig":
        return ["rig"]
    return [s for s in DEFAULT_360_ORDER if s != "spherical" or has_panoramas]


def poor_global_model(centres: np.ndarray, registered: int, total: int, min_ratio: float,
                      max_jump: float = 8.0) -> str:
    """Why a global-mapping model of a video is not to be trusted ("" when it is).

    Global SfM places every camera at once, so a frame whose rotation was averaged wrong lands
    far off the path instead of being left out (outlier poses on sequential video, colmap/glomap
    issue 145). Consecutive frames of a video are close; a step between two registered
    neighbours ``max_jump`` times longer than the median step is such an outlier. ``centres``
    are the registered frames' centres in capture order.
    """
    if registered < min_ratio * total:
        return f"registered {registered}/{total}"
    if len(centres) >= 4:
        steps = np.linalg.norm(np.diff(np.asarray(centres, float), axis=0), axis=1)
        median = float(np.median(steps))
        if median > 0 and float(steps.max()) > max_jump * median:
            return f"a camera {steps.max() / median:.0f}x the median step off the path"
    return ""


def best_attempt(attempts: list[Attempt]) -> Attempt | None:
    """The attempt whose model registers the most images (fewer splits, then more points, break ties)."""
    usable = [a for a in attempts if a.registered > 0]
    if not usable:
        return None
    return max(usable, key=lambda a: (a.registered, -a.models, a.points3d))


# Settings a message may advise, named as ``onyx resume --set`` and the launchpad spell them
# (the asset's config): frames.interval is the ingest tool's, the others this tool's.
FEWER_SECONDS_BETWEEN_FRAMES = "frames.interval (seconds between frames, smaller than the batch's)"


def registered_nothing_message(total: int, attempts: list[Attempt]) -> str:
    """Why nothing registered, and only what was not tried already: a matcher or mapper this run
    used is never advised again."""
    tried = [a.strategy for a in attempts]
    matchers = {strategy.split("+")[0] for strategy in tried}
    mappers = {strategy.split("+")[1] for strategy in tried if "+" in strategy}
    untried = [FEWER_SECONDS_BETWEEN_FRAMES]
    if tried and "exhaustive" not in matchers and not {"rig", "spherical"} & matchers:
        untried.append("sparse_model.matching=exhaustive")
    if tried and "global" not in mappers and not {"rig", "spherical"} & matchers:
        untried.append("sparse_model.mapper=global")
    return (f"SfM registered 0 of {total} images (tried {', '.join(tried) or 'nothing'}): the video may be "
            "textureless or too blurry, or the camera barely moves; film a slower walk with more texture in "
            f"view, or set {' or '.join(untried)}")


def partial_model_message(registered: int, total: int, min_ratio: float, attempts: list[Attempt]) -> str:
    """Why a model under ``min_ratio`` fails the step, and the two ways on."""
    tried = "; ".join(f"{a.strategy}: {a.registered}/{a.total} in {a.models} model(s)" for a in attempts) or "nothing"
    return (f"SfM registered only {registered} of {total} images ({100 * registered / max(total, 1):.0f}%, under "
            f"min_registered_ratio={min_ratio:g}; tried {tried}): the frames may overlap too little (fast "
            f"motion, blur, long gaps) to chain them all; set {FEWER_SECONDS_BETWEEN_FRAMES}, or "
            "sparse_model.accept_partial_model=true to continue with the partial model")
