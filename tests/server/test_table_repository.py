"""One way into a latency table (``latency_tables.repository``): the service's upload dispatch
stores each kind of result in its one place, and the service's predictions are exactly what
``lutnas latency predict`` prints for the same table (both read it through the repository)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

import server.models as m
from latency_tables.db import LatencyEntry, LatencyTable
from latency_tables.kinds import OVERHEAD_KEY, subnet_key
from latency_tables.units import all_units
from lutnas.cli import main
from server.measurements.lut import predict_for, predictor_for, store_results
from server.measurements.workunits import work_keys
from server.migrate import upgrade
from tracking.space import SearchSpace, lighttrack_mobile, sample_many

OVERHEAD = 0.05


def _result(key: str, ms: float) -> dict:
    return {"unit_key": key, "median_ms": ms, "p10_ms": 0.9 * ms, "p90_ms": 1.2 * ms, "iqr_ms": 0.1 * ms,
            "count": 20, "p99_ms": 1.4 * ms, "env": {"threads": 1}, "measured_at": m.utcnow()}


@pytest.fixture()
def served(tmp_path: Path) -> tuple[str, int, list]:
    """A service database at head with one target whose agents uploaded every unit, the overhead
    and three whole subnets, through the upload route's own dispatch."""
    url = f"sqlite:///{tmp_path / 'service.db'}"
    engine = create_engine(url)
    upgrade(engine)
    space = SearchSpace.paper()
    rng = np.random.default_rng(0)
    with Session(engine, expire_on_commit=False) as s:
        team = m.Team(name="t")
        table = LatencyTable(name="t/cpu", hardware={}, runtime={"backend": "onnxruntime", "threads": 1})
        s.add_all([team, table])
        s.flush()
        hw = m.Hardware(team_id=team.id, name="cpu", kind="cpu", runtime=table.runtime, space="paper",
                        table_id=table.id)
        s.add(hw)
        s.flush()
        subnets = sample_many(3, 11, space)
        keys = [*work_keys("paper"), *(subnet_key(a.to_string()) for a in subnets)]
        s.execute(m.WorkUnit.__table__.insert(), [{"hardware_id": hw.id, "unit_key": k, "done": True} for k in keys])
        results = {u.key: _result(u.key, float(rng.uniform(0.05, 0.5))) for u in all_units(space)}
        results[OVERHEAD_KEY] = _result(OVERHEAD_KEY, OVERHEAD)
        assert store_results(s, hw, results) == len(results)
        # the subnets "measured" 10% above the uncalibrated unit sum: their upload refits the table
        raw = predictor_for(s, hw, calibrated=False)
        sub = {subnet_key(a.to_string()): _result(subnet_key(a.to_string()), 1.1 * float(raw.predict(a)))
               for a in subnets}
        assert store_results(s, hw, sub) == 3
        assert store_results(s, hw, {**results, **sub}) == 0  # repeats: the first result wins
        s.commit()
        return url, hw.id, subnets


def test_each_kind_of_result_has_one_place(served) -> None:
    url, hw_id, subnets = served
    with Session(create_engine(url)) as s:
        hw = s.get(m.Hardware, hw_id)
        table = s.get(LatencyTable, hw.table_id)
        assert table.overhead_ms == OVERHEAD  # the overhead result is the table's overhead
        entry_keys = set(s.scalars(select(LatencyEntry.unit_key).where(LatencyEntry.table_id == hw.table_id)))
        assert not any(k.startswith("subnet:") for k in entry_keys)  # subnets are measurements, not entries
        measured = set(s.scalars(select(m.SubnetMeasurement.lighttrack).where(m.SubnetMeasurement.hardware_id == hw_id)))
        assert measured == {a.to_string() for a in subnets}
        assert table.calibration is not None and table.calibration["verified"]["n"] == 3  # they refit it
        kinds = dict(s.execute(select(m.WorkUnit.unit_key, m.WorkUnit.kind)).all())
        assert kinds[OVERHEAD_KEY] == "overhead" and {kinds[subnet_key(a.to_string())] for a in subnets} == {"subnet"}
        assert {v for k, v in kinds.items() if k in entry_keys and k != OVERHEAD_KEY} == {"unit"}
        # the predictor reads units only: the overhead is added once, not as a unit
        assert OVERHEAD_KEY not in predictor_for(s, hw).medians


def test_service_predictions_equal_latency_predict_on_the_same_table(served, capsys) -> None:
    url, hw_id, _ = served
    archs = [lighttrack_mobile(), *sample_many(5, 3, SearchSpace.paper())]
    with Session(create_engine(url)) as s:
        hw = s.get(m.Hardware, hw_id)
        service = predict_for(s, hw, archs)
        name = s.get(LatencyTable, hw.table_id).name
    with pytest.raises(SystemExit) as e:
        main(["latency", "predict", *(a.to_string() for a in archs), "--table", f"{url}#{name}", "--json"])
    assert e.value.code == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["calibrated"] is True
    # the same table, calibration and layout read: equal up to summation order (the service sums a
    # batch as one gather, the CLI unit by unit)
    assert [p["latency_ms"] for p in doc["predictions"]] == pytest.approx(service, rel=1e-12, abs=0)
