"""End to end over real processes: ``lutnas serve`` (uvicorn), ``lutnas-agent`` measuring units
with onnxruntime, ``lutnas worker`` running searches.

One test walks the whole story in order (each step needs the one before), on PostgreSQL, the
service's production database (skipped where it is not reachable; CI always has it): SQLite's
end to end is the README walkthrough's (``tests/client/test_readme_walkthrough.py``) and its
restarts are test_faults'; running this 100-second story on both cost the suite its time budget.
an agent killed mid-lease loses nothing, a search runs to success and serves its front, other
teams see 404, and a worker killed with SIGKILL mid-search is replaced with an identical result.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.server.conftest import BIN, Service, agent_token, free_port, register_hardware, wait_for

FAST = ("--min-time", "0.01", "--max-time", "0.03")


def coverage(c: httpx.Client, hw: int) -> dict[str, Any]:
    return c.get(f"/v1/hardware/{hw}/latency-table/coverage").json()


def wait_search(c: httpx.Client, sid: int, timeout: float = 240.0) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        s = c.get(f"/v1/searches/{sid}").json()
        return s if s["status"] in ("succeeded", "failed", "cancelled") else None

    return wait_for(done, timeout, 0.5, f"search {sid} to finish")


def all_results(c: httpx.Client, sid: int) -> list[dict[str, Any]]:
    items, token = [], None
    while True:
        params: dict[str, Any] = {"page_size": 3}
        if token:
            params["page_token"] = token
        page = c.get(f"/v1/searches/{sid}/results", params=params).json()
        items += page["items"]
        token = page["next_page_token"]
        if not token:
            return items


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_service_end_to_end(service: Service, artifacts: dict[str, Path]) -> None:
    c = service.team("flow")
    hw = register_hardware(c, "loopback-cpu")
    hid, total = hw["id"], hw["coverage"]["total"]
    token = agent_token(c, hid, "bench-1")

    # 1. SIGTERM: the agent finishes and uploads the unit in hand, then exits cleanly.
    polite = service.agent(token, "--batch", "4", "--lease-seconds", "2", "--min-time", "0.2", "--max-time", "0.2")
    wait_for(lambda: coverage(c, hid)["measured"] >= 1, 120, 0.2, "the first measured unit")
    polite.send_signal(signal.SIGTERM)
    assert polite.wait(60) == 0
    by_polite = coverage(c, hid)["measured"]
    assert 1 <= by_polite <= 4
    time.sleep(2.5)  # its lease runs out

    #    An agent killed (SIGKILL) in the middle of a lease loses nothing: its units come back
    #    after the lease expires and a second agent measures them, one row per unit.
    first = service.agent(token, "--batch", str(total), "--lease-seconds", "8", "--min-time", "0.2",
                          "--max-time", "0.2", "--idle-wait", "0.5")
    wait_for(lambda: coverage(c, hid)["measured"] >= by_polite + 2, 120, 0.2, "the first agent's first units")
    first.send_signal(signal.SIGKILL)
    first.wait(30)
    killed_at = time.monotonic()
    measured_by_first = coverage(c, hid)["measured"]
    assert measured_by_first < total
    second = service.agent(token, "--exit-when-done", "--batch", "8", "--idle-wait", "0.5", *FAST)
    # its lease still live, the dead agent's units are not handed out again at once
    time.sleep(1.0)
    assert coverage(c, hid)["measured"] == measured_by_first
    assert second.wait(300) == 0
    assert time.monotonic() - killed_at >= 2.0
    cov = coverage(c, hid)
    assert cov == {"measured": total, "total": total, "fraction": 1.0, "missing_sample": []}
    csv_rows = c.get(f"/v1/hardware/{hid}/latency-table/export.csv").text.strip().splitlines()[1:]
    keys = [row.split(",")[0] for row in csv_rows]
    assert len(keys) == total == len(set(keys))
    assert all(float(row.split(",")[1]) > 0 for row in csv_rows)
    # agents trace each unit's boundary reorders too; the target's predictor corrects with them
    listed = c.get(f"/v1/hardware/{hid}/latency-table", params={"page_size": 200}).json()["items"]
    assert len(listed) == total and all(set(e["layout"]) == {"reorder_in", "reorder_out"} for e in listed)

    # 2. A short search runs to success on a worker process and serves results and its front.
    sn = c.post("/v1/supernets", json={"name": "tiny", "checkpoint_path": str(artifacts["checkpoint"]),
                                        "data_path": str(artifacts["data"])}).json()
    request = {"supernet_id": sn["id"], "hardware_ids": [hid], "objective": "pareto", "population": 4,
               "generations": 2, "seed": 0, "mode": "pairs"}
    worker = service.worker()
    r = c.post("/v1/searches", json=request)
    assert r.status_code == 202
    s1 = wait_search(c, r.json()["id"])
    assert s1["status"] == "succeeded", s1
    assert s1["progress"]["generation"] == 2 and s1["progress"]["fraction"] == 1.0
    assert s1["started_at"] and s1["finished_at"] and s1["timings"]["total_s"] > 0
    results = all_results(c, s1["id"])
    assert [x["rank"] for x in results] == list(range(1, len(results) + 1))
    assert len(results) == s1["progress"]["evaluated"] >= 4
    front = c.get(f"/v1/searches/{s1['id']}/pareto", params={"hardware_id": hid}).json()
    assert front["points"] and 0 < front["hypervolume"] < 1
    # one hypervolume: the front's (normalised) is the search's own, as its progress reports it;
    # the score x ms area is that times the reference latency
    assert front["hypervolume"] == s1["progress"]["hypervolume"]
    assert front["hypervolume_score_ms"] == pytest.approx(front["hypervolume"] * front["reference_point"]["latency_ms"])
    lat = [p["latency_ms"] for p in front["points"]]
    score = [p["score"] for p in front["points"]]
    assert lat == sorted(lat) and score == sorted(score)  # faster points score lower on a front
    by_id = {x["architecture_id"]: x for x in results}
    for p in front["points"]:
        assert by_id[p["architecture_id"]]["latency_ms"][str(hid)] == p["latency_ms"]
    team_front = c.get("/v1/pareto", params={"supernet_id": sn["id"], "hardware_id": hid}).json()
    assert team_front["points"] == front["points"]
    #    Every score has its standard error (over the 8 validation pairs), and the front carries
    #    LightTrack-Mobile's own point: its score as scoring its path directly gives, its latency
    #    as the table predicts it.
    assert all(isinstance(x["score_se"], float) and x["score_se"] >= 0 for x in results)
    assert all(p["score_se"] == by_id[p["architecture_id"]]["score_se"] for p in front["points"])
    _check_mobile_reference(c, front["reference"], hid, artifacts)
    assert team_front["reference"] == front["reference"]
    best = results[0]["architecture_id"]
    arch = c.get(f"/v1/architectures/{best}").json()
    assert arch["lighttrack"] == results[0]["lighttrack"] and arch["latency_ms"][str(hid)] > 0
    assert arch["scores"][0]["search_id"] == s1["id"] and arch["scores"][0]["score_se"] is not None
    assert c.get(f"/v1/architectures/{best}/export", params={"format": "lighttrack"}).text.strip() \
        == arch["lighttrack"]
    assert c.get(f"/v1/architectures/{best}/export", params={"format": "json"}).json()["output"] == arch["arch"]["output"]
    predicted = c.post(f"/v1/hardware/{hid}/latency-table/predict",
                       json={"architectures": [arch["lighttrack"]]}).json()["predictions"][0]
    assert abs(predicted["latency_ms"] - arch["latency_ms"][str(hid)]) < 1e-9

    # 3. Another team sees none of it.
    other = service.team("flow-other")
    for path in (f"/v1/hardware/{hid}", f"/v1/searches/{s1['id']}", f"/v1/searches/{s1['id']}/results",
                 f"/v1/searches/{s1['id']}/pareto", f"/v1/architectures/{best}", f"/v1/supernets/{sn['id']}"):
        assert other.get(path).status_code == 404, path
    assert other.get("/v1/pareto", params={"supernet_id": sn["id"], "hardware_id": hid}).status_code == 404

    # 4. A worker killed with SIGKILL mid-search is replaced; the job resumes from its last saved
    #    generation and ends exactly as an uninterrupted run with the same seed.
    long_request = {**request, "generations": 4, "seed": 7}
    sid = c.post("/v1/searches", json=long_request).json()["id"]
    wait_for(lambda: c.get(f"/v1/searches/{sid}").json()["progress"]["generation"] >= 1, 240, 0.2,
             "the first generation")
    worker.send_signal(signal.SIGKILL)
    worker.wait(30)
    assert c.get(f"/v1/searches/{sid}").json()["status"] == "running"  # until the heartbeat times out
    replacement = service.worker()
    resumed = wait_search(c, sid)
    assert resumed["status"] == "succeeded", resumed
    reference = c.post("/v1/searches", json=long_request).json()["id"]
    uninterrupted = wait_search(c, reference)
    assert uninterrupted["status"] == "succeeded"
    assert all_results(c, sid) == all_results(c, reference)
    assert c.get(f"/v1/searches/{sid}/pareto").json() == c.get(f"/v1/searches/{reference}/pareto").json()

    #    Cancelling a running search stops it between evaluation batches.
    running = c.post("/v1/searches", json={**request, "generations": 50, "seed": 11}).json()["id"]
    wait_for(lambda: c.get(f"/v1/searches/{running}").json()["progress"]["generation"] >= 1, 240, 0.2,
             "a generation of the search to cancel")
    assert c.post(f"/v1/searches/{running}/cancel").json()["status"] in ("running", "cancelled")
    stopped = wait_search(c, running)
    assert stopped["status"] == "cancelled" and stopped["progress"]["generation"] < 50
    replacement.send_signal(signal.SIGTERM)
    assert replacement.wait(60) == 0

    # 5. `lutnas serve` without --no-worker runs searches itself (embedded worker thread); the
    #    scores of this repeat of search 1 come from the score cache.
    port = free_port()
    embedded = service.spawn([str(BIN / "lutnas"), "serve", "--port", str(port)], "embedded")
    url = f"http://127.0.0.1:{port}"
    wait_for(lambda: _healthy(url), 120, 0.5, "the embedded-worker server")
    with httpx.Client(base_url=url, headers=c.headers, timeout=120) as c2:
        again = wait_search(c2, c2.post("/v1/searches", json=request).json()["id"])
        assert again["status"] == "succeeded" and again["progress"]["evaluated"] == s1["progress"]["evaluated"]
        assert all_results(c2, again["id"]) == results
    embedded.send_signal(signal.SIGTERM)
    assert embedded.wait(60) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal after a clean shutdown


def _healthy(url: str) -> bool:
    try:
        return httpx.get(url + "/healthz", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def test_search_waits_for_missing_units(service: Service, artifacts: dict[str, Path]) -> None:
    """missing_units='wait' keeps the job queued with a note; 'fail' fails naming the count."""
    c = service.team("waiting")
    hid = register_hardware(c, "unmeasured")["id"]
    sn = c.post("/v1/supernets", json={"name": "tiny", "checkpoint_path": str(artifacts["checkpoint"]),
                                        "data_path": str(artifacts["data"])}).json()
    base = {"supernet_id": sn["id"], "hardware_ids": [hid], "population": 4, "generations": 1}
    waiting = c.post("/v1/searches", json={**base, "missing_units": "wait"}).json()["id"]
    failing = c.post("/v1/searches", json={**base, "missing_units": "fail"}).json()["id"]
    worker = service.worker()
    failed = wait_search(c, failing)
    assert failed["status"] == "failed" and "latency units not measured" in failed["error"]
    total = c.get(f"/v1/hardware/{hid}").json()["coverage"]["total"]
    assert failed["error"].startswith(f"{total} latency units")
    note = wait_for(lambda: c.get(f"/v1/searches/{waiting}").json()["progress"]["note"], 60, 0.3, "a note")
    assert note.startswith("waiting:") and c.get(f"/v1/searches/{waiting}").json()["status"] == "queued"
    assert c.post(f"/v1/searches/{waiting}/cancel").json()["status"] == "cancelled"
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(60) == 0


def _check_mobile_reference(c: httpx.Client, ref: dict[str, Any], hid: int, artifacts: dict[str, Path]) -> None:
    import torch

    from tracking.checkpoint import load_supernet
    from tracking.space import LIGHTTRACK_MOBILE, lighttrack_mobile
    from tracking.validate import ValidationScorer

    assert ref["name"] == "LightTrack-Mobile" and ref["lighttrack"] == LIGHTTRACK_MOBILE
    assert ref["architecture_id"] == lighttrack_mobile().canonical_id()
    torch.set_num_threads(1)
    net, _ = load_supernet(str(artifacts["checkpoint"]))  # the worker's settings: service_env
    direct = ValidationScorer(net, artifacts["data"], "pairs", n_pairs=8, bn_batches=1, bn_batch_size=4)
    scored = direct.score(lighttrack_mobile())
    assert abs(ref["score"] - scored["score"]) < 1e-6 and abs(ref["score_se"] - scored["score_se"]) < 1e-6
    predicted = c.post(f"/v1/hardware/{hid}/latency-table/predict",
                       json={"architectures": [LIGHTTRACK_MOBILE]}).json()["predictions"][0]
    assert abs(predicted["latency_ms"] - ref["latency_ms"]) < 1e-9
