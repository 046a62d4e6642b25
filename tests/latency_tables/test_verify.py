"""Closed loop, locally: ``lutnas search verify OUT --table TABLE`` measures a finished search's
front end to end (real onnxruntime sessions), flags budget breaks and refits the table."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from latency_tables.predict import LatencyPredictor
from latency_tables.store import LatencyStore
from latency_tables.units import all_units
from search.config import SearchConfig
from search.evaluators import SurrogateAccuracy
from search.report import write_ranked
from search.runner import run_search
from tracking.space import SearchSpace

BIN = Path(sys.executable).parent


def test_search_verify_measures_front_flags_budget_and_refits(tmp_path) -> None:
    space = SearchSpace.paper()
    rng = np.random.default_rng(0)
    # A table whose units are ~10x too fast for this machine: every front point breaks its budget.
    store = LatencyStore(tmp_path / "lut.db")
    info = store.get_or_create("here", {"label": "here"}, {"backend": "onnxruntime", "threads": 1,
                                                           "flush_bytes": 0, "rounds": 1, "round_stat": "min"})
    store.put(info.id, {u.key: {"median_ms": v, "p10_ms": v, "p90_ms": v, "iqr_ms": 0.0, "count": 1}
                        for u in all_units(space) for v in [float(rng.uniform(0.02, 0.1))]})
    pred = LatencyPredictor.from_store(store, "here", space)
    budget = pred.fastest()[0] * 1.5
    cfg = SearchConfig(algorithm="pareto", budget_ms=budget, target="here", population=8, generations=2,
                       parents=4, seed=0)
    result = run_search(cfg, SurrogateAccuracy(space), {"here": pred})
    out = tmp_path / "search"
    write_ranked(result, out)
    (out / "state.json").write_text(json.dumps({"config": cfg.model_dump(mode="json")}))
    run = subprocess.run([str(BIN / "lutnas"), "search", "verify", str(out), "--table", str(tmp_path / "lut.db"),
                          "--points", "3", "--quiet"], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    rep = json.loads((out / "verify.json").read_text())
    n = min(3, len(result.front))
    assert n >= 2  # a front to refit on
    assert len(rep["points"]) == n and rep["budget_ms"] == budget and rep["predicted_by"] == "search"
    assert all(p["measured_ms"] > p["predicted_ms"] > 0 for p in rep["points"])
    assert rep["broken"] == n and "OVER BUDGET" in run.stdout  # measured: far over the budget
    # The table's calibration now carries the refit and its figures; predictions moved to the measurements.
    calib = LatencyStore(tmp_path / "lut.db").find("here").calibration
    assert calib["verified"]["n"] == n and calib["coef"]["raw_ms"] > 2
    after = [p["refit_ms"] for p in rep["points"]]
    measured = [p["measured_ms"] for p in rep["points"]]
    assert np.mean(np.abs(np.array(after) / measured - 1)) < np.mean(
        np.abs(np.array([p["predicted_ms"] for p in rep["points"]]) / measured - 1))
    # Bad input: one line, exit 2.
    bad = subprocess.run([str(BIN / "lutnas"), "search", "verify", str(tmp_path), "--table",
                          str(tmp_path / "lut.db")], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "ranked.json" in bad.stderr and "Traceback" not in bad.stderr
