"""REST behaviour against a live ``lutnas serve`` (real uvicorn on loopback), on SQLite and on
PostgreSQL when reachable: auth and isolation, problem+json errors, pagination, the agent
protocol's leases and idempotent uploads."""

from __future__ import annotations

import io
import itertools
import tarfile
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.server.conftest import Service, agent_token, register_hardware

_n = itertools.count()


def team(service: Service) -> httpx.Client:
    return service.team(f"t{next(_n)}-{time.monotonic_ns() % 10**9}")


def assert_problem(r: httpx.Response, status: int, field: str | None = "__any__") -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert {"type", "title", "status", "detail", "field"} <= set(body)
    assert body["status"] == status and body["detail"]
    assert "Traceback" not in r.text
    if field != "__any__":
        assert body["field"] == field, body
    return body


def test_auth_teams_and_admin(service: Service) -> None:
    assert_problem(httpx.get(service.url + "/v1/me"), 401)
    assert_problem(httpx.get(service.url + "/v1/me", headers={"Authorization": "Bearer lnt_nope"}), 401)
    with httpx.Client(base_url=service.url, headers={"Authorization": "Bearer wrong"}) as bad_admin:
        assert_problem(bad_admin.post("/v1/teams", json={"name": "x"}), 401)
    with service.admin() as admin:
        r = admin.post("/v1/teams", json={"name": "dup-team"})
        assert r.status_code == 201 and r.json()["api_key"].startswith("lnt_")
        assert_problem(admin.post("/v1/teams", json={"name": "dup-team"}), 409, "name")
        assert_problem(admin.post("/v1/teams", json={"name": ""}), 422, "name")
    c = team(service)
    me = c.get("/v1/me").json()
    assert set(me) == {"id", "name"}
    assert httpx.get(service.url + "/healthz").json() == {"status": "ok", "database": "ok"}


def test_hardware_pagination_and_validation(service: Service) -> None:
    c = team(service)
    ids = [register_hardware(c, f"hw{i}")["id"] for i in range(3)]
    first = c.get("/v1/hardware", params={"page_size": 2}).json()
    assert [h["id"] for h in first["items"]] == ids[:2] and first["next_page_token"]
    second = c.get("/v1/hardware", params={"page_size": 2, "page_token": first["next_page_token"]}).json()
    assert [h["id"] for h in second["items"]] == ids[2:] and second["next_page_token"] is None
    hw = c.get(f"/v1/hardware/{ids[0]}").json()
    assert hw["coverage"]["measured"] == 0 and hw["coverage"]["total"] > 60 and hw["space"] == "paper"
    assert_problem(c.get("/v1/hardware", params={"page_token": "garbage!"}), 400, "page_token")
    assert_problem(c.get("/v1/hardware", params={"page_size": 0}), 422, "page_size")
    assert_problem(c.get("/v1/hardware", params={"page_size": 1001}), 422, "page_size")
    assert_problem(c.post("/v1/hardware", json={"name": "x", "kind": "toaster"}), 422, "kind")
    assert_problem(c.post("/v1/hardware", json={"name": "x", "kind": "cpu", "runtime": {"threads": -1}}),
                   422, "runtime.threads")
    assert_problem(c.post("/v1/hardware", json={"name": "hw0", "kind": "cpu"}), 409, "name")
    assert_problem(c.post("/v1/hardware", content=b"{not json", headers={"content-type": "application/json"}), 422)
    assert_problem(c.get("/v1/nothing-here"), 404)
    assert_problem(c.delete("/v1/me"), 405)


def test_other_teams_resources_are_404(service: Service) -> None:
    a, b = team(service), team(service)
    hw = register_hardware(a, "private")["id"]
    for path in (f"/v1/hardware/{hw}", f"/v1/hardware/{hw}/latency-table",
                 f"/v1/hardware/{hw}/latency-table/coverage", f"/v1/hardware/{hw}/latency-table/export.csv"):
        assert_problem(b.get(path), 404)
    assert_problem(b.post(f"/v1/hardware/{hw}/agent-tokens", json={"name": "x"}), 404)
    assert_problem(b.post(f"/v1/hardware/{hw}/latency-table/predict",
                          json={"architectures": ["back_04502514044521042540+cls_211000022+reg_100000111_ops_32"]}), 404)
    assert b.get("/v1/hardware").json()["items"] == []
    assert_problem(b.get("/v1/searches/1"), 404)


def test_agent_token_scope_upload_idempotency_and_errors(service: Service) -> None:
    c = team(service)
    hw = register_hardware(c, "dev")["id"]
    token = agent_token(c, hw)
    agent = httpx.Client(base_url=service.url, headers={"Authorization": f"Bearer {token}"}, timeout=60)
    assert_problem(agent.get("/v1/hardware"), 401)  # an agent token opens only the agent endpoints
    assert_problem(c.post("/v1/agent/leases", json={"max_units": 1}), 401)
    lease = agent.post("/v1/agent/leases", json={"max_units": 2}).json()
    assert len(lease["units"]) == 2
    key = lease["units"][0]["key"]
    result = {"unit_key": key, "median_ms": 1.5, "p10_ms": 1.2, "p90_ms": 2.0, "iqr_ms": 0.3, "count": 40,
              "env": {"cpu": "test"}}
    up = {"lease_id": lease["lease_id"], "results": [result]}
    assert agent.post("/v1/agent/results", json=up).json() == {"stored": 1, "duplicates": 0}
    assert agent.post("/v1/agent/results", json=up).json() == {"stored": 0, "duplicates": 1}
    entries = c.get(f"/v1/hardware/{hw}/latency-table").json()["items"]
    assert [e["unit_key"] for e in entries] == [key] and entries[0]["median_ms"] == 1.5
    assert c.get(f"/v1/hardware/{hw}").json()["coverage"]["measured"] == 1
    csv = c.get(f"/v1/hardware/{hw}/latency-table/export.csv")
    assert csv.headers["content-type"].startswith("text/csv") and csv.text.count("\n") == 2
    # malformed results: 422 problems naming the field, nothing stored
    bad = dict(result, unit_key=lease["units"][1]["key"], p10_ms=5.0)
    assert_problem(agent.post("/v1/agent/results", json={"lease_id": "x", "results": [bad]}), 422, "results.0")
    assert_problem(agent.post("/v1/agent/results", json={"lease_id": "x", "results": [dict(result, count=0)]}),
                   422, "results.0.count")
    assert_problem(agent.post("/v1/agent/results", json={"lease_id": "x", "results": [dict(result, unit_key="nope")]}),
                   422, "results.0.unit_key")
    assert_problem(agent.post("/v1/agent/results", json={"results": []}), 422, "lease_id")
    other_runtime = dict(result, unit_key=lease["units"][1]["key"], env={"provider": "CUDAExecutionProvider"})
    body = assert_problem(agent.post("/v1/agent/results", json={"lease_id": "x", "results": [other_runtime]}),
                          422, "results.0.env.provider")
    assert "CPUExecutionProvider" in body["detail"]
    assert c.get(f"/v1/hardware/{hw}").json()["coverage"]["measured"] == 1
    assert_problem(agent.get("/v1/agent/units/onnx", params={"key": "mbconv:nope"}), 404, "key")
    onnx = agent.get(lease["units"][1]["onnx_url"])
    assert onnx.status_code == 200 and onnx.content[:2] == b"\x08\x08"  # ONNX protobuf: ir_version 8
    assert agent.post("/v1/agent/heartbeat", json={"lease_id": lease["lease_id"]}).status_code == 200
    assert_problem(agent.post("/v1/agent/heartbeat", json={"lease_id": "unknown"}), 404, "lease_id")
    agent.close()


def test_leases_are_atomic_and_expire(service: Service) -> None:
    c = team(service)
    hw = register_hardware(c, "busy")
    total = hw["coverage"]["total"]
    tokens = [agent_token(c, hw["id"], f"a{i}") for i in range(8)]
    leased: list[list[str]] = []
    lock = threading.Lock()
    barrier = threading.Barrier(len(tokens))

    def grab(token: str) -> None:
        with httpx.Client(base_url=service.url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as a:
            barrier.wait()
            for _ in range(3):
                r = a.post("/v1/agent/leases", json={"max_units": 4, "lease_seconds": 2})
                assert r.status_code == 200, r.text
                with lock:
                    leased.append([u["key"] for u in r.json()["units"]])

    threads = [threading.Thread(target=grab, args=(t,)) for t in tokens]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    keys = [k for lease in leased for k in lease]
    assert len(keys) == len(set(keys)), "a unit was handed to two live leases"
    assert len(keys) == min(total, 8 * 3 * 4)
    with httpx.Client(base_url=service.url, headers={"Authorization": f"Bearer {tokens[0]}"}, timeout=60) as a:
        rest = a.post("/v1/agent/leases", json={"max_units": 256, "lease_seconds": 60}).json()["units"]
        assert len(rest) == total - len(keys)
        assert a.post("/v1/agent/leases", json={"max_units": 5}).json()["units"] == []
        time.sleep(2.5)  # the first leases expire: their units return to the pool
        again = a.post("/v1/agent/leases", json={"max_units": 256}).json()["units"]
        assert sorted(u["key"] for u in again) == sorted(keys)


def test_predict_errors(service: Service) -> None:
    c = team(service)
    hw = register_hardware(c, "empty")["id"]
    mobile = "back_04502514044521042540+cls_211000022+reg_100000111_ops_32"
    body = assert_problem(c.post(f"/v1/hardware/{hw}/latency-table/predict",
                                 json={"architectures": [mobile, "back_123"]}), 422, "architectures.1")
    assert "malformed LightTrack string" in body["detail"]
    skip_first = mobile.replace("cls_211000022", "cls_221000022")
    body = assert_problem(c.post(f"/v1/hardware/{hw}/latency-table/predict",
                                 json={"architectures": [skip_first]}), 422, "architectures.0")
    assert body["detail"] == "cls layer 1 cannot be skip"
    body = assert_problem(c.post(f"/v1/hardware/{hw}/latency-table/predict",
                                 json={"architectures": [mobile]}), 409)
    assert body["missing_units"] > 0 and f"{body['missing_units']} units" in body["detail"]
    assert_problem(c.post(f"/v1/hardware/{hw}/latency-table/predict", json={"architectures": []}),
                   422, "architectures")


def test_search_submission_validation(service: Service, artifacts: dict[str, Path]) -> None:
    c = team(service)
    hw = register_hardware(c, "s")["id"]
    sn = c.post("/v1/supernets", json={"name": "sn", "checkpoint_path": str(artifacts["checkpoint"]),
                                        "data_path": str(artifacts["data"])})
    assert sn.status_code == 201, sn.text
    base = {"supernet_id": sn.json()["id"], "hardware_ids": [hw], "population": 4, "generations": 1}
    for change, field in [({"population": 3}, "population"), ({"population": 513}, "population"),
                          ({"generations": 0}, "generations"), ({"generations": 201}, "generations"),
                          ({"objective": "budget", "budget_ms": 0}, "budget_ms"),
                          ({"objective": "budget"}, None), ({"hardware_ids": [2**31]}, "hardware_ids.0"),
                          ({"supernet_id": 0}, "supernet_id"), ({"mode": "x"}, "mode"),
                          ({"missing_units": "maybe"}, "missing_units")]:
        assert_problem(c.post("/v1/searches", json={**base, **change}), 422, field)
    # ids in range that name nothing this team owns: 404, naming the field
    for change, field in [({"hardware_ids": [10**6]}, "hardware_ids.0"), ({"supernet_id": 10**6}, "supernet_id")]:
        assert_problem(c.post("/v1/searches", json={**base, **change}), 404, field)
    assert_problem(c.post("/v1/supernets", json={"name": "x", "checkpoint_path": "/nonexistent.pt",
                                                  "data_path": str(artifacts["data"])}), 422, "checkpoint_path")
    assert_problem(c.post("/v1/supernets", json={"name": "x", "checkpoint_path": str(artifacts["checkpoint"]),
                                                  "data_path": "/nonexistent"}), 422, "data_path")
    # fail-fast on missing units: the job fails with a message naming how many are missing
    r = c.post("/v1/searches", json={**base, "missing_units": "fail"})
    assert r.status_code == 202 and r.headers["location"] == f"/v1/searches/{r.json()['id']}"
    assert r.json()["status"] == "queued"
    listed = c.get("/v1/searches", params={"page_size": 1}).json()
    assert listed["items"][0]["id"] == r.json()["id"]
    cancelled = c.post(f"/v1/searches/{r.json()['id']}/cancel").json()
    assert cancelled["status"] == "cancelled" and cancelled["finished_at"]


def _tar_gz(folder: Path) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(folder, arcname="val")
    return buf.getvalue()


def test_supernet_upload_and_size_limit(service: Service, artifacts: dict[str, Path]) -> None:
    c = team(service)
    files = {"checkpoint": ("supernet.pt", artifacts["checkpoint"].read_bytes()),
             "data": ("val.tar.gz", _tar_gz(artifacts["data"]))}
    r = c.post("/v1/supernets", data={"name": "uploaded"}, files=files)
    assert r.status_code == 201, r.text
    assert r.json()["space"]["output_stages"] == [2, 3]
    assert c.get(f"/v1/supernets/{r.json()['id']}").json()["name"] == "uploaded"
    over = int(float(service.env["LUTNAS_MAX_UPLOAD_MB"]) * 1024 * 1024) + 1024
    r = c.post("/v1/supernets", data={"name": "big"}, files={"checkpoint": ("x.pt", b"\0" * over),
                                                              "data": ("d.tar.gz", b"\0")})
    assert_problem(r, 413)
    r = c.post("/v1/supernets", data={"name": "broken"}, files={"checkpoint": ("x.pt", b"not a checkpoint"),
                                                                 "data": files["data"]})
    assert_problem(r, 422, "checkpoint")
    assert [s["name"] for s in c.get("/v1/supernets").json()["items"]] == ["uploaded"]


@pytest.mark.parametrize("path", ["/v1/searches/1/results", "/v1/architectures/0123456789abcdef"])
def test_unknown_resources_are_problems(service: Service, path: str) -> None:
    assert_problem(team(service).get(path), 404)
