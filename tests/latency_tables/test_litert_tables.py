"""LiteRT tables: units converted to .tflite and profiled with the LiteRT interpreter; the table's
runtime rebuilds the same backend for validate/verify. Needs the litert extra (skipped without)."""

from __future__ import annotations

from pathlib import Path

import pytest

from latency_tables.units import check_format, parse_key, unit_filename

KEYS = ["stem:in3x256x256:out16:k3:s2", "adjust:in80x16x16:out96:s1", "neck:in96x16x16:out128:z96x8x8"]


def test_unit_files_are_named_by_format() -> None:
    assert unit_filename(KEYS[0]) == "stem_in3x256x256_out16_k3_s2.onnx"
    assert unit_filename(KEYS[0], "tflite") == "stem_in3x256x256_out16_k3_s2.tflite"
    with pytest.raises(ValueError, match="model format"):
        check_format("pb")


def test_profile_a_litert_table_and_rebuild_its_backend(tmp_path: Path) -> None:
    pytest.importorskip("ai_edge_litert")
    pytest.importorskip("litert_torch")
    from latency_tables.cli import _backend_from_runtime
    from latency_tables.profile import profile_units
    from latency_tables.store import LatencyStore
    from latency_tables.verify import backend_for_runtime
    from profilers import Protocol, get_backend

    store = LatencyStore(f"sqlite:///{tmp_path / 't.db'}")
    work = tmp_path / "units"
    rep = profile_units(store, get_backend("litert", threads=1), [parse_key(k) for k in KEYS], "lite",
                        protocol=Protocol(min_time_s=0.02, max_time_s=0.05), workdir=work)
    assert sorted(rep.measured) == sorted(KEYS) and rep.table.overhead_ms > 0
    assert sorted(p.name for p in work.glob("*.tflite")) == sorted(["overhead.tflite",
                                                                    *(unit_filename(k, "tflite") for k in KEYS)])
    runtime = store.find("lite").runtime
    assert {k: runtime[k] for k in ("backend", "provider", "threads", "precision", "graph_optimization")} == \
        {"backend": "litert", "provider": "xnnpack", "threads": 1, "precision": "fp32", "graph_optimization": "all"}
    import json

    envs = [json.loads(e) for e in store.frame(rep.table.id)["env"]]
    assert len(envs) == 3 and all(e["runtime"] == "litert" and e["delegate"] == "xnnpack" for e in envs)
    assert store.layouts(rep.table.id) == {}  # LiteRT has no node trace: no layout correction assumed
    for be in (_backend_from_runtime(runtime), backend_for_runtime(runtime)):
        assert be.name == "litert" and be.model_format == "tflite" and be.config()["provider"] == "xnnpack"


def test_a_transfer_measures_litert_overhead_on_its_own_model() -> None:
    pytest.importorskip("ai_edge_litert")
    pytest.importorskip("litert_torch")
    from latency_tables.transfer import _overhead_ms
    from profilers import Protocol, get_backend

    assert 0 < _overhead_ms(get_backend("litert"), Protocol(min_time_s=0.02, max_time_s=0.05)) < 1
