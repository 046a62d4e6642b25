"""Pareto machinery on minimisation objectives: non-dominated sorting, crowding, hypervolume.

Sorting and hypervolume use pymoo's compiled routines (``NonDominatedSorting``, ``HV``); an
exact 2-D hypervolume is kept here as an independent check and for the hand-computed tests.
All objectives are minimised: the search turns accuracy into ``1 - accuracy`` and divides each
latency by its reference latency (``search.engine.Engine.objectives`` and docs/search.md).

The one definition of a per-target front and its hypervolume lives here too: :func:`front_2d`
(score vs latency on one target) and :func:`target_hypervolume` (the engine's normalisation,
reference point (1, 1)); the search runner, the service's stored fronts and its REST fronts all
call these two.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from pymoo.indicators.hv import HV
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting


def non_dominated_ranks(F: np.ndarray) -> np.ndarray:
    """Front index (0 = non-dominated) of every row of ``F`` [n, m] (minimisation)."""
    F = np.asarray(F, dtype=float)
    ranks = np.zeros(len(F), dtype=np.int64)
    if len(F) == 0:
        return ranks
    fronts = NonDominatedSorting().do(F)
    for r, idx in enumerate(fronts):
        ranks[idx] = r
    return ranks


def pareto_mask(F: np.ndarray) -> np.ndarray:
    """True for rows of ``F`` that no other row dominates (duplicates of a front point stay)."""
    F = np.asarray(F, dtype=float)
    if len(F) == 0:
        return np.zeros(0, dtype=bool)
    le = (F[:, None, :] <= F[None, :, :]).all(-1)
    lt = (F[:, None, :] < F[None, :, :]).any(-1)
    dominated_by = le & lt  # [i, j]: i dominates j
    return ~dominated_by.any(0)


def crowding_distance(F: np.ndarray) -> np.ndarray:
    """NSGA-II crowding distance within one front (boundary points get +inf)."""
    F = np.asarray(F, dtype=float)
    n, m = F.shape
    if n <= 2:
        return np.full(n, np.inf)
    d = np.zeros(n)
    for k in range(m):
        order = np.argsort(F[:, k], kind="stable")
        f = F[order, k]
        span = f[-1] - f[0]
        d[order[0]] = d[order[-1]] = np.inf
        if span > 0:
            d[order[1:-1]] += (f[2:] - f[:-2]) / span
    return d


def rank_and_crowding_order(F: np.ndarray) -> np.ndarray:
    """Indices of ``F`` best first: by front, then larger crowding, then index (stable)."""
    ranks = non_dominated_ranks(F)
    crowd = np.zeros(len(F))
    for r in np.unique(ranks):
        idx = np.nonzero(ranks == r)[0]
        crowd[idx] = crowding_distance(F[idx])
    return np.lexsort((np.arange(len(F)), -crowd, ranks))


def hypervolume(F: np.ndarray, ref: np.ndarray | list[float]) -> float:
    """Exact hypervolume dominated by ``F`` and bounded by ``ref`` (points not strictly better
    than ``ref`` in every objective contribute nothing)."""
    F = np.asarray(F, dtype=float)
    ref = np.asarray(ref, dtype=float)
    if len(F) == 0:
        return 0.0
    F = F[(F < ref).all(1)]
    if len(F) == 0:
        return 0.0
    if F.shape[1] == 2:
        return hypervolume_2d(F, ref)
    return float(HV(ref_point=ref)(F))


def hypervolume_2d(F: np.ndarray, ref: np.ndarray) -> float:
    """Exact 2-D hypervolume by a sweep over the first objective."""
    F = np.asarray(F, dtype=float)
    F = F[(F < ref).all(1)]
    if len(F) == 0:
        return 0.0
    F = F[np.lexsort((F[:, 1], F[:, 0]))]
    hv, best_y = 0.0, float(ref[1])
    for x, y in F:
        if y < best_y:
            hv += (ref[0] - x) * (best_y - y)
            best_y = y
    return float(hv)


# (candidate id, score, latency in ms) on one target
Point = tuple[str, float, float]


def front_2d(points: Iterable[Point]) -> list[Point]:
    """Non-dominated ``(id, score, latency)`` points on one target (score maximised, latency
    minimised), one per id (its first point), fastest first.

    The same set as :func:`non_dominated_ranks` ``== 0`` on ``(1 - score, latency / ref)``: a point
    stays unless another scores at least as well at no more latency and is strictly better in one
    (exact ties both stay). Sort by latency (then score, descending, then id) and sweep:
    O(n log n), so 100k points cost little.
    """
    best: dict[str, Point] = {}
    for p in points:
        best.setdefault(p[0], p)
    front: list[Point] = []
    top, top_lat = -np.inf, np.nan
    for p in sorted(best.values(), key=lambda p: (p[2], -p[1], p[0])):
        if p[1] > top or (p[1] == top and p[2] == top_lat):
            front.append(p)
            top, top_lat = p[1], p[2]
    return front


def target_hypervolume(points: Iterable[Point], reference_ms: float) -> float:
    """The normalised hypervolume of ``(id, score, latency)`` points on one target: the search
    engine's objectives ``(1 - score, latency / reference_ms)`` against the reference point
    ``(1, 1)`` (score 0 at the reference latency), a fraction of the unit box.

    For a single-target search with this target's reference latency it is the engine's own
    ``hypervolume`` (``Engine.front``); times ``reference_ms`` it is the area in score x ms the
    points dominate up to ``(0, reference_ms)``. Dominated points add nothing, so the front or
    every point gives the same number.
    """
    pts = list(points)
    if not pts or not reference_ms > 0:
        return 0.0
    F = np.array([[1.0 - s, lat / reference_ms] for _, s, lat in pts], dtype=float)
    return hypervolume(F, np.ones(2))
