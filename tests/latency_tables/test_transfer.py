"""Transfer: a new device's table from a known device's full table and a few measured subnets."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from latency_tables.predict import LatencyPredictor
from latency_tables.store import LatencyStore
from latency_tables.transfer import fit_transfer, group_features, transferred_entries, unit_group
from tracking.space import SearchSpace, sample_many

BIN = Path(sys.executable).parent


def _device(source: LatencyPredictor, scales: dict[str, float], archs, overhead: float, noise: float, seed: int):
    """A synthetic new device: each group's work ``scales[g]`` times the source's, plus noise."""
    groups = sorted(scales)
    x = group_features(source, archs, groups)
    rng = np.random.default_rng(seed)
    return (x @ np.array([scales[g] for g in groups]) + overhead) * (1 + noise * rng.standard_normal(len(archs)))


def test_unit_groups() -> None:
    assert unit_group("stem:in3x256x256:out16:k3:s2") == "stem"
    assert unit_group("mbconv:in24x64x64:out40:k5:e6:s2") == "mbconv64"
    assert unit_group("neck:in96x16x16:out128:z96x8x8") == unit_group("adjust:in80x16x16:out96:s1") == "neck"
    assert unit_group("cls:in256x16x16:out1:k3") == unit_group("reg:in192x16x16:out4:k3") == "out"
    assert unit_group("mbconv:in24x64x64:out40:k5:e6:s2", "kernel") == "mbconv-k5"
    assert unit_group("mbconv:in24x64x64:out40:k5:e6:s2", "kernel_res") == "mbconv64-k5"
    assert unit_group("head:in128x16x16:out192:k3", "kind") == "head"
    assert unit_group("head:in128x16x16:out192:k3", "kernel") == "head-k3"
    with pytest.raises(ValueError, match="unknown grouping"):
        unit_group("head:in128x16x16:out192:k3", "nope")


def test_grouping_chosen_by_leave_one_out(synthetic_medians) -> None:
    """A device whose blocks slow down by kernel size (as onnxruntime without its blocked layout
    does) is fitted with a kernel grouping; the choice uses the fitting subnets only."""
    space = SearchSpace.paper()
    source = LatencyPredictor(synthetic_medians(space), space)
    true = {g: {"mbconv-k3": 1.5, "mbconv-k5": 3.0, "mbconv-k7": 5.0}.get(g, 2.0)
            for g in {unit_group(k, "kernel") for k in source.medians}}
    archs = sample_many(30, 21, space)
    x = group_features(source, archs, sorted(true), "kernel")
    y = x @ np.array([true[g] for g in sorted(true)]) + 0.05
    fit = fit_transfer(source, archs, y, overhead_ms=0.05)
    assert fit.grouping in ("kernel", "kernel_res") and fit.loo["within_5"] == 1.0
    k7 = [v for g, v in fit.scales.items() if g.startswith("mbconv") and g.endswith("-k7")]
    assert k7 and all(v == pytest.approx(5.0, rel=0.02) for v in k7)
    kind = fit_transfer(source, archs, y, overhead_ms=0.05, grouping="kind")
    assert kind.grouping == "kind" and kind.loo["rmspe"] > fit.loo["rmspe"]


def test_fit_recovers_group_scales_and_beats_one_scale(synthetic_medians) -> None:
    space = SearchSpace.paper()
    source = LatencyPredictor(synthetic_medians(space), space)
    groups = sorted({unit_group(k) for k in source.medians})
    rng = np.random.default_rng(1)
    true = {g: float(rng.uniform(0.4, 2.0)) for g in groups}
    fit_archs, test_archs = sample_many(40, 11, space), sample_many(60, 12, space)
    y = _device(source, true, fit_archs, 0.05, 0.002, 0)
    fit = fit_transfer(source, fit_archs, y, overhead_ms=0.05, grouping="kind")
    big = [g for g in groups if group_features(source, fit_archs, [g]).mean() > 1.0]  # well-determined groups
    assert all(fit.scales[g] == pytest.approx(true[g], rel=0.1) for g in big)
    assert fit.loo["within_5"] >= 0.9 and fit.n == 40
    # The new table predicts unseen subnets; one common scale does not.
    entries = transferred_entries(source, {}, fit, "src")
    new = LatencyPredictor({k: e["median_ms"] for k, e in entries.items()}, space, overhead_ms=0.05)
    y_test = _device(source, true, test_archs, 0.05, 0.0, 1)
    err = np.abs(new.predict_batch(test_archs) / y_test - 1)
    common = np.abs(source.predict_batch(test_archs) * fit.common_scale / y_test - 1)
    assert np.mean(err <= 0.05) >= 0.9 and np.median(err) < np.median(common)
    # With 3 subnets the ridge keeps the fit near one scale instead of chasing noise.
    few = fit_transfer(source, fit_archs[:3], y[:3], overhead_ms=0.05, grouping="kind")
    assert np.ptp(list(few.scales.values())) < np.ptp(list(true.values()))
    with pytest.raises(ValueError, match="at least 2"):
        fit_transfer(source, fit_archs[:1], y[:1])


def test_transfer_cli_measures_subnets_and_writes_a_table(tmp_path, synthetic_medians) -> None:
    """Real onnxruntime measurements of 2 subnets on this machine against an arbitrary source table:
    the new table covers every unit, records the fit, and reproduces its fitting subnets in-sample
    as the fit says."""
    space = SearchSpace.paper()
    src = LatencyStore(tmp_path / "src.db")
    info = src.get_or_create("phone", {"label": "phone"}, {"backend": "onnxruntime", "threads": 4})
    med = synthetic_medians(space)
    src.put(info.id, {k: {"median_ms": v, "p10_ms": 0.9 * v, "p90_ms": 1.1 * v, "p99_ms": 1.3 * v, "iqr_ms": 0.1 * v,
                          "count": 9} for k, v in med.items()})
    src.update(info.id, overhead_ms=0.01)
    out = subprocess.run([str(BIN / "lutnas"), "latency", "transfer", "--from", str(tmp_path / "src.db"),
                          "--out", f"{tmp_path / 'new.db'}#here-t1", "--measure", "2", "--rounds", "1",
                          "--min-time", "0.02", "--max-time", "0.1", "--quiet"],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    assert "table 'here-t1' from 'phone': 2 subnets" in out.stdout
    new = LatencyStore(tmp_path / "new.db")
    t = new.find("here-t1")
    assert set(new.medians(t.id)) == set(med) and t.runtime["threads"] == 1
    tr = t.hardware["transfer"]
    assert tr["from"] == "phone" and tr["k"] == 2 and set(tr["scales"]) == {unit_group(k, tr["grouping"]) for k in med}
    p90 = new.stats(t.id, "p90")
    assert all(p90[k] >= v for k, v in new.medians(t.id).items())
    # A bad source is one line and exit 2.
    bad = subprocess.run([str(BIN / "lutnas"), "latency", "transfer", "--from", str(tmp_path / "none.db"),
                          "--out", str(tmp_path / "x.db")], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "no such table database" in bad.stderr and "Traceback" not in bad.stderr
