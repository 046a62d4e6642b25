"""Tracker-level latency: the pre/post-processing record, frame_ms in predict, validate and the front."""

from __future__ import annotations

import json

import pytest

from latency_tables.frame import measure_prepost
from latency_tables.predict import LatencyPredictor, frame_figures
from latency_tables.store import LatencyStore
from search.config import SearchConfig
from search.evaluators import SurrogateAccuracy
from search.runner import run_search
from tracking.space import SearchSpace, sample_many

FAST = ["--min-time", "0.01", "--max-time", "0.03"]


def test_prepost_record_and_frame_figures() -> None:
    rec = measure_prepost(SearchSpace.paper(), frame_hw=(240, 320), runs=30)
    # the real tracker's crop, resize and post-processing take time; the network is not in it
    assert 0 < rec["prepost_ms"] <= rec["prepost_p90_ms"] and rec["runs"] >= 30
    assert rec["frame_hw"] == [240, 320] and rec["search_size"] == 256 and rec["measured_at"]
    fig = frame_figures(10.0, rec)
    assert fig["frame_ms"] == pytest.approx(10.0 + rec["prepost_ms"])
    assert fig["fps"] == pytest.approx(1000.0 / fig["frame_ms"])
    assert frame_figures(10.0, None) == {"frame_ms": None, "fps": None}
    assert frame_figures(None, rec) == {"frame_ms": None, "fps": None}


def test_profile_records_prepost_and_frame_ms_reaches_predict_validate_and_the_front(lutnas_cli, profiled_table) -> None:
    db, printed = profiled_table
    assert "pre/post-processing" in printed
    store = LatencyStore(db)
    rec = store.find().runtime["frame"]
    # measured on 3 real subnets in the tracking loop: more than the tracker's work alone, less than
    # a whole network
    assert rec["prepost_ms"] > 0 and rec["overhead_subnets"] == 3 and rec["prepost_in_loop_ms"] > 0
    prepost = rec["frame_overhead_ms"]
    assert 0 < prepost < 50

    arch = sample_many(1, 3)[0].to_string()
    out = json.loads(lutnas_cli("latency", "predict", "--table", str(db), arch, "--json").stdout)
    p = out["predictions"][0]
    assert out["prepost_ms"] == rec["prepost_ms"] and out["frame_overhead_ms"] == prepost
    assert p["frame_ms"] == pytest.approx(p["latency_ms"] + prepost) and p["fps"] == pytest.approx(1000 / p["frame_ms"])
    assert "fps" in lutnas_cli("latency", "predict", "--table", str(db), arch).stdout

    # validate runs the whole tracking loop (crop, ONNX network, post-processing) per subnet
    rep = json.loads(lutnas_cli("latency", "validate", "--table", str(db), "--samples", "2", "--noise-runs", "0",
                             "--probes", "0", "--frames", "2", "--json", *FAST).stdout)
    f = rep["frame"]
    assert f["n"] == 2 and f["frame_overhead_ms"] == prepost and 0 <= f["within_5"] <= f["within_10"] <= 1
    pred = LatencyPredictor.from_store(store, None, SearchSpace.paper())
    from tracking.space import Architecture

    for pt in f["points"]:
        assert pt["measured_frame_ms"] > pt["network_in_loop_ms"] > 0 and pt["prepost_in_loop_ms"] > 0
        assert pt["predicted_frame_ms"] == pytest.approx(pred.predict(Architecture.parse(pt["arch"])) + prepost)
    no_frames = json.loads(lutnas_cli("latency", "validate", "--table", str(db), "--samples", "2", "--noise-runs", "0",
                                   "--probes", "0", "--frames", "0", "--json", *FAST).stdout)
    assert "frame" not in no_frames

    # the search's front carries frame_ms and fps per target whose table measured pre/post-processing
    space = SearchSpace.paper()
    res = run_search(SearchConfig(population=8, parents=4, generations=2, seed=0, algorithm="pareto"), SurrogateAccuracy(space),
                     {"cpu": pred})
    assert res.front
    for a in [*res.front, res.reference_arch]:
        assert a.frame_ms["cpu"] == pytest.approx(a.latency_ms["cpu"] + prepost)
        assert a.fps["cpu"] == pytest.approx(1000 / a.frame_ms["cpu"])
    bare = run_search(SearchConfig(population=8, parents=4, generations=2, seed=0, algorithm="pareto"), SurrogateAccuracy(space),
                      {"cpu": pred.plain().with_calibration(None)})
    assert bare.front[0].frame_ms  # plain() keeps the table's record
    no_record = LatencyPredictor(pred.medians, space, pred.overhead_ms)
    assert run_search(SearchConfig(population=8, parents=4, generations=2, seed=0), SurrogateAccuracy(space),
                      {"cpu": no_record}).front[0].frame_ms == {}
