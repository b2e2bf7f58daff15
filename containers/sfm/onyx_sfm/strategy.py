"""Which SfM strategy to run, when to retry, and which result to keep: pure logic, no COLMAP.

Video frames are matched sequentially (cheap: linear in frames). When that registers too
few images or splits into several models, the run is retried with a wider matcher: loop
detection (needs a vocabulary tree) or else exhaustive matching; the better result wins
and every attempt is recorded.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from onyx_tools.errors import ToolError

MATCHING = ("auto", "sequential", "loop", "exhaustive")
MAPPERS = ("incremental", "global")
SPHERICAL = ("auto", "rig", "spherical")

# Measured on 2 cores (DESIGN.md, 60 frames): spherical 60/60 frames in ~4.5 min, rig 360/360
# views in ~10 min, equally accurate. So 360 video runs spherical first and falls back to the rig.
DEFAULT_360_ORDER = ("spherical", "rig")

Progress = Callable[[str, int, int, str], None]


def no_progress(stage: str, done: int, total: int, detail: str = "") -> None:
    pass


@dataclass(frozen=True)
class SfmConfig:
    matching: str = "auto"
    mapper: str = "incremental"
    spherical: str = "auto"
    min_registered_ratio: float = 0.9
    overlap: int = 10
    quadratic_overlap: bool = True
    vocab_tree_path: str = ""
    max_features: int = 8192  # SIFT features per image
    # 360: how many neighbouring frames each frame's views are matched with
    view_frame_overlap: int = 3
    # 360: views whose optical axes are at most this far apart are matched across frames
    view_max_angle_deg: float = 60.0

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> "SfmConfig":
        known = {name for name in cls.__dataclass_fields__}
        values = {key: value for key, value in params.items() if key in known and value is not None}
        config = cls(**values)
        config.validate()
        return config

    def validate(self) -> None:
        problems = []
        if self.matching not in MATCHING:
            problems.append(f"matching={self.matching!r} (use one of {', '.join(MATCHING)})")
        if self.mapper not in MAPPERS:
            problems.append(f"mapper={self.mapper!r} (use one of {', '.join(MAPPERS)})")
        if self.spherical not in SPHERICAL:
            problems.append(f"spherical={self.spherical!r} (use one of {', '.join(SPHERICAL)})")
        if not 0 < self.min_registered_ratio <= 1:
            problems.append(f"min_registered_ratio={self.min_registered_ratio} (must be in (0, 1])")
        if self.overlap < 1:
            problems.append(f"overlap={self.overlap} (must be at least 1)")
        if problems:
            raise ToolError("invalid sfm parameters: " + "; ".join(problems))


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

    ``auto``: sequential, then loop detection when a vocabulary tree is available, then
    exhaustive. An explicit choice runs only that matcher (loop without a tree becomes
    exhaustive, with a note).
    """
    notes = []
    if requested == "auto":
        plan = ["sequential"]
        if vocab_tree_available:
            plan.append("loop")
        else:
            notes.append("loop detection skipped: no vocabulary tree available offline "
                         "(set vocab_tree_path or $ONYX_VOCAB_TREE)")
        plan.append("exhaustive")
        return plan, notes
    if requested == "loop" and not vocab_tree_available:
        notes.append("loop detection requested but no vocabulary tree is available offline: "
                     "using exhaustive matching instead")
        return ["exhaustive"], notes
    return [requested], notes


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


def best_attempt(attempts: list[Attempt]) -> Attempt | None:
    """The attempt whose model registers the most images (fewer splits, then more points, break ties)."""
    usable = [a for a in attempts if a.registered > 0]
    if not usable:
        return None
    return max(usable, key=lambda a: (a.registered, -a.models, a.points3d))


def registered_nothing_message(total: int, attempts: list[Attempt]) -> str:
    tried = ", ".join(a.strategy for a in attempts) or "nothing"
    return (f"SfM registered 0 of {total} images (tried {tried}): the video may be textureless or too blurry, "
            "or the camera barely moves; try a shorter frame interval, a slower walk with more texture "
            "in view, or matching=exhaustive")
