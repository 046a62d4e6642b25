"""Tail latency: units keep p50/p90/p99, tail predictions add the root sum of squares of the units'
spreads to the median prediction, validate reports each, and a search can run on p90."""

from __future__ import annotations

import numpy as np
import pytest
import typer

from latency_tables.fidelity import validate
from latency_tables.predict import LatencyPredictor, MissingUnitsError
from latency_tables.store import LatencyStore
from latency_tables.units import units_of
from profilers import Protocol, get_backend, measure, summarize
from search.cli import load_tables
from tracking.space import SearchSpace, lighttrack_mobile

FAST = Protocol(warmup_runs=2, min_runs=20, min_time_s=0.02, max_time_s=0.1)


def test_summarize_keeps_p99() -> None:
    t = np.arange(1, 1001) * 1e6  # 1..1000 ms
    m = summarize(t)
    assert m.p99_ms == pytest.approx(np.percentile(np.arange(1, 1001), 99))
    assert m.median_ms <= m.p90_ms <= m.p99_ms
    assert m.to_dict()["p99_ms"] == m.p99_ms  # what an agent uploads


def _store_with_tails(path, space: SearchSpace, synthetic_medians, p99: bool = True) -> LatencyStore:
    store = LatencyStore(path)
    info = store.get_or_create("t", {"label": "x"}, {"backend": "onnxruntime", "threads": 1})
    rows = {k: {"median_ms": v, "p10_ms": 0.9 * v, "p90_ms": 1.2 * v, "iqr_ms": 0.1 * v, "count": 50,
                **({"p99_ms": 1.5 * v} if p99 else {})} for k, v in synthetic_medians(space).items()}
    store.put(info.id, rows)
    return store


def test_store_keeps_quantiles_through_files(tmp_path, synthetic_medians) -> None:
    space = SearchSpace.paper()
    store = _store_with_tails(tmp_path / "a.db", space, synthetic_medians)
    tid = store.find().id
    med, p90, p99 = store.stats(tid, "p50"), store.stats(tid, "p90"), store.stats(tid, "p99")
    assert med == store.medians(tid) and all(p90[k] == pytest.approx(1.2 * med[k]) for k in med)
    assert all(p99[k] == pytest.approx(1.5 * med[k]) for k in med)
    with pytest.raises(ValueError, match="latency stat"):
        store.stats(tid, "p95")
    for suffix in ("csv", "parquet"):
        path = store.export_file(tid, tmp_path / f"t.{suffix}")
        other = LatencyStore(tmp_path / f"b-{suffix}.db")
        info = other.import_file(path)
        assert other.stats(info.id, "p99") == pytest.approx(p99)
    # A table from before p99 was kept: p50/p90 predictions work, p99 ones name the missing units.
    old = _store_with_tails(tmp_path / "old.db", space, synthetic_medians, p99=False)
    arch = lighttrack_mobile()
    p50 = LatencyPredictor.from_store(old, space=space).predict(arch)
    assert LatencyPredictor.from_store(old, space=space, stat="p90").predict(arch) > p50
    with pytest.raises(MissingUnitsError):
        LatencyPredictor.from_store(old, space=space, stat="p99").predict(arch)


def test_search_tables_on_p90(tmp_path, synthetic_medians) -> None:
    space = SearchSpace.paper()
    _store_with_tails(tmp_path / "a.db", space, synthetic_medians)
    arch = lighttrack_mobile()
    (p50,) = load_tables([str(tmp_path / "a.db")], space).values()
    (p90,) = load_tables([str(tmp_path / "a.db")], space, "p90").values()
    assert p90.stat == "p90" and p90.predict(arch) > p50.predict(arch)
    # Every unit's p90 is 1.2x its median: the p90 prediction is the median one plus the root sum
    # of squares of the units' spreads (0.2x each median), not 1.2x the sum.
    med = synthetic_medians(space)
    spread = np.sqrt(sum((0.2 * med[u.key]) ** 2 for u in units_of(arch, space)))
    assert p90.predict(arch) == pytest.approx(p50.predict(arch) + spread)
    assert p90.predict(arch) < 1.2 * p50.predict(arch)
    assert p90.predict_batch([arch])[0] == pytest.approx(p90.predict(arch))
    with pytest.raises(typer.BadParameter, match="p50, p90"):
        load_tables([str(tmp_path / "a.db")], space, "p99")


def test_validate_reports_each_stat(tmp_path, synthetic_medians) -> None:
    """Real end-to-end measurements of two subnets: their p90/p99 are kept and compared with the
    p90/p99 predictions (the unit costs are arbitrary here, so only the report's shape and the
    measured quantiles' order are checked)."""
    space = SearchSpace.paper()
    med = synthetic_medians(space)
    pred = LatencyPredictor(med, space)
    tails = {"p90": LatencyPredictor({k: 1.2 * v for k, v in med.items()}, space, stat="p90")}
    rep = validate(pred, get_backend("onnxruntime", threads=1), samples=2, seed=3, protocol=FAST, noise_runs=0,
                   probes=0, tail_predictors=tails, workdir=tmp_path)
    assert set(rep["stats"]) == {"p50", "p90"}
    assert rep["stats"]["p50"]["rmspe"] == pytest.approx(rep["rmspe"])
    assert all(p90 >= p50 for p50, p90 in zip(rep["measured_ms"], rep["measured_p90_ms"], strict=True))
    assert rep["predicted_p90_ms"] == pytest.approx([1.2 * p for p in rep["predicted_ms"]], rel=1e-9)
    # The graph's own p99 is measured too (a real model, run >= 20 times).
    m = measure(get_backend("onnxruntime", threads=1), next(tmp_path.glob("*/search.onnx")), FAST)
    assert m.p99_ms is not None and m.p99_ms >= m.p90_ms
