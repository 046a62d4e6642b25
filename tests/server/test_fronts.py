"""The service's 2-D front sweep agrees with search.pareto's non-dominated mask."""

from __future__ import annotations

import random

import numpy as np

from search.pareto import hypervolume, pareto_mask
from server.fronts import front_of


def test_front_sweep_matches_pareto_mask() -> None:
    rng = random.Random(0)
    for _ in range(300):
        pts = [(f"a{i}", round(rng.random(), 1), round(rng.random(), 1)) for i in range(rng.randrange(1, 40))]
        front = front_of(pts)
        mask = pareto_mask(np.array([[-s, lat] for _, s, lat in pts]))
        assert {(s, lat) for _, s, lat in front} == {(s, lat) for (_, s, lat), keep in zip(pts, mask, strict=True)
                                                      if keep}
        lats = [p[2] for p in front]
        assert lats == sorted(lats) and len({p[0] for p in front}) == len(front)


def test_front_keeps_one_point_per_architecture_and_hypervolume() -> None:
    pts = [("a", 0.5, 10.0), ("a", 0.9, 1.0), ("b", 0.7, 20.0), ("c", 0.4, 30.0)]
    assert front_of(pts) == [("a", 0.5, 10.0), ("b", 0.7, 20.0)]  # first record of "a" wins
    F = np.array([[-0.5, 10.0], [-0.7, 20.0]])
    assert abs(hypervolume(F, [0.0, 40.0]) - (0.5 * 30 + 0.2 * 20)) < 1e-12
