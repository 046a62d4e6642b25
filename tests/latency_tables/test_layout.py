"""Layout correction: boundary reorders traced by onnxruntime, the in-graph rule, the predictor,
storage and profiling."""

from __future__ import annotations

import platform

import numpy as np
import pytest

from latency_tables.layout import NEXT_KINDS, PREV_KINDS, in_graph_costs, kind_layouts, layout_summary
from latency_tables.predict import LatencyPredictor
from latency_tables.profile import profile_units
from latency_tables.store import LatencyStore
from latency_tables.units import all_units, export_unit_onnx, parse_key, unit_filename, units_of
from profilers import Protocol, get_backend
from profilers.layout import Boundary, boundary_reorders, measure_boundary
from tracking.space import SearchSpace, lighttrack_mobile, sample_many, to_genes

MBCONV = "mbconv:in40x32x32:out40:k5:e4:s1"  # residual block: reorder in, SE reorders, reorder out, Add
NECK = "neck:in96x16x16:out128:z96x8x8"  # begins with the correlation's Reshape/MatMul (plain layout)
FAST = Protocol(warmup_runs=2, min_runs=5, min_time_s=0.02, max_time_s=0.1)


def _node(op: str, ts: int, dur: int, shape_in=(1, 8, 4, 4), shape_out=(1, 8, 4, 4)) -> dict:
    return {"cat": "Node", "name": f"{op}_{ts}_kernel_time", "ts": ts, "dur": dur,
            "args": {"op_name": op, "input_type_shape": [{"float": list(shape_in)}],
                     "output_type_shape": [{"float": list(shape_out)}]}}


def _run(t0: int, scale: int = 1) -> list[dict]:
    """One inference of x[1,8,4,4] -> reorder in -> conv -> (inner reorder out, Mul, reorder in) ->
    conv -> reorder out -> y, with node durations in microseconds."""
    nodes = [_node("ReorderInput", t0 + 1, 10 * scale), _node("Conv", t0 + 20, 50 * scale),
             _node("ReorderOutput", t0 + 80, 5 * scale, (1, 16, 4, 4), (1, 16, 4, 4)),  # inner: not the output's shape
             _node("Mul", t0 + 90, 5 * scale, (1, 16, 4, 4), (1, 16, 4, 4)),
             _node("ReorderInput", t0 + 100, 5 * scale, (1, 16, 4, 4), (1, 16, 4, 4)),
             _node("Conv", t0 + 110, 5 * scale), _node("ReorderOutput", t0 + 120, 20 * scale)]
    return [*nodes, {"cat": "Session", "name": "model_run", "ts": t0, "dur": 200}]


def test_boundary_shares_parse_a_trace():
    events = _run(0, scale=9) + _run(1000) + _run(2000) + _run(3000)  # first (warm-up) run skipped
    b = boundary_reorders({"events": events, "inputs": [[1, 8, 4, 4]], "outputs": [[1, 8, 4, 4]]}, skip=1)
    assert b.reorder_in == pytest.approx(10 / 100) and b.reorder_out == pytest.approx(20 / 100)
    # Another output shape: the trailing reorder is not the unit's own output.
    b = boundary_reorders({"events": events, "inputs": [[1, 8, 4, 4]], "outputs": [[1, 3, 4, 4]]}, skip=1)
    assert b.reorder_out == 0 and b.reorder_in == pytest.approx(0.1)
    with pytest.raises(ValueError, match="no inference runs"):
        boundary_reorders({"events": [], "inputs": [], "outputs": []})


def test_onnxruntime_traces_boundary_reorders(tmp_path):
    units = {k: export_unit_onnx(parse_key(k), tmp_path / unit_filename(k)) for k in (MBCONV, NECK)}
    blocked = get_backend("onnxruntime", threads=1)  # level "all": NCHWc on x86
    b = measure_boundary(blocked, units[MBCONV], runs=6, flush_bytes=1 << 20)
    if b.reorder_in == 0 and b.reorder_out == 0 and platform.machine() not in ("x86_64", "AMD64"):
        pytest.skip("onnxruntime's NCHWc layout is an x86 path; this CPU has no boundary reorders")
    assert 0 < b.reorder_in < 0.5 and 0 < b.reorder_out < 0.5
    neck = measure_boundary(blocked, units[NECK], runs=6)
    assert neck.reorder_in == 0 and neck.reorder_out > 0  # its input goes to a MatMul in plain layout
    plain = measure_boundary(get_backend("onnxruntime", threads=1, graph_optimization="extended"), units[MBCONV], 6)
    assert plain == Boundary(0.0, 0.0)  # no NCHWc below level "all"
    assert measure_boundary(get_backend("torch", threads=1, input_shapes=[(1, 40, 32, 32)]), units[MBCONV]) is None


def test_int8_units_boundary_quantize_and_transpose(tmp_path):
    """A lone int8 (QDQ) head layer quantizes and transposes its input to NHWC and transposes and
    dequantizes its output; inside a whole int8 graph uint8 NHWC passes between units, so these
    are boundary work like the fp32 reorders (about a third of this unit's node time)."""
    key = "head:in128x16x16:out192:k5"
    path = export_unit_onnx(parse_key(key), tmp_path / unit_filename(key), precision="int8")
    b = measure_boundary(get_backend("onnxruntime", threads=1, precision="int8"), path, runs=6)
    assert 0.02 < b.reorder_in < 0.5 and 0.02 < b.reorder_out < 0.5


def _layouts(space: SearchSpace, seed: int = 0) -> dict[str, dict[str, float]]:
    """Shares as on an NCHWc CPU: every kind reorders both ends, except the stem's input (its
    conv reads the plain image) and the neck's input (a MatMul)."""
    rng = np.random.default_rng(seed)
    out = {}
    for u in all_units(space):
        r_in = 0.0 if u.kind in ("stem", "neck") else float(rng.uniform(0.02, 0.1))
        out[u.key] = {"reorder_in": r_in, "reorder_out": float(rng.uniform(0.02, 0.1))}
    return out


def test_kinds_chain_as_the_search_graph_runs():
    space = SearchSpace.paper()
    for arch in sample_many(50, 3, space):
        units = units_of(arch, space)
        cls_first = next(i for i, u in enumerate(units) if u.kind in ("head", "cls") and i > units.index(
            next(x for x in units if x.kind == "neck")))
        chain = [u.kind for u in units[:cls_first]]
        for a, b in zip(chain, chain[1:], strict=False):
            assert b in NEXT_KINDS[a] and a in PREV_KINDS[b]
    assert PREV_KINDS["stem"] == () and NEXT_KINDS["cls"] == NEXT_KINDS["reg"] == ()


def test_in_graph_rule_drops_only_boundaries_kept_blocked(synthetic_medians):
    space = SearchSpace.paper()
    lay = _layouts(space)
    accepts, emits = kind_layouts(lay)
    assert not accepts["stem"] and not accepts["neck"] and all(emits.values())
    net = synthetic_medians(space)
    got = in_graph_costs(net, lay)
    dropped = {"stem": ("reorder_out",), "dsconv": ("reorder_in", "reorder_out"),
               "mbconv": ("reorder_in", "reorder_out"), "adjust": ("reorder_in",),  # the neck takes plain input
               "neck": ("reorder_out",), "head": ("reorder_in", "reorder_out"),
               "cls": ("reorder_in",), "reg": ("reorder_in",)}  # graph outputs keep theirs
    for key, ms in net.items():
        share = sum(lay[key][s] for s in dropped[parse_key(key).kind])
        assert got[key] == pytest.approx(ms * (1 - share)), key
    assert in_graph_costs(net, None) == net
    # A kind without recorded layouts joins nothing: the mbconv's neighbours keep their reorders.
    partial = {k: v for k, v in lay.items() if parse_key(k).kind != "mbconv"}
    got = in_graph_costs(net, partial)
    ds = next(k for k in net if k.startswith("dsconv"))
    assert got[ds] == pytest.approx(net[ds] * (1 - partial[ds]["reorder_in"]))
    assert layout_summary(partial)["units"] == len(partial) and layout_summary(None) == {"units": 0}


@pytest.mark.parametrize("calibration", [None, {"coef": {"raw_ms": 1.05}, "intercept": 0.1}])
def test_predictor_sums_in_graph_costs(space, calibration, synthetic_medians):
    med, lay, overhead = synthetic_medians(space, 2), _layouts(space, 2), 0.003
    pred = LatencyPredictor(med, space, overhead, calibration, {**lay, "overhead": {"reorder_in": 0.5}})
    net = in_graph_costs({k: m - overhead for k, m in med.items()}, lay)
    arch = lighttrack_mobile() if space == SearchSpace.paper() else sample_many(1, 0, space)[0]
    assert pred.raw_sum(arch) == pytest.approx(sum(net[u.key] for u in units_of(arch, space)) + overhead)
    assert pred.plain().raw_sum(arch) == pytest.approx(LatencyPredictor(med, space, overhead).raw_sum(arch))
    assert pred.raw_sum(arch) < pred.plain().raw_sum(arch)
    archs = sample_many(300, 4, space)
    genes = np.array([to_genes(a, space) for a in archs])
    np.testing.assert_allclose(pred.predict_genes(genes), [pred.predict(a) for a in archs], rtol=1e-12)
    ms, best = pred.fastest()
    assert pred.predict_genes(genes).min() >= ms and pred.predict(best) == pytest.approx(ms)
    assert pred.with_calibration(None).predict(arch) == pytest.approx(pred.raw_sum(arch))


def test_store_keeps_layouts_through_files(tmp_path, synthetic_medians):
    space = SearchSpace.paper()
    store = LatencyStore(tmp_path / "lut.db")
    info = store.get_or_create("t", {"label": "x"}, {"backend": "onnxruntime"})
    med, lay = synthetic_medians(space), _layouts(space)
    keys = sorted(med)
    row = {"median_ms": 1.0, "p10_ms": 0.9, "p90_ms": 1.1, "iqr_ms": 0.1, "count": 10}
    store.put(info.id, {k: {**row, "median_ms": med[k], "env": {"layout": lay[k]}} for k in keys[:10]})
    store.put(info.id, {k: {**row, "median_ms": med[k]} for k in keys[10:]})
    assert store.layouts(info.id) == {k: lay[k] for k in keys[:10]}
    assert store.set_layouts(info.id, {k: lay[k] for k in keys[10:]}) == len(keys) - 10
    assert store.layouts(info.id) == lay
    for suffix in (".csv", ".parquet"):
        path = store.export_file(info.id, tmp_path / f"t{suffix}")
        copy = LatencyStore(tmp_path / f"copy{suffix}.db")
        assert copy.layouts(copy.import_file(path).id) == lay
    pred = LatencyPredictor.from_store(store, "t", space)
    assert pred.layouts == lay and LatencyPredictor.from_store(store, "t", space, layout=False).layouts == {}


def test_profile_records_layouts_and_traces_older_entries(tmp_path):
    store = LatencyStore(tmp_path / "lut.db")
    backend = get_backend("onnxruntime", threads=1)
    units = [parse_key(k) for k in (MBCONV, NECK)]
    rep = profile_units(store, backend, units[:1], protocol=FAST)
    assert set(store.layouts(rep.table.id)) == {MBCONV}
    # An entry from before layouts were recorded gains one when the table is profiled again.
    with store.session() as s:
        from latency_tables.db import LatencyEntry

        entry = s.query(LatencyEntry).filter_by(unit_key=MBCONV).one()
        entry.env = {k: v for k, v in entry.env.items() if k != "layout"}
        s.commit()
    assert store.layouts(rep.table.id) == {}
    rep2 = profile_units(store, backend, units, protocol=FAST)
    assert rep2.measured == [NECK] and rep2.skipped == [MBCONV]
    assert set(store.layouts(rep.table.id)) == {MBCONV, NECK}


class _BrokenTrace:
    """A backend whose node profiler fails (as an execution provider without one might)."""

    def node_trace(self, model, runs=20, seed=0, flush=None):
        raise RuntimeError("profiling is not supported by this provider")


def test_a_failed_trace_keeps_the_measurement():
    from profilers.layout import valid_layout, with_layout
    from profilers.measure import Measurement

    m = Measurement(1.0, 0.9, 1.1, 0.1, 10, {"cpu": "x"})
    kept = with_layout(m, _BrokenTrace(), b"model")
    assert kept.median_ms == 1.0 and kept.env["cpu"] == "x" and "layout" not in kept.env
    assert "not supported" in kept.env["layout_error"]
    assert valid_layout({"reorder_in": 0.1, "reorder_out": 0.2}) == {"reorder_in": 0.1, "reorder_out": 0.2}
    for bad in (None, [], {"reorder_in": 0.1}, {"reorder_in": "x", "reorder_out": 0}, {"reorder_in": -0.1,
                "reorder_out": 0}, {"reorder_in": 0.6, "reorder_out": 0.5}, {"reorder_in": float("nan"), "reorder_out": 0}):
        assert valid_layout(bad) is None, bad


def test_bad_stored_layouts_are_ignored(tmp_path):
    store = LatencyStore(tmp_path / "lut.db")
    info = store.get_or_create("t", {}, {"backend": "onnxruntime"})
    row = {"median_ms": 1.0, "p10_ms": 0.9, "p90_ms": 1.1, "iqr_ms": 0.1, "count": 10}
    store.put(info.id, {MBCONV: {**row, "env": {"layout": {"reorder_in": "junk"}}},
                        NECK: {**row, "env": {"layout": {"reorder_in": 0.0, "reorder_out": 0.1}}}})
    assert store.layouts(info.id) == {NECK: {"reorder_in": 0.0, "reorder_out": 0.1}}
