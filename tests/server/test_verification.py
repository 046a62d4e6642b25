"""The closed loop through the service: a finished search's front is measured end to end by a real
``lutnas-agent`` (whole exported search graphs, onnxruntime), the front shows measured next to
predicted latency and flags budget breaks, and the target's calibration is refit from them.

The table's units are filled through the agent API with synthetic timings (fast); the subnets
are measured for real, so predicted and measured disagree on purpose and the refit must move."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from client import Client
from latency_tables.units import units_of
from tests.server.conftest import BIN, Service, agent_token, register_hardware, wait_for
from tests.server.test_faults import FAST, QUICK_SCORES, fill_table, register_supernet, synthetic_ms
from tests.server.test_flow import all_results, wait_search
from tracking.space import LIGHTTRACK_MOBILE, Architecture, SearchSpace

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def table_calibration(database_url: str, hardware_id: int) -> dict[str, Any] | None:
    from server.db import create_engine_for, make_sessionmaker
    from server.models import Hardware, LatencyTable

    engine = create_engine_for(database_url)
    try:
        with make_sessionmaker(engine)() as s:
            return s.get(LatencyTable, s.get(Hardware, hardware_id).table_id).calibration
    finally:
        engine.dispose()


# SQLite only, for the suite's time: its writes go through insert_ignore, which the agent-results tests
# (test_flow, test_api) run on both dialects
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_front_is_measured_by_the_agent_and_refits_the_table(service: Service, database_url: str,
                                                                 artifacts: dict[str, Path], tmp_path: Path) -> None:
    c = service.team("closed-loop")
    hw = register_hardware(c, "verify-cpu")
    hid, total = hw["id"], hw["coverage"]["total"]
    token = agent_token(c, hid)
    fill_table(service.url, token, overhead_ms=0.01)  # a small overhead: every subnet's sum is positive
    sn = register_supernet(c, "closed-loop", artifacts)

    def predict_mobile() -> float:
        r = c.post(f"/v1/hardware/{hid}/latency-table/predict", json={"architectures": [LIGHTTRACK_MOBILE]})
        assert r.status_code == 200, r.text
        return float(r.json()["predictions"][0]["latency_ms"])

    def front(sid: int) -> dict[str, Any]:
        r = c.get(f"/v1/searches/{sid}/pareto", params={"hardware_id": hid})
        assert r.status_code == 200, r.text
        return r.json()

    def measure_queued() -> None:
        agent = service.agent(token, "--exit-when-done", "--idle-wait", "0.5", *FAST)
        assert agent.wait(300) == 0

    def search(**body: Any) -> int:
        request = {"supernet_id": sn, "hardware_ids": [hid], "population": 12, "generations": 1, "seed": 0,
                   "mode": "pairs", **body}
        done = wait_search(c, c.post("/v1/searches", json=request).json()["id"], 300)
        assert done["status"] == "succeeded", done
        return int(done["id"])

    mobile_ms = predict_mobile()
    # the suite's scoring (BN recalibrated): without it every path of the random-init supernet scores
    # the same, and a front of one point has nothing to refit on
    service.spawn([str(BIN / "lutnas"), "worker"], "worker", LUTNAS_EVAL_BATCH_SIZE="4")
    first = search()
    before = front(first)
    n = len(before["points"])
    assert n >= 2 and before["measured"] == 0 and before["budget_ms"] is None, [(r["score"], r["latency_ms"]) for r in c.get(f"/v1/searches/{first}/results").json()["items"]]
    assert all(p["measured_ms"] is None and p["over_budget"] is None and p["predicted_ms"] == p["latency_ms"]
               for p in before["points"])
    # queued as agent work, not as table units: the table's coverage stays complete
    assert c.get(f"/v1/hardware/{hid}").json()["coverage"] == {"measured": total, "total": total, "fraction": 1.0}

    measure_queued()
    after = wait_for(lambda: (f := front(first))["measured"] == n and f, 60, 0.5, "every front point measured")
    for p, q in zip(before["points"], after["points"], strict=True):
        assert q["architecture_id"] == p["architecture_id"] and q["predicted_ms"] == p["predicted_ms"]
        assert q["measured_ms"] > 0 and q["over_budget"] is None  # no budget: nothing to break
    # the units' table holds units only: the subnets' results are kept apart
    entries = c.get(f"/v1/hardware/{hid}/latency-table", params={"page_size": 200}).json()["items"]
    assert len(entries) == total and not any(e["unit_key"].startswith("subnet:") for e in entries)
    # the target's calibration is refit from the measured front, with its figures before and after
    calib = table_calibration(database_url, hid)
    assert calib is not None and calib["method"] == "scale" and calib["verified"]["n"] == n
    assert set(calib["verified"]["before"]) >= {"spearman", "within_10"} and calib["n"] == n
    # the scale is the median ratio measured / predicted over the front just measured (synthetic unit
    # timings against real graphs: how far from 1 it lands is chance, that it is this ratio is not)
    scale = calib["coef"]["raw_ms"]
    ratios = [q["measured_ms"] / q["predicted_ms"] for q in after["points"]]
    assert scale == pytest.approx(float(np.median(ratios)), rel=1e-6) and scale != 1.0
    assert predict_mobile() == pytest.approx(mobile_ms * scale, rel=1e-6)

    # under a budget: a front point whose measurement breaks it is flagged
    budget = predict_mobile()
    constrained = search(objective="budget", budget_ms=budget)
    measure_queued()
    flagged = front(constrained)
    assert flagged["budget_ms"] == pytest.approx(budget) and flagged["measured"] == len(flagged["points"]) >= 1
    for p in flagged["points"]:
        assert p["predicted_ms"] <= budget and p["over_budget"] == (p["measured_ms"] > budget)

    # the SDK, the CLI table and the plot carry the measurements
    key = c.headers["Authorization"].removeprefix("Bearer ")
    with Client(service.url, key, retries=0) as sdk:
        df = sdk.searches.get(constrained).pareto_df(hid)
    assert df["measured_ms"].notna().all() and df.attrs["measured"] == len(df) and df.attrs["budget_ms"] == budget
    assert (df["over_budget"] == (df["measured_ms"] > budget)).all()
    env = {**service.env, "LUTNAS_SERVER": service.url, "LUTNAS_API_KEY": key}
    env.pop("LUTNAS_ADMIN_TOKEN", None)
    cli = subprocess.run([str(BIN / "lutnas"), "search", "pareto", str(first), "--hardware", str(hid), "--plot",
                          str(tmp_path / "front.png")], env=env, capture_output=True, text=True, timeout=120)
    assert cli.returncode == 0, cli.stderr
    assert f"{n} measured on the device" in " ".join(cli.stdout.split()) and "measured ms" in cli.stdout
    assert (tmp_path / "front.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # the first search again: its front is measured already, so nothing is queued twice
    repeat = front(search())
    assert repeat["measured"] == len(repeat["points"]) == n
    with httpx.Client(base_url=service.url, headers={"Authorization": f"Bearer {token}"}) as a:
        assert a.post("/v1/agent/leases", json={"max_units": 8}).json()["remaining"] == 0


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_p90_search_adds_the_units_spreads(service: Service, artifacts: dict[str, Path]) -> None:
    """``latency_stat: p90``: every latency of the search is its p50 latency plus the root sum of
    squares of its units' p90 - p50 spreads (the synthetic table's p90 is 1.1 x its median)."""
    c = service.team("tails")
    hid = register_hardware(c, "tail-cpu")["id"]
    fill_table(service.url, agent_token(c, hid), overhead_ms=0.01)
    sn = register_supernet(c, "tails", artifacts)
    service.spawn([str(BIN / "lutnas"), "worker"], "worker", LUTNAS_VERIFY_FRONT_POINTS="0", **QUICK_SCORES)
    latencies = {}
    for stat in ("p50", "p90"):
        r = c.post("/v1/searches", json={"supernet_id": sn, "hardware_ids": [hid], "population": 4,
                                         "generations": 1, "seed": 1, "latency_stat": stat})
        assert r.status_code == 202, r.text
        done = wait_search(c, r.json()["id"], 300)
        assert done["status"] == "succeeded" and done["request"]["latency_stat"] == stat, done
        latencies[stat] = {x["lighttrack"]: x["latency_ms"][str(hid)] for x in all_results(c, done["id"])}
    assert latencies["p50"].keys() == latencies["p90"].keys()
    for arch, ms in latencies["p50"].items():
        units = units_of(Architecture.parse(arch), SearchSpace.paper())
        spread = np.sqrt(sum((0.1 * synthetic_ms(u.key)) ** 2 for u in units))
        assert latencies["p90"][arch] == pytest.approx(ms + spread, rel=1e-9)
    bad = c.post("/v1/searches", json={"supernet_id": sn, "hardware_ids": [hid], "latency_stat": "p99"})
    assert bad.status_code == 422 and bad.json()["field"] == "latency_stat"
