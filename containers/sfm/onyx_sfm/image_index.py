"""What the frames step left in ``images/``: the image list, and for 360 video the views of each frame.

``images/index.json`` is written by the ingest tool. Without it ``images/`` is read as a plain
image sequence in name order (handy for tests and for frames made by hand).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from onyx_tools.errors import ToolError
from onyx_tools.layout import OPERATOR_MASKS

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
MIN_IMAGES = 3


@dataclass(frozen=True)
class ViewInfo:
    name: str        # "v00"
    yaw_deg: float
    pitch_deg: float


@dataclass(frozen=True)
class ImageEntry:
    name: str                # file name inside images/
    frame: int               # 1-based extracted frame number (capture order)
    view: str | None = None  # view name for 360 views, None for normal frames


@dataclass
class ImageIndex:
    kind: str                              # "normal" or "360"
    images: list[ImageEntry]               # in capture order
    views: list[ViewInfo] = field(default_factory=list)
    view_size: int = 0                     # square view side in px (360)
    focal_px: float = 0.0                  # pinhole focal of the views (360)

    @property
    def is_360(self) -> bool:
        return self.kind == "360"

    @property
    def names(self) -> list[str]:
        return [entry.name for entry in self.images]

    def frames(self) -> dict[int, dict[str, str]]:
        """frame number -> {view name -> image name} (360 only)."""
        grouped: dict[int, dict[str, str]] = {}
        for entry in self.images:
            grouped.setdefault(entry.frame, {})[entry.view or ""] = entry.name
        return dict(sorted(grouped.items()))


def _listed_images(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def read_image_index(images_dir: Path) -> ImageIndex:
    """Read ``images/`` and its index; raise ``ToolError`` when there is nothing SfM can use."""
    images_dir = Path(images_dir)
    if not images_dir.is_dir():
        raise ToolError(f"{images_dir} does not exist: run the frames step first (materialise 'frames')")
    on_disk = set(_listed_images(images_dir))
    if not on_disk:
        raise ToolError(f"{images_dir} holds no images: run the frames step first (materialise 'frames')")
    index_file = images_dir / "index.json"
    if not index_file.is_file():
        entries = [ImageEntry(name=name, frame=i + 1) for i, name in enumerate(sorted(on_disk))]
        index = ImageIndex(kind="normal", images=entries)
    else:
        try:
            raw = json.loads(index_file.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as error:
            raise ToolError(f"{index_file} is unreadable ({error}): run the frames step again") from error
        entries = [ImageEntry(name=str(item["name"]), frame=int(item.get("frame") or i + 1),
                              view=item.get("view") or None)
                   for i, item in enumerate(raw.get("images") or [])]
        missing = [entry.name for entry in entries if entry.name not in on_disk]
        if missing:
            raise ToolError(f"{len(missing)} image(s) listed in {index_file} are missing (e.g. {missing[0]}): "
                            "images/ is incomplete, run the frames step again")
        views = [ViewInfo(str(v["name"]), float(v["yaw_deg"]), float(v["pitch_deg"]))
                 for v in raw.get("views") or []]
        kind = "360" if raw.get("kind") == "360" else "normal"
        view_size = raw.get("view_size") or 0
        if isinstance(view_size, (list, tuple)):
            view_size = view_size[0]
        index = ImageIndex(kind=kind, images=sorted(entries, key=lambda e: (e.frame, e.view or "")),
                           views=views, view_size=int(view_size), focal_px=float(raw.get("focal_px") or 0.0))
        if index.is_360 and not index.views:
            raise ToolError(f"{index_file} says kind 360 but lists no views: run the frames step again")
    if len(index.images) < MIN_IMAGES:
        raise ToolError(f"images/ holds {len(index.images)} image(s); SfM needs at least {MIN_IMAGES}: "
                        "use a longer video or fewer seconds between frames (frames.interval)")
    return index


def operator_masks(folder: Path, names: list[str]) -> Path | None:
    """The frames step's masks of what moves with the camera for ``names``, when it wrote one for each."""
    masks = folder / OPERATOR_MASKS
    if masks.is_dir() and all((masks / f"{name}.png").is_file() for name in names):
        return masks
    return None
