"""LiteRT targets through the service: registration (the delegate checked, a bad one a problem+json
422 naming ``runtime``), and a real ``lutnas-agent --backend litert`` measuring a .tflite unit and a
whole subnet converted server-side, on SQLite and PostgreSQL. The agent run needs the litert extra."""

from __future__ import annotations

import subprocess
import time
import uuid

import httpx
import pytest
from sqlalchemy import create_engine, delete
from sqlalchemy.orm import Session

from tests.server.conftest import BIN, Service, agent_token, register_hardware
from tests.server.test_api import assert_problem

UNIT = "neck:in96x16x16:out128:z96x8x8"
ARCH = "back_04502514044521042540+cls_211000022+reg_100000111_ops_32"  # LightTrack-Mobile


def test_litert_targets_are_registered_with_a_known_delegate(service: Service) -> None:
    c = service.team(f"litert-{uuid.uuid4().hex[:8]}")
    hw = register_hardware(c, "phone-cpu", runtime={"backend": "litert"})
    assert hw["runtime"] == {"backend": "litert", "provider": "xnnpack", "threads": 1, "precision": "fp32",
                             "graph_optimization": "all"}  # LiteRT's CPU default, not onnxruntime's provider
    gpu = register_hardware(c, "phone-gpu", kind="mobile-gpu", runtime={"backend": "litert", "provider": "gpu",
                                                                         "precision": "int8"})
    assert gpu["runtime"]["provider"] == "gpu" and gpu["runtime"]["precision"] == "int8"
    for runtime in ({"backend": "litert", "provider": "nnapi"},
                    {"backend": "litert", "provider": "CPUExecutionProvider"},
                    {"backend": "litert", "graph_optimization": "basic"}):
        body = assert_problem(c.post("/v1/hardware", json={"name": "bad-litert", "kind": "cpu", "runtime": runtime}),
                              422, "runtime")
        assert "litert" in body["detail"], body
    assert "bad-litert" not in {h["name"] for h in c.get("/v1/hardware").json()["items"]}
    # onnxruntime targets are as before
    assert register_hardware(c, "ort-cpu")["runtime"]["provider"] == "CPUExecutionProvider"


def _keep_only(service: Service, hardware_id: int, keys: list[str], subnet: str) -> None:
    """Cut the target's work down to ``keys`` plus one whole subnet (as a verification queues one)."""
    import server.models as m

    engine = create_engine(service.env["LUTNAS_DATABASE_URL"])
    try:
        with Session(engine) as s:
            s.execute(delete(m.WorkUnit).where(m.WorkUnit.hardware_id == hardware_id,
                                               m.WorkUnit.unit_key.not_in(keys)))
            s.add(m.WorkUnit(hardware_id=hardware_id, unit_key=f"subnet:{subnet}", done=False))
            s.commit()
    finally:
        engine.dispose()


@pytest.mark.slow
def test_a_litert_agent_measures_a_tflite_unit_and_a_whole_subnet(service: Service) -> None:
    pytest.importorskip("ai_edge_litert")
    pytest.importorskip("litert_torch")  # the server converts the units
    import server.models as m

    c = service.team(f"litert-agent-{uuid.uuid4().hex[:8]}")
    hw = register_hardware(c, "litert-cpu", runtime={"backend": "litert"})
    _keep_only(service, hw["id"], ["overhead:empty", UNIT], ARCH)
    token = agent_token(c, hw["id"])
    with httpx.Client(base_url=service.url, headers={"Authorization": f"Bearer {token}"}, timeout=120) as agent:
        lease = agent.post("/v1/agent/leases", json={"max_units": 8, "lease_seconds": 0.2}).json()
    assert {u["format"] for u in lease["units"]} == {"tflite"} and len(lease["units"]) == 3
    time.sleep(0.5)  # that lease runs out: the agent below gets the units
    args = [str(BIN / "lutnas-agent"), "--server", service.url, "--token", token, "--max-other-load", "off",
            "--min-time", "0.05", "--max-time", "0.15", "--exit-when-done", "--idle-wait", "0.5",
            "--lease-seconds", "2"]
    # an onnxruntime agent is told to switch, before it measures anything
    wrong = subprocess.run(args, capture_output=True, text=True, timeout=120, env=service.env)
    assert wrong.returncode == 2 and "--backend litert" in wrong.stderr, wrong.stderr[-2000:]
    out = subprocess.run([*args, "--backend", "litert"], capture_output=True, text=True, timeout=600,
                         env=service.env)
    assert out.returncode == 0, out.stderr[-3000:]
    assert c.get(f"/v1/hardware/{hw['id']}").json()["coverage"] == {"measured": 2, "total": 2, "fraction": 1.0}
    entries = {e["unit_key"]: e for e in c.get(f"/v1/hardware/{hw['id']}/latency-table").json()["items"]}
    assert set(entries) == {"overhead:empty", UNIT}
    assert 0 < entries["overhead:empty"]["median_ms"] < entries[UNIT]["median_ms"]
    engine = create_engine(service.env["LUTNAS_DATABASE_URL"])
    try:
        with Session(engine) as s:
            rows = s.query(m.SubnetMeasurement).filter_by(hardware_id=hw["id"]).all()
            assert [r.lighttrack for r in rows] == [ARCH]
            assert rows[0].median_ms > entries[UNIT]["median_ms"]
            assert rows[0].env["runtime"] == "litert" and rows[0].env["delegate"] == "xnnpack"
    finally:
        engine.dispose()
    # what it downloaded: the .tflite file (a TFLite flatbuffer), cached server-side, named so
    with httpx.Client(base_url=service.url, headers={"Authorization": f"Bearer {token}"}, timeout=120) as agent:
        r = agent.get("/v1/agent/units/onnx", params={"key": UNIT})
    assert r.status_code == 200 and r.content[4:8] == b"TFL3"
    assert r.headers["content-disposition"].endswith('.tflite"')
