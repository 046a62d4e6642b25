"""Anchor subnets: chosen across the latency range, kept with the table, re-measured by validate."""

from __future__ import annotations

import json

import numpy as np
import pytest

from latency_tables.anchors import ANCHOR_SEED, anchor_archs, anchor_speed
from latency_tables.predict import LatencyPredictor
from latency_tables.store import LatencyStore
from tracking.space import Architecture, SearchSpace, sample_many


def test_anchor_speed_moves_only_when_the_anchors_agree() -> None:
    then = np.array([2.0, 5.0, 9.0, 14.0])
    speed, se, moved = anchor_speed(then * np.array([1.10, 1.11, 1.09, 1.10]), then)
    assert speed == pytest.approx(1.10, abs=0.01) and se < 0.01 and moved
    speed, _, moved = anchor_speed(then * np.array([0.99, 1.01, 1.005, 0.995]), then)  # noise, no drift
    assert speed == pytest.approx(1.0, abs=0.01) and not moved
    _, _, moved = anchor_speed(then * np.array([1.3, 0.8, 1.25, 0.85]), then)  # they disagree: no verdict
    assert not moved
    _, se, moved = anchor_speed(then[:2] * 1.2, then[:2])  # too few to tell
    assert np.isnan(se) and not moved


def test_anchors_span_the_predicted_range_and_are_seeded(synthetic_medians) -> None:
    space = SearchSpace.paper()
    pred = LatencyPredictor(synthetic_medians(space), space)
    a, b = anchor_archs(pred, 5), anchor_archs(pred, 5)
    assert [x.to_string() for x in a] == [x.to_string() for x in b]
    ms = [pred.predict(x) for x in a]
    assert ms == sorted(ms) and len(set(ms)) == 5
    pool = [pred.predict(x) for x in sample_many(40, ANCHOR_SEED, space)]  # the pool 5 anchors are drawn from
    assert ms[0] == pytest.approx(min(pool)) and ms[-1] == pytest.approx(max(pool))
    assert anchor_archs(pred, 0) == []


def test_profile_keeps_anchors_and_validate_measures_the_hosts_speed_with_them(lutnas_cli, profiled_table) -> None:
    db, printed = profiled_table
    fast = ["--min-time", "0.01", "--max-time", "0.03"]
    assert "3 anchor subnets" in printed
    store = LatencyStore(db)
    info = store.find()
    rec = info.runtime["anchors"]
    assert len(rec["archs"]) == 3 and all(m > 0 for m in rec["measured_ms"]) and rec["measured_at"]
    validate = ["latency", "validate", "--table", str(db), "--samples", "3", "--seed", "5", "--noise-runs", "0",
                "--probes", "3", "--frames", "0", "--json", *fast]
    rep = json.loads(lutnas_cli(*validate).stdout)
    assert [a["arch"] for a in rep["anchors"]] == rec["archs"] and rep["anchor_speed"] > 0
    pred, meas = np.array(rep["predicted_ms"]), np.array(rep["measured_ms"])
    rel = (pred * rep["anchor_speed"] - meas) / meas
    assert rep["anchored_rmspe"] == pytest.approx(np.sqrt(np.mean(rel**2)))
    assert 0 <= rep["anchors_age_s"] < 600
    # A host that now runs whole graphs twice as slowly as at profiling: pretend the anchors were
    # measured at half their time. The anchors see it, and --normalise scales the headline by them.
    store.update(info.id, runtime={**info.runtime, "anchors": {**rec, "measured_ms": [m / 2 for m in
                                                                                      rec["measured_ms"]]}})
    rep = json.loads(lutnas_cli(*validate, "--normalise").stdout)
    assert rep["anchor_speed"] == pytest.approx(2.0, rel=0.35) and rep["anchor_moved"] is True
    assert rep["normalised"] is True
    pred, meas = np.array(rep["predicted_ms"]), np.array(rep["measured_ms"])
    assert rep["rmspe"] == pytest.approx(np.sqrt(np.mean(((pred * rep["anchor_speed"] - meas) / meas) ** 2)))
    from latency_tables.cli import _format_report

    text = _format_report(rep)  # what validate prints without --json
    assert "anchor subnets ran at" in text and "moved" in text


def test_profile_calibrates_the_table_on_its_anchors(profiled_table) -> None:
    """Whole graphs do not run at their units' sum: the table's scale is the anchors' median ratio
    measured / predicted, fitted when they were measured, and a user's calibration is kept."""
    from latency_tables.anchors import anchor_calibration

    db, printed = profiled_table
    info = LatencyStore(db).find()
    rec, calib = info.runtime["anchors"], info.calibration
    ratio = np.median(np.array(rec["measured_ms"]) / np.array(rec["predicted_ms"]))
    assert calib["source"] == "anchors" and calib["n"] == 3
    assert f"anchor scale {calib['coef']['raw_ms']:.3f}" in " ".join(printed.split())  # the closing line says it
    assert calib["coef"]["raw_ms"] == pytest.approx(ratio, rel=1e-6)
    raw = LatencyPredictor.from_store(LatencyStore(db), info.name, calibrated=False)
    archs = [Architecture.parse(a, raw.space) for a in rec["archs"]]
    mine = {"method": "scale", "features": ["raw_ms"], "coef": {"raw_ms": 1.3}, "intercept": 0.0}
    assert anchor_calibration(raw, archs, np.array(rec["measured_ms"]), mine) is mine
    assert anchor_calibration(raw, archs[:2], np.array(rec["measured_ms"][:2]), None) is None
    refit = anchor_calibration(raw, archs, np.array(rec["measured_ms"]) * 2, calib)  # its own: refitted
    assert refit["coef"]["raw_ms"] == pytest.approx(2 * ratio, rel=1e-6)
