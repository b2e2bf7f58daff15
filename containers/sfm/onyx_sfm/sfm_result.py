"""What every SfM strategy returns: the perspective model to publish and how it was found."""

from __future__ import annotations

from onyx_tools import native_order  # noqa: F401  (before pycolmap: see onyx_tools/native_order.py)

from dataclasses import dataclass, field

import pycolmap

from .strategy import Attempt


@dataclass
class SfmResult:
    reconstruction: pycolmap.Reconstruction  # perspective model; image names are files in images/
    strategy: str                            # the attempt that won
    attempts: list[Attempt]
    total: int                               # images in images/
    models_found: int                        # separate models of the winning attempt
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage, all attempts

    @property
    def registered(self) -> int:
        return self.reconstruction.num_reg_images()
