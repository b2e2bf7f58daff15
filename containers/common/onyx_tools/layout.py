"""The batch folder: one per batch (video), the only coupling between steps.

    <data root>/<batch key>/
        batch.json          settings, written once when the batch is added
        images/             INGEST: frames (or perspective views of 360 frames) + index.json
        panoramas/          INGEST, 360 only: the equirectangular frames
        {images,panoramas}/operator_masks/{image name}.png
                            INGEST, 360 only: what moves with the camera, 0 = ignore (COLMAP's convention)
        sparse/0/           SFM: COLMAP binary model of `images/`
        output/<recipe>/    RECONSTRUCTION, one folder per recipe so forks never collide
        masks/              SEGMENT: masks/{image stem}.png, 255 keep / 0 exclude
        logs/<step>.log     every tool's log
        previews/           pictures shown in the UI
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

BATCH_KEY_RULE = (
    "a batch key is 1-64 characters of lower-case letters, digits and '-', "
    "starting with a letter or digit (no commas, spaces or slashes), e.g. 'harbour-walk-01'"
)
# 360: the masks of what moves with the camera (operator, stick, nadir), a folder inside images/ and
# panoramas/ holding ``<image name>.png`` (0: no features, no training), as COLMAP's mask_path reads them.
OPERATOR_MASKS = "operator_masks"

_BATCH_KEY = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")


def is_valid_batch_key(key: str) -> bool:
    return bool(_BATCH_KEY.match(key))


def slugify(text: str, max_len: int = 48) -> str:
    """A batch-key-safe slug of a file name ("My Walk (2).MP4" -> "my-walk-2-mp4")."""
    import unicodedata

    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    return (slug[:max_len].rstrip("-")) or "batch"


@dataclass(frozen=True)
class BatchLayout:
    root: Path  # the batch folder itself

    @property
    def settings_file(self) -> Path:
        return self.root / "batch.json"

    @property
    def images(self) -> Path:
        return self.root / "images"

    @property
    def image_index(self) -> Path:
        return self.images / "index.json"

    @property
    def panoramas(self) -> Path:
        return self.root / "panoramas"

    @property
    def sparse(self) -> Path:
        return self.root / "sparse"

    @property
    def sparse_model(self) -> Path:
        return self.sparse / "0"

    @property
    def output(self) -> Path:
        return self.root / "output"

    def recipe_output(self, recipe: str) -> Path:
        return self.output / recipe

    @property
    def masks(self) -> Path:
        return self.root / "masks"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def previews(self) -> Path:
        return self.root / "previews"

    @property
    def work(self) -> Path:
        """Scratch space of running steps; never read as output."""
        return self.root / ".work"
