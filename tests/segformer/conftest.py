"""Fixtures for the segformer tool: a FAKE tiny random-initialised SegFormer (the only fake) and real frames."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from components import require

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[2]
DATASETS = REPO.parent / "shared" / "datasets"
CHAIR_IMAGES = DATASETS / "chair_images"


@pytest.fixture(scope="session", autouse=True)
def _two_threads():
    import torch

    torch.set_num_threads(2)


@pytest.fixture(scope="session")
def chair_images() -> list[Path]:
    require("datasets", CHAIR_IMAGES.is_dir(),
            f"real test data {CHAIR_IMAGES} is absent (it lives beside the repository in ../shared)")
    return sorted(CHAIR_IMAGES.glob("*.jpg"))


@pytest.fixture(scope="session")
def fake_segformer_weights(tmp_path_factory) -> Path:
    """FAKE weights: a tiny random SegFormer with ADE20K's 150 labels, saved like fetch_weights.py saves."""
    import torch
    from transformers import SegformerConfig, SegformerForSemanticSegmentation

    torch.manual_seed(0)
    config = SegformerConfig(hidden_sizes=[8, 16, 32, 64], depths=[1, 1, 1, 1], num_attention_heads=[1, 1, 2, 4],
                             decoder_hidden_size=32, num_labels=150)
    folder = tmp_path_factory.mktemp("fake-segformer")
    SegformerForSemanticSegmentation(config).save_pretrained(folder)
    return folder
