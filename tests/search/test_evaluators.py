import random

import numpy as np
import pytest

from search.evaluators import (
    CachedAccuracy,
    LatencyEvaluator,
    SurrogateAccuracy,
    extreme_genes,
    genes_of,
)
from search.executor import InProcessExecutor, SearchStopped
from tracking.space import lighttrack_mobile, sample, sample_many


def test_surrogate_is_deterministic_bounded_and_not_separable(space, surrogate):
    archs = sample_many(300, 3, space)
    a = np.array(surrogate.evaluate(archs))
    b = np.array(SurrogateAccuracy(space).evaluate(archs))
    assert np.array_equal(a, b)
    assert ((a > 0) & (a < 1)).all() and a.std() > 0.01
    # a network's score ignores the digits of blocks that do not run
    m = lighttrack_mobile()
    assert surrogate.evaluate([m])[0] == surrogate.evaluate([m.canonical()])[0]
    # interactions: changing gene i alone shifts the score by an amount that depends on gene j
    g = genes_of([m], space)[0]
    def s(x):
        return surrogate.score_genes(np.array([x]))[0]
    deltas = set()
    for hw in range(3):
        x = g.copy()
        x[15] = hw
        y = x.copy()
        y[16] = 1 - x[16]
        deltas.add(round(s(y) - s(x), 9))
    assert len(deltas) > 1


def test_cached_accuracy_counts_hits(space, surrogate):
    cached = CachedAccuracy(surrogate)
    m = lighttrack_mobile()
    cached.evaluate([m, m.canonical()])
    cached.evaluate([m])
    assert cached.evaluated == 1 and cached.hits == 2


def test_latency_extremes_bound_every_sample(space, cpu_table):
    ev = LatencyEvaluator("cpu", cpu_table, space)
    fast, _ = ev.extreme(True)
    slow, _ = ev.extreme(False)
    lat = ev.evaluate(sample_many(500, 0, space))
    assert fast <= lat.min() and lat.max() <= slow
    # coordinate descent agrees with the predictor's exact fastest() on an additive table
    assert extreme_genes(ev.genes, space, True)[0] == pytest.approx(fast)


def test_executor_batches_and_stops():
    ex = InProcessExecutor(batch_size=3)
    assert ex.map_batches(lambda b: [x * 2 for x in b], list(range(7))) == [0, 2, 4, 6, 8, 10, 12]
    assert ex.batches == 3
    calls = []

    def fn(b):
        calls.append(b)
        return b

    with pytest.raises(SearchStopped):
        ex.map_batches(fn, list(range(7)), should_stop=lambda: len(calls) >= 1)
    assert len(calls) == 1


def test_executor_rejects_short_results():
    with pytest.raises(ValueError, match="returned 1 results"):
        InProcessExecutor(2).map_batches(lambda b: b[:1], [sample(random.Random(0))] * 2)
