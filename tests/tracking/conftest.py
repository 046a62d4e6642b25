"""Shared fixtures of the tracking tests: small synthetic datasets and a random-init supernet."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tracking.data import SynthConfig, generate_synthetic
from tracking.supernet import Supernet

SMALL_FRAMES = SynthConfig(width=160, height=120, max_size=40)  # fast to crop, still trackable


def small_dataset(root: Path, sequences: int = 2, frames: int = 4, seed: int = 0) -> Path:
    """A synthetic GOT-10k-layout dataset of small frames at ``root``."""
    return generate_synthetic(root, sequences, frames, seed=seed, config=SMALL_FRAMES, progress=False)


@pytest.fixture(scope="module")
def random_supernet() -> Supernet:
    """The default-space supernet at its seeded random init."""
    torch.manual_seed(0)
    return Supernet()
