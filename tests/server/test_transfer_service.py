"""A new hardware target from another target's table over REST (``transfer_from``): a real
``lutnas-agent`` measures only the per-run overhead and K whole subnets, and the server fits the
new table from them (``server/measurements/transfer.py`` over ``latency_tables.transfer``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.server.conftest import Service, agent_token, register_hardware
from tests.server.test_faults import FAST, fill_table
from tracking.space import LIGHTTRACK_MOBILE

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def table_hardware(database_url: str, hardware_id: int) -> dict[str, Any]:
    from server.db import create_engine_for, make_sessionmaker
    from server.models import Hardware, LatencyTable

    engine = create_engine_for(database_url)
    try:
        with make_sessionmaker(engine)() as s:
            return dict(s.get(LatencyTable, s.get(Hardware, hardware_id).table_id).hardware)
    finally:
        engine.dispose()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_target_transferred_from_another_measures_only_k_subnets(service: Service, database_url: str,
                                                                     artifacts: dict[str, Path]) -> None:
    c = service.team("transfer")
    source = register_hardware(c, "source-cpu")
    total = source["coverage"]["total"]
    fill_table(service.url, agent_token(c, source["id"]), overhead_ms=0.01)

    # refused: a source of another team (or none), a source whose table is not complete
    other = service.team("transfer-other")
    r = other.post("/v1/hardware", json={"name": "t", "kind": "cpu", "transfer_from": source["id"]})
    assert r.status_code == 422 and r.json()["field"] == "transfer_from", r.text
    empty = register_hardware(c, "empty-cpu")
    r = c.post("/v1/hardware", json={"name": "t", "kind": "cpu", "transfer_from": empty["id"]})
    assert r.status_code == 409 and r.json()["field"] == "transfer_from", r.text
    r = c.post("/v1/hardware", json={"name": "t", "kind": "cpu", "transfer_from": source["id"], "transfer_measure": 1})
    assert r.status_code == 422 and r.json()["field"] == "transfer_measure", r.text

    r = c.post("/v1/hardware", json={"name": "new-cpu", "kind": "cpu", "transfer_from": source["id"],
                                     "transfer_measure": 4})
    assert r.status_code == 201, r.text
    new = r.json()
    assert new["coverage"] == {"measured": 0, "total": 1, "fraction": 0.0}  # the overhead: units come from the fit
    token = agent_token(c, new["id"])
    agent = service.agent(token, "--exit-when-done", "--idle-wait", "0.5", *FAST)
    assert agent.wait(300) == 0
    log = "".join(p.read_text() for p in service.logs.glob("agent-*.log"))
    assert log.count("measured subnet:") >= 4

    # the table is complete without a unit measured on it: every unit from the fit, count 0
    assert c.get(f"/v1/hardware/{new['id']}").json()["coverage"] == {"measured": total, "total": total,
                                                                      "fraction": 1.0}
    entries = c.get(f"/v1/hardware/{new['id']}/latency-table", params={"page_size": 200}).json()["items"]
    assert len(entries) == total
    assert all(e["count"] == 0 for e in entries if e["unit_key"] != "overhead:empty")
    plan = table_hardware(database_url, new["id"])["transfer"]
    assert plan["status"] == "done" and plan["from_hardware_id"] == source["id"] and plan["n"] == 4
    assert set(plan["loo"]) >= {"spearman", "within_10"} and all(v >= 0 for v in plan["scales"].values())
    predicted = c.post(f"/v1/hardware/{new['id']}/latency-table/predict", json={"architectures": [LIGHTTRACK_MOBILE]})
    assert predicted.status_code == 200 and predicted.json()["predictions"][0]["latency_ms"] > 0
    # nothing is left for its agents, and the source's table is untouched
    assert c.get(f"/v1/hardware/{source['id']}").json()["coverage"]["total"] == total
