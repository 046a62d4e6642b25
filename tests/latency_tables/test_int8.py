"""Int8 targets: units quantized with onnxruntime's static QDQ quantization, measured and stored
like fp32 ones, keyed by precision."""

from __future__ import annotations

import onnx
import pytest

from latency_tables.profile import profile_units
from latency_tables.quantize import check_precision, synthetic_crops
from latency_tables.store import LatencyStore
from latency_tables.units import export_unit_onnx, parse_key
from profilers import Protocol, get_backend, measure

FAST = Protocol(warmup_runs=2, min_runs=5, min_time_s=0.02, max_time_s=0.1)
HEAD = "head:in128x16x16:out192:k3"
STEM = "stem:in3x256x256:out16:k3:s2"


def _ops(path) -> set[str]:
    return {n.op_type for n in onnx.load(str(path)).graph.node}


def test_int8_unit_is_quantized_and_runs(tmp_path) -> None:
    unit = parse_key(HEAD)
    fp32 = export_unit_onnx(unit, tmp_path / "fp32.onnx")
    int8 = export_unit_onnx(unit, tmp_path / "int8.onnx", precision="int8")
    assert "QuantizeLinear" not in _ops(fp32)
    assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= _ops(int8)
    # Every conv is quantized: its weight and bias come through DequantizeLinear (no fp32 conv left).
    model = onnx.load(str(int8))
    made_by = {o: n.op_type for n in model.graph.node for o in n.output}
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    assert convs and all(made_by.get(n.input[1]) == "DequantizeLinear" for n in convs)
    m = measure(get_backend("onnxruntime", precision="int8"), int8, FAST)
    assert m.median_ms > 0 and m.env["precision"] == "int8"


def test_int8_profile_keys_the_table_by_precision(tmp_path) -> None:
    store = LatencyStore(tmp_path / "lut.db")
    units = [parse_key(k) for k in (STEM, HEAD)]
    rep = profile_units(store, get_backend("onnxruntime", precision="int8"), units, protocol=FAST)
    assert rep.table.runtime["precision"] == "int8" and rep.table.name.endswith("-int8-optall")
    fp = profile_units(store, get_backend("onnxruntime"), units[:1], protocol=FAST)
    assert fp.table.name != rep.table.name  # two tables, one per precision
    assert set(store.medians(rep.table.id)) == {STEM, HEAD}


def test_calibration_crops_are_seeded_images() -> None:
    x, z = synthetic_crops(2, seed=5)
    x2, _ = synthetic_crops(2, seed=5)
    assert x.shape == (2, 3, 256, 256) and z.shape == (2, 3, 128, 128)
    assert (x == x2).all() and x.std() > 0.1  # real image content, ImageNet-normalised
    with pytest.raises(ValueError, match="precision"):
        check_precision("fp16")
    with pytest.raises(ValueError, match="precision"):
        get_backend("onnxruntime", precision="int4")


def test_server_hands_int8_targets_quantized_units(tmp_path) -> None:
    """What an agent of an int8 hardware target downloads: the quantized unit, cached apart from fp32."""
    from server.measurements.workunits import OVERHEAD_KEY, unit_onnx_path

    fp32 = unit_onnx_path(tmp_path, "paper", HEAD)
    int8 = unit_onnx_path(tmp_path, "paper", HEAD, "int8")
    assert fp32 != int8 and "QuantizeLinear" in _ops(int8) and "QuantizeLinear" not in _ops(fp32)
    assert unit_onnx_path(tmp_path, "paper", HEAD, "int8") == int8  # cached
    assert _ops(unit_onnx_path(tmp_path, "paper", OVERHEAD_KEY, "int8")) == {"Identity"}
