"""A small real profile (onnxruntime, SQLite), resume, prediction and the CLI around it."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest

from latency_tables.predict import LatencyPredictor, MissingUnitsError
from latency_tables.profile import profile_units
from latency_tables.store import LatencyStore
from latency_tables.units import parse_key
from profilers import Protocol, get_backend
from tracking.space import LIGHTTRACK_MOBILE, lighttrack_mobile

KEYS = ["stem:in3x256x256:out16:k3:s2", "adjust:in96x16x16:out96:s1", "neck:in96x16x16:out128:z96x8x8",
        "head:in128x16x16:out192:k3", "cls:in256x16x16:out1:k3"]
FAST = Protocol(warmup_runs=2, min_runs=5, min_time_s=0.02, max_time_s=0.1)


def test_profile_a_few_units_and_resume(tmp_path):
    db = tmp_path / "lut.db"
    store = LatencyStore(db)
    backend = get_backend("onnxruntime", threads=1)
    units = [parse_key(k) for k in KEYS]
    phases = []
    rep = profile_units(store, backend, units[:3], protocol=FAST, progress=lambda *a: phases.append(a))
    assert sorted(rep.measured) == sorted(KEYS[:3]) and rep.skipped == []
    assert ("measure", 3, 3) in phases
    assert rep.table.runtime["threads"] == 1 and rep.table.runtime["backend"] == "onnxruntime"
    assert rep.table.runtime["warm_inputs"] is False  # the protocol is part of the table's runtime
    warm = profile_units(LatencyStore(tmp_path / "warm.db"), backend, units[:1], protocol=replace(FAST, warm_inputs=True))
    assert warm.table.runtime["warm_inputs"] is True
    # Resumed run over all five: the three present are skipped, two are measured.
    rep2 = profile_units(LatencyStore(db), backend, units, protocol=FAST)
    assert sorted(rep2.skipped) == sorted(KEYS[:3]) and sorted(rep2.measured) == sorted(KEYS[3:])
    info = store.find()
    assert info.overhead_ms is not None and 0 < info.overhead_ms < 1
    med = store.medians(info.id)
    assert set(med) == set(KEYS) and all(v > 0 for v in med.values())
    # The stem (3x256x256 -> 16x128x128 conv, ~7M MACs) costs more than the 1x1 adjust (~2.4M MACs
    # at 16x16; about 6x faster here).
    assert med[KEYS[0]] > med[KEYS[1]]
    # Rounds: every unit measured in each round (new order per round), the median round kept.
    phases = []
    rep3 = profile_units(LatencyStore(tmp_path / "rounds.db"), backend, units[:3], protocol=FAST, rounds=3,
                         progress=lambda *a: phases.append(a))
    assert sorted(rep3.measured) == sorted(KEYS[:3]) and ("measure", 9, 9) in phases
    assert set(LatencyStore(tmp_path / "rounds.db").medians(rep3.table.id)) == set(KEYS[:3])
    assert rep3.table.runtime["rounds"] == 3 and rep3.table.runtime["round_stat"] == "min"  # validate reuses them
    with pytest.raises(ValueError, match="round_stat"):
        profile_units(LatencyStore(tmp_path / "rounds.db"), backend, units, protocol=FAST, rounds=2,
                      round_stat="mean")
    with pytest.raises(ValueError, match="rounds"):
        profile_units(LatencyStore(tmp_path / "rounds.db"), backend, units, protocol=FAST, rounds=0)
    with pytest.raises(MissingUnitsError) as e:
        LatencyPredictor.from_store(db).fastest()
    assert "mbconv:in16x128x128:out24:k3:e4:s2" in e.value.keys


def _lutnas(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lutnas.cli", *args], capture_output=True, text=True)


def test_cli_profile_predict_export_import(lutnas_cli, tmp_path):
    db = tmp_path / "lut.db"
    r = lutnas_cli("profile", "--out", str(db), "--units", LIGHTTRACK_MOBILE, "--quiet",
                "--min-time", "0.01", "--max-time", "0.03", "--label", "ci")
    assert r.returncode == 0, r.stderr
    assert "measured 24 unit(s)" in r.stdout
    r = lutnas_cli("profile", "--out", str(db), "--units", LIGHTTRACK_MOBILE, "--quiet", "--label", "ci")
    assert "measured 0 unit(s), skipped 24" in r.stdout
    r = lutnas_cli("latency", "predict", "--table", str(db), LIGHTTRACK_MOBILE, "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["layout_corrected"] is True  # profile traced every unit's boundary reorders
    pred = json.loads(r.stdout)["predictions"][0]
    assert pred["arch"] == LIGHTTRACK_MOBILE and pred["latency_ms"] > 0
    assert pred["latency_ms"] == pytest.approx(LatencyPredictor.from_store(db).predict(lighttrack_mobile()))
    out = tmp_path / "t.parquet"
    assert lutnas_cli("latency", "export", "--table", str(db), "--out", str(out)).returncode == 0
    r = lutnas_cli("latency", "import", str(out), "--table", str(tmp_path / "copy.db"))
    assert r.returncode == 0 and "imported 24 entries" in r.stdout


def test_cli_bad_input_is_one_line_exit_2(tmp_path):
    db = tmp_path / "lut.db"
    LatencyStore(db).get_or_create("x", {}, {"backend": "onnxruntime"})
    junk = tmp_path / "junk.db"
    junk.write_text("not a database")
    cases = [
        ("latency", "tables", "--table", str(junk)),
        ("latency", "predict", "--table", str(db), "back_123"),
        ("latency", "predict", "--table", str(tmp_path / "absent.db"), LIGHTTRACK_MOBILE),
        ("latency", "predict", "--table", str(db), LIGHTTRACK_MOBILE),  # table has no entries
        ("latency", "export", "--table", str(db), "--out", str(tmp_path / "t.xlsx")),
        ("profile", "--out", str(db), "--threads", "0"),
        ("profile", "--out", str(db), "--provider", "NoSuchExecutionProvider"),
    ]
    for args in cases:
        r = _lutnas(*args)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert "Traceback" not in r.stderr and r.stderr.strip(), args


def test_validate_json_has_the_agreed_keys(lutnas_cli, tmp_path):
    from tracking.space import sample_many

    db = tmp_path / "lut.db"
    archs = [a.to_string() for a in sample_many(2, 5)]
    args = ["--quiet", "--min-time", "0.01", "--max-time", "0.03"]
    r = lutnas_cli("profile", "--out", str(db), *[x for a in archs for x in ("--units", a)], *args)
    assert r.returncode == 0, r.stderr
    r = lutnas_cli("latency", "validate", "--table", str(db), "--samples", "2", "--seed", "5", "--noise-runs", "2",
                "--min-time", "0.01", "--max-time", "0.05", "--json")
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    for key in ("samples", "within_5", "within_10", "rmspe", "spearman", "flops_within_10", "flops_spearman",
                "noise_cv"):
        assert key in rep, key
    assert rep["samples"] == 2 and rep["archs"] == archs
    assert 0 <= rep["within_5"] <= rep["within_10"] <= 1 and rep["noise_cv"] >= 0
    assert all(m > 0 for m in rep["measured_ms"])
    # host drift: table units re-measured between the subnets, and the prediction scaled by it
    assert rep["host_speed"] > 0 and 1 <= len(rep["probes"]) <= 12
    assert all(p["table_ms"] > 0 and p["now_ms"] > 0 for p in rep["probes"].values())
    # by default the headline compares the table as profiled; drift_* the prediction scaled by the
    # probes' host speed (what --normalise would use when the probes agree)
    pred, meas = np.array(rep["predicted_ms"]), np.array(rep["measured_ms"])
    assert rep["normalised"] is False
    assert rep["rmspe"] == rep["table_rmspe"] == pytest.approx(np.sqrt(np.mean(((pred - meas) / meas) ** 2)))
    assert rep["drift_rmspe"] == pytest.approx(np.sqrt(np.mean(((pred * rep["host_speed"] - meas) / meas) ** 2)))
    # errors per class: every subnet in one class of each kind, the means of its own errors
    assert set(rep["by_class"]) == {"out_stage", "cls_width", "reg_width", "cls_layers", "reg_layers"}
    for classes in rep["by_class"].values():
        assert sum(c["n"] for c in classes.values()) == 2
    err = (pred - meas) / meas
    stages = np.array([a.out_stage for a in sample_many(2, 5)])
    for stage, c in rep["by_class"]["out_stage"].items():
        assert c["mean_error"] == pytest.approx(err[stages == int(stage)].mean())
    # subnets measured in as many rounds as the table's units (profile's default 5), fastest kept;
    # the probes' spread over the run is the retest noise (none here: each probe ran once)
    assert rep["repeats"] == 5 and rep["round_stat"] == "min" and rep["retest_cv"] is None
    # the layout-corrected prediction is reported next to the plain unit sum
    assert rep["layout"]["units"] > 0 and 0 <= rep["plain_within_5"] <= rep["plain_within_10"] <= 1
    # Calibration on the same two subnets is stored with the table and used by predict.
    r = lutnas_cli("latency", "calibrate", "--table", str(db), "--samples", "2", "--seed", "5", "--quiet",
                "--min-time", "0.01", "--max-time", "0.05")
    assert r.returncode == 0, r.stderr
    calib = LatencyStore(db).find().calibration
    assert calib["method"] == "scale" and calib["n"] == 2 and calib["coef"]["raw_ms"] > 0
    r = lutnas_cli("latency", "predict", "--table", str(db), archs[0], "--json")
    assert json.loads(r.stdout)["calibrated"] is True
    # A sample needing units the table lacks fails before any measurement, naming a unit.
    r = lutnas_cli("latency", "validate", "--table", str(db), "--samples", "30", "--seed", "6", "--json")
    assert r.returncode == 2 and "no entry for" in r.stderr


def test_probe_keys_spread_over_the_table():
    from latency_tables.fidelity import drift_scale, host_speed, probe_keys

    medians = {f"u{i}": float(i) for i in range(1, 21)}
    assert probe_keys(medians, 5) == ["u1", "u6", "u11", "u15", "u20"]  # quantiles, fastest to slowest
    assert probe_keys(medians, 50) == sorted(medians, key=medians.get)  # k > n: every unit once
    assert probe_keys(medians, 0) == [] and probe_keys({}, 3) == []
    assert host_speed([2.0, 4.0, 30.0], [1.0, 2.0, 3.0]) == 2.0  # median ratio: one hiccup ignored
    assert host_speed([], []) == 1.0
    # a scale only when the probes move together: all 10% slower vs scattered around 1
    speed, se, moved = drift_scale([1.1, 2.21, 3.3, 4.38], [1.0, 2.0, 3.0, 4.0])
    assert moved and speed == pytest.approx(1.1, rel=0.01) and se < 0.01
    assert drift_scale([0.93, 2.1, 3.1, 3.9, 5.2], [1.0, 2.0, 3.0, 4.0, 5.0])[2] is False
    assert drift_scale([2.0, 4.0], [1.0, 2.0])[2] is False  # two probes cannot tell


def test_rounds_and_retest_noise_of_measured_models(tmp_path):
    from latency_tables.fidelity import measure_with_probes
    from profilers.measure import identity_model

    paths = []
    for i, shape in enumerate([(1,), (64, 64), (256, 256), (512, 512)]):
        paths.append(tmp_path / f"m{i}.onnx")
        paths[-1].write_bytes(identity_model(shape))
    backend = get_backend("onnxruntime", threads=1)
    phases = []
    figs, probes, retest = measure_with_probes(backend, paths, paths[:2], FAST, repeats=2, every=2,
                                               progress=lambda *a: phases.append(a), round_stat="min")
    assert ("measure", 8, 8) in phases and len(figs) == 4 and len(probes) == 2
    assert figs[3] > figs[0] > 0  # a 1 MiB copy costs more than a 4-byte one
    assert float(retest) >= 0  # each probe ran twice (8 models / every 2 = 4 probe runs)
    with pytest.raises(ValueError, match="min, median"):
        measure_with_probes(backend, paths, [], FAST, round_stat="mean")
