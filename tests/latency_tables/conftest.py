"""Shared fixtures of the latency-table tests."""

from __future__ import annotations

import numpy as np
import pytest

from latency_tables.units import all_units
from tracking.space import SearchSpace


@pytest.fixture(autouse=True)
def _one_torch_thread():
    import torch

    torch.set_num_threads(1)


def _synthetic_medians(space: SearchSpace, seed: int = 0) -> dict[str, float]:
    """Arbitrary positive unit costs (inputs for arithmetic checks, not latency claims)."""
    rng = np.random.default_rng(seed)
    return {u.key: float(rng.uniform(0.05, 1.0)) for u in all_units(space)}


@pytest.fixture
def synthetic_medians():
    return _synthetic_medians


@pytest.fixture(params=["paper", "code"])
def space(request) -> SearchSpace:
    return SearchSpace.paper() if request.param == "paper" else SearchSpace.code()
