"""The one 2-D front sweep (search.pareto.front_2d, which the service stores and serves) agrees
with search.pareto's non-dominated mask, and its hypervolume helper is the engine's normalisation."""

from __future__ import annotations

import random

import numpy as np
import pytest

from search.pareto import (
    front_2d,
    hypervolume,
    hypervolume_2d,
    non_dominated_ranks,
    pareto_mask,
    target_hypervolume,
)


def test_front_sweep_matches_pareto_mask() -> None:
    rng = random.Random(0)
    for _ in range(300):
        pts = [(f"a{i}", round(rng.random(), 1), round(rng.random(), 1)) for i in range(rng.randrange(1, 40))]
        front = front_2d(pts)
        mask = pareto_mask(np.array([[-s, lat] for _, s, lat in pts]))
        # the same ids, exact ties included, as the mask and the engine's non-dominated sort keep
        assert [a for a, _, _ in sorted(front)] == sorted(a for (a, _, _), keep in zip(pts, mask, strict=True) if keep)
        ranks = non_dominated_ranks(np.array([[1 - s, lat / 2.0] for _, s, lat in pts]))
        assert {a for a, _, _ in front} == {a for (a, _, _), r in zip(pts, ranks, strict=True) if r == 0}
        lats = [p[2] for p in front]
        assert lats == sorted(lats) and len({p[0] for p in front}) == len(front)


def test_front_keeps_one_point_per_architecture_and_hypervolume() -> None:
    pts = [("a", 0.5, 10.0), ("a", 0.9, 1.0), ("b", 0.7, 20.0), ("c", 0.4, 30.0), ("d", 0.7, 20.0)]
    # first record of "a" wins; "d" ties "b" exactly and stays, as in the engine's front
    assert front_2d(pts) == [("a", 0.5, 10.0), ("b", 0.7, 20.0), ("d", 0.7, 20.0)]
    F = np.array([[-0.5, 10.0], [-0.7, 20.0]])
    area = 0.5 * 30 + 0.2 * 20  # score x ms up to (0, 40 ms)
    assert abs(hypervolume(F, [0.0, 40.0]) - area) < 1e-12
    # normalised: (1 - score, latency / 40) against (1, 1); times the reference latency, the area
    hv = target_hypervolume(front_2d(pts), 40.0)
    assert hv == pytest.approx(area / 40.0, rel=1e-12)
    assert hv == hypervolume_2d(np.array([[0.5, 10 / 40], [0.3, 20 / 40]]), np.ones(2))
    assert target_hypervolume([p for p in pts if p != ("a", 0.9, 1.0)], 40.0) == hv  # dominated points add nothing
    assert target_hypervolume([], 40.0) == 0.0 and target_hypervolume(pts, 0.0) == 0.0
    assert target_hypervolume([("e", 0.9, 50.0)], 40.0) == 0.0  # slower than the reference point
