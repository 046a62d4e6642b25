"""profilers: the backend path's imports, the protocol's statistics, real onnxruntime runs."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from profilers import Protocol, available_backends, get_backend, measure, measure_overhead, summarize
from profilers.backends import random_inputs
from profilers.env import environment
from profilers.measure import Measurement, combine_rounds, identity_model, pick_round

IMPORT_CHECK = """
import sys
import profilers, profilers.backends, profilers.measure, profilers.env, profilers.layout
b = profilers.get_backend("onnxruntime", threads=1)
m = profilers.measure_overhead(b, profilers.Protocol(min_time_s=0.01, max_time_s=0.05))
assert m.count > 0
assert profilers.layout.measure_boundary(b, profilers.identity_model(), runs=3).reorder_in == 0
bad = [k for k in ("torch", "fastapi", "sqlalchemy", "pandas", "tracking", "latency_tables") if k in sys.modules]
print(",".join(bad))
"""


def test_backend_path_imports_no_torch_fastapi_sqlalchemy():
    out = subprocess.run([sys.executable, "-c", IMPORT_CHECK], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_summarize_statistics():
    ns = np.arange(1, 101) * 1_000_000  # 1..100 ms
    m = summarize(ns, {"cpu": "x"})
    assert m.median_ms == pytest.approx(50.5)
    assert m.p10_ms == pytest.approx(np.percentile(np.arange(1, 101), 10))
    assert m.p90_ms == pytest.approx(np.percentile(np.arange(1, 101), 90))
    assert m.iqr_ms == pytest.approx(49.5)
    assert m.count == 100 and m.env == {"cpu": "x"}
    with pytest.raises(ValueError):
        summarize([])


def test_rounds_combine_by_min_or_median():
    rounds = np.array([[3.0, 10.0], [1.0, 12.0], [2.0, 30.0]])  # 3 rounds x 2 models; a slow spell in round 3
    assert combine_rounds(rounds, "min").tolist() == [1.0, 10.0]
    assert combine_rounds(rounds, "median").tolist() == [2.0, 12.0]
    ms = [Measurement(m, m, m, 0.0, 10) for m in (5.0, 4.0, 9.0)]
    assert pick_round(ms, "min").median_ms == 4.0 and pick_round(ms, "median").median_ms == 5.0
    with pytest.raises(ValueError, match="min, median"):
        combine_rounds(rounds, "mean")
    with pytest.raises(ValueError, match="min, median"):
        pick_round(ms, "p10")


def test_identity_model_runs_and_overhead_is_small():
    be = get_backend("onnxruntime", threads=1)
    model = be.load(identity_model((2, 3)))
    model.run()
    np.testing.assert_array_equal(model.outputs()[0], model.feeds["x"])
    m = measure_overhead(be, Protocol(min_time_s=0.01, max_time_s=0.1))
    assert 0 < m.median_ms < 1.0 and m.count >= 10
    assert m.env["runtime"] == "onnxruntime" and m.env["threads"] == 1 and m.env["clock"] == "wall"
    assert m.p10_ms <= m.median_ms <= m.p90_ms


def test_protocol_respects_caps_and_clock():
    be = get_backend("onnxruntime")
    m = measure(be, identity_model(), Protocol(min_runs=5, max_runs=7, min_time_s=0, max_time_s=1.0))
    assert m.count <= 7
    m = measure(be, identity_model(), Protocol(min_time_s=0.01, max_time_s=0.05, clock="cpu"))
    assert m.env["clock"] == "cpu" and m.median_ms > 0
    m = measure(be, identity_model(), Protocol(min_time_s=0.01, max_time_s=0.05, flush_bytes=1 << 20))
    assert m.env["flush_bytes"] == 1 << 20 and m.count >= 10
    with pytest.raises(ValueError):
        Protocol(flush_bytes=-1)
    with pytest.raises(ValueError):
        Protocol(clock="sundial")
    with pytest.raises(ValueError):
        Protocol(min_runs=10, max_runs=5)


def test_warm_inputs_reads_the_memory_the_model_runs_on():
    """After the cache flush the protocol re-reads ``input_arrays()``: that must be the model's
    own input memory (else the warm-up warms a copy), shown by writing to it and running."""
    be = get_backend("onnxruntime", threads=1)
    model = be.load(identity_model((2, 3)))
    (x,) = model.input_arrays()
    x[...] = 7.0
    model.run()
    np.testing.assert_array_equal(model.outputs()[0], np.full((2, 3), 7.0, np.float32))
    for warm in (True, False):
        m = measure(be, model, Protocol(min_time_s=0.01, max_time_s=0.05, flush_bytes=1 << 16, warm_inputs=warm))
        assert m.env["warm_inputs"] is warm and m.count >= 10


def test_random_inputs_are_seeded():
    specs = [("a", [1, 3, 4, 4], np.float32), ("b", ["batch", 2], np.int64)]
    x, y, z = random_inputs(specs, 1), random_inputs(specs, 1), random_inputs(specs, 2)
    np.testing.assert_array_equal(x["a"], y["a"])
    assert not np.array_equal(x["a"], z["a"])
    assert x["b"].shape == (1, 2) and x["b"].dtype == np.int64


def test_backend_errors_are_clear(tmp_path):
    assert {"onnxruntime", "torch"} <= set(available_backends())
    with pytest.raises(ValueError, match="unknown backend 'tvm'"):
        get_backend("tvm")
    with pytest.raises(ValueError, match="not available"):
        get_backend("onnxruntime", provider="NoSuchExecutionProvider")
    with pytest.raises(ValueError, match="threads"):
        get_backend("onnxruntime", threads=0)
    with pytest.raises(FileNotFoundError):
        get_backend("onnxruntime").load(tmp_path / "absent.onnx")


def test_torch_backend_runs_a_module_and_torchscript(tmp_path):
    import torch

    from latency_tables.units import build_unit_module, parse_key

    unit = parse_key("head:in128x16x16:out128:k3")
    be = get_backend("torch", threads=1, input_shapes=[s for _, s in unit.inputs()])
    proto = Protocol(min_time_s=0.01, max_time_s=0.05)
    m = measure(be, build_unit_module(unit), proto)
    assert m.median_ms > 0 and m.env["runtime"] == "torch"
    scripted = torch.jit.trace(build_unit_module(unit), torch.randn(1, 128, 16, 16))
    scripted.save(str(tmp_path / "u.pt"))
    assert measure(be, tmp_path / "u.pt", proto).median_ms > 0


def test_environment_metadata():
    env = environment({"runtime": "onnxruntime"})
    assert env["cores"] >= 1 and env["cpu"] and env["runtime"] == "onnxruntime"
