"""The LUT store: tables, upserts, CSV/Parquet round trips, bad files."""

from __future__ import annotations

import pandas as pd
import pytest

from latency_tables.db import LatencyEntry, LatencyTable, make_engine
from latency_tables.store import LatencyStore
from profilers.measure import summarize

RUNTIME = {"backend": "onnxruntime", "provider": "CPUExecutionProvider", "threads": 1, "precision": "fp32",
           "graph_optimization": "all", "clock": "wall"}
HARDWARE = {"label": "test-cpu", "cpu": "Test CPU", "cores": 2}


def _filled(path, synthetic_medians, space) -> tuple[LatencyStore, int]:
    store = LatencyStore(path)
    info = store.get_or_create("t1", HARDWARE, RUNTIME)
    store.update(info.id, overhead_ms=0.0025,
                 calibration={"coef": {"raw_ms": 1.05}, "intercept": 0.1, "n": 10})
    results = {}
    for i, (k, v) in enumerate(synthetic_medians(space).items()):
        m = summarize([int(v * 1e6 * f) for f in (0.9, 1.0, 1.0, 1.1, 1.3)], {"cpu": "Test CPU", "i": i})
        results[k] = m
    store.put(info.id, results)
    return store, info.id


def test_models_are_created_and_named_as_agreed(tmp_path):
    engine = make_engine(tmp_path / "x.db")
    LatencyStore(engine)
    assert LatencyTable.__tablename__ == "lut_tables" and LatencyEntry.__tablename__ == "lut_entries"
    with engine.connect() as c:
        assert c.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        names = {r[0] for r in c.exec_driver_sql("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"lut_tables", "lut_entries"} <= names


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_file_round_trip(tmp_path, suffix, synthetic_medians, space):
    store, tid = _filled(tmp_path / "a.db", synthetic_medians, space)
    path = store.export_file(tid, tmp_path / f"t{suffix}")
    other = LatencyStore(tmp_path / "b.db")
    info = other.import_file(path)
    assert info.name == "t1" and info.runtime == RUNTIME and info.hardware == HARDWARE
    assert info.overhead_ms == pytest.approx(0.0025)
    assert info.calibration["coef"] == {"raw_ms": 1.05}
    a, b = store.frame(tid), other.frame(info.id)
    pd.testing.assert_frame_equal(a, b)
    assert other.medians(info.id) == pytest.approx(store.medians(tid))


def test_put_replaces_and_resume_keys(tmp_path, synthetic_medians, space):
    store, tid = _filled(tmp_path / "a.db", synthetic_medians, space)
    key = sorted(store.keys(tid))[0]
    store.put(tid, {key: {"median_ms": 9.0, "p10_ms": 8.0, "p90_ms": 10.0, "iqr_ms": 1.0, "count": 7}})
    assert store.medians(tid)[key] == 9.0
    assert len(store.keys(tid)) == len(synthetic_medians(space))


def test_runtime_mismatch_and_names(tmp_path, synthetic_medians, space):
    store, _ = _filled(tmp_path / "a.db", synthetic_medians, space)
    with pytest.raises(ValueError, match="runtime"):
        store.get_or_create("t1", HARDWARE, {**RUNTIME, "threads": 2})
    store.get_or_create("t2", HARDWARE, {**RUNTIME, "threads": 2})
    with pytest.raises(ValueError, match="2 tables"):
        store.find()
    with pytest.raises(ValueError, match="no latency table named 'nope'"):
        store.find("nope")


def test_bad_files_are_rejected(tmp_path, synthetic_medians, space):
    store, tid = _filled(tmp_path / "a.db", synthetic_medians, space)
    path = store.export_file(tid, tmp_path / "t.csv")
    df = pd.read_csv(path)
    df.drop(columns=["median_ms"]).to_csv(tmp_path / "nocol.csv", index=False)
    pd.concat([df, df.head(1)]).to_csv(tmp_path / "dup.csv", index=False)
    df.assign(median_ms=-1.0).to_csv(tmp_path / "neg.csv", index=False)
    for name, msg in (("nocol.csv", "missing columns median_ms"), ("dup.csv", "duplicate"),
                      ("neg.csv", "positive")):
        with pytest.raises(ValueError, match=msg):
            store.import_file(tmp_path / name)
    with pytest.raises(ValueError, match=".json"):
        store.export_file(tid, tmp_path / "t.json")
    with pytest.raises(FileNotFoundError):
        store.import_file(tmp_path / "absent.csv")
