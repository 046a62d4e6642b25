"""Shared fixtures: the analytic accuracy surrogate and small latency tables.

The latency models are real ``latency_tables.predict.LatencyPredictor`` objects built from
synthetic per-unit tables (measured tables are too slow to make in a unit test).
"""

from __future__ import annotations

import numpy as np
import pytest

from latency_tables.predict import LatencyPredictor
from latency_tables.units import all_units
from search.evaluators import SurrogateAccuracy
from tracking.space import SearchSpace


def synthetic_unit_ms(space: SearchSpace, scale: float = 1.0, seed: int = 0) -> dict[str, float]:
    """Plausible per-unit latencies: proportional to the unit's work, with seeded jitter."""
    rng = np.random.default_rng(seed)
    out = {}
    for u in all_units(space):
        c, h, w = u.shape
        work = c * h * w * max(1, u.expansion) * (u.kernel**2 + 8 if u.kernel else 9)
        out[u.key] = scale * (0.01 + work * 2e-8) * float(rng.uniform(0.9, 1.1))
    return out


@pytest.fixture(scope="session")
def space() -> SearchSpace:
    return SearchSpace.paper()


@pytest.fixture(scope="session")
def surrogate(space: SearchSpace) -> SurrogateAccuracy:
    return SurrogateAccuracy(space)


@pytest.fixture(scope="session")
def cpu_table(space: SearchSpace):
    return LatencyPredictor(synthetic_unit_ms(space, 1.0, seed=1), space)


@pytest.fixture(scope="session")
def gpu_table(space: SearchSpace):
    return LatencyPredictor(synthetic_unit_ms(space, 0.3, seed=2), space)


def write_store(path, tables: dict[str, dict[str, float]]) -> str:
    """A real SQLite latency store holding ``{name: {unit key: median ms}}``; returns the path."""
    from latency_tables.store import LatencyStore

    store = LatencyStore(str(path))
    for name, medians in tables.items():
        info = store.get_or_create(name, {"label": name}, {"backend": "synthetic"})
        store.put(info.id, {k: {"median_ms": v, "p10_ms": v, "p90_ms": v, "iqr_ms": 0.0, "count": 1}
                            for k, v in medians.items()})
    store.engine.dispose()
    return str(path)
