"""Drift probes through the service: once a target's table is complete, a real ``lutnas-agent``
measures its anchor subnets (whole exported graphs, onnxruntime) as round 1, the baseline; later
rounds re-measure them when the interval has passed, and a round whose anchors agree that the
device's speed moved rescales the target's predictions, with the reading on ``GET /v1/hardware``.

A second ``lutnas serve`` with probes on (``LUTNAS_DRIFT_INTERVAL_S``) shares the session's
database; the table's units are filled through the session server's agent API with synthetic
timings (fast). Rounds 2 and 3 are posted through the agent API with chosen times, so the speed
each must read is known."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.server.conftest import BIN, Service, agent_token, free_port, register_hardware, wait_for
from tests.server.test_faults import FAST, fill_table
from tracking.space import LIGHTTRACK_MOBILE

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

INTERVAL_S = 2.0


@pytest.fixture()
def drift_server(service: Service) -> Iterator[str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = service.spawn([str(BIN / "lutnas"), "serve", "--no-worker", "--port", str(port)], "drift-server",
                           LUTNAS_DRIFT_INTERVAL_S=str(INTERVAL_S), LUTNAS_DRIFT_ANCHORS="3")

    def up() -> bool:
        assert server.poll() is None, "the drift server exited"
        try:
            return httpx.get(url + "/healthz", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    wait_for(up, 120, what="the drift server to answer /healthz")
    yield url


def _lease(agent: httpx.Client) -> dict[str, Any]:
    r = agent.post("/v1/agent/leases", json={"max_units": 64})
    assert r.status_code == 200, r.text
    return r.json()


def _post_round(agent: httpx.Client, times: dict[str, float]) -> None:
    lease = _lease(agent)
    keys = [u["key"] for u in lease["units"]]
    assert sorted(keys) == sorted(times), keys
    results = [{"unit_key": k, "median_ms": times[k], "p10_ms": times[k] * 0.97, "p90_ms": times[k] * 1.05,
                "iqr_ms": times[k] * 0.03, "count": 20} for k in keys]
    r = agent.post("/v1/agent/results", json={"lease_id": lease["lease_id"], "results": results})
    assert r.status_code == 200 and r.json()["stored"] == len(keys), r.text


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_anchors_follow_the_device_speed_and_rescale_predictions(service: Service, drift_server: str,
                                                                 database_url: str, tmp_path: Path) -> None:
    c = service.team("drift-probes")
    hid = register_hardware(c, "drift-cpu")["id"]
    token = agent_token(c, hid)
    auth = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=drift_server, headers=auth, timeout=120) as agent:
        # an incomplete table gets no anchors: its units come first (one leased briefly, let expire)
        r = agent.post("/v1/agent/leases", json={"max_units": 4, "lease_seconds": 0.5})
        assert r.status_code == 200 and r.json()["units"], r.text
        assert all(not u["key"].startswith("anchor:") for u in r.json()["units"])
    assert c.get(f"/v1/hardware/{hid}").json()["drift"] is None
    time.sleep(0.6)
    fill_table(service.url, token, overhead_ms=0.01)  # through the session server: probes off there

    def predict() -> float:
        r = c.post(f"/v1/hardware/{hid}/latency-table/predict", json={"architectures": [LIGHTTRACK_MOBILE]})
        assert r.status_code == 200, r.text
        return float(r.json()["predictions"][0]["latency_ms"])

    before = predict()
    # round 1, the baseline: a real agent measures the anchors end to end on this CPU
    proc = service.spawn([str(BIN / "lutnas-agent"), "--server", drift_server, "--token", token,
                          "--max-other-load", "off", "--exit-when-done", "--idle-wait", "0.5", *FAST], "drift-agent")
    assert proc.wait(300) == 0
    hw = c.get(f"/v1/hardware/{hid}").json()
    drift = hw["drift"]
    assert drift["anchors"] == 3 and drift["round"] == 1 and drift["baseline_at"] and drift["speed"] is None
    assert drift["applied_scale"] == 1.0 and hw["coverage"]["fraction"] == 1.0  # anchors are not table work
    assert predict() == pytest.approx(before, rel=1e-9)
    baseline = _baseline(database_url, hid)

    with httpx.Client(base_url=drift_server, headers=auth, timeout=120) as agent:
        assert _lease(agent)["units"] == []  # the interval has not passed
        time.sleep(INTERVAL_S + 0.2)
        _post_round(agent, {f"anchor:{a}": ms * 1.10 for a, ms in baseline.items()})  # 10% slower
        drift = c.get(f"/v1/hardware/{hid}").json()["drift"]
        assert drift["round"] == 2 and drift["moved"] is True
        assert drift["speed"] == pytest.approx(1.10) and drift["applied_scale"] == pytest.approx(1.10)
        assert predict() == pytest.approx(before * 1.10, rel=1e-6)
        key = c.headers["Authorization"].split()[1]
        shown = subprocess.run([str(BIN / "lutnas"), "hardware", "show", str(hid)], capture_output=True, text=True,
                               env={**service.env, "LUTNAS_SERVER": service.url, "LUTNAS_API_KEY": key,
                                    "COLUMNS": "200"}, timeout=120)
        assert shown.returncode == 0 and "1.100x the baseline (predictions x 1.100)" in shown.stdout, shown

        time.sleep(INTERVAL_S + 0.2)
        _post_round(agent, {f"anchor:{a}": ms * (1.0 + 0.004 * i) for i, (a, ms) in enumerate(baseline.items())})
        drift = c.get(f"/v1/hardware/{hid}").json()["drift"]
        assert drift["round"] == 3 and drift["moved"] is False and drift["applied_scale"] == 1.0
        assert [h["round"] for h in drift["history"]] == [2, 3]
        assert predict() == pytest.approx(before, rel=1e-9)


def _baseline(database_url: str, hardware_id: int) -> dict[str, float]:
    from server.db import create_engine_for, make_sessionmaker
    from server.models import AnchorMeasurement

    engine = create_engine_for(database_url)
    try:
        with make_sessionmaker(engine)() as s:
            rows = s.query(AnchorMeasurement).filter_by(hardware_id=hardware_id, round=1).all()
            return {r.lighttrack: r.median_ms for r in rows}
    finally:
        engine.dispose()
