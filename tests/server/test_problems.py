"""Error answers as contracts, against a live server on SQLite and PostgreSQL: every error status
the app produces comes back as ``application/problem+json`` with a ProblemDetails body, and
another team's resources are 404 wherever they are named (path, query or request body)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from tests.server.conftest import Service, register_hardware
from tests.server.test_api import assert_problem

ARCH = "back_04502514044521042540+cls_211000022+reg_100000111_ops_32"  # LightTrack-Mobile


def _team(service: Service, who: str) -> httpx.Client:
    return service.team(f"{who}-{uuid.uuid4().hex[:8]}")


def _supernet(c: httpx.Client, artifacts: dict[str, Path]) -> dict[str, Any]:
    r = c.post("/v1/supernets", json={"name": "sn", "checkpoint_path": str(artifacts["checkpoint"]),
                                       "data_path": str(artifacts["data"])})
    assert r.status_code == 201, r.text
    return r.json()


def test_every_error_status_is_problem_json(service: Service, artifacts: dict[str, Path]) -> None:
    c = _team(service, "problems")
    hw = register_hardware(c, "p-cpu")
    checks = {
        400: (c.get("/v1/hardware", params={"page_token": "bm90LWEtdG9rZW4"}), "page_token"),
        401: (httpx.get(f"{service.url}/v1/me"), None),
        404: (c.get("/v1/searches/2147483647"), None),
        405: (c.delete("/v1/me"), None),
        409: (c.post("/v1/hardware", json={"name": "p-cpu", "kind": "cpu"}), "name"),
        415: (c.post("/v1/supernets", content=b"x", headers={"Content-Type": "text/plain"}), None),
        422: (c.post(f"/v1/hardware/{hw['id']}/agent-tokens", json={"name": "a\u0000b"}), "name"),
    }
    for status, (r, field) in checks.items():
        body = assert_problem(r, status, field if field is not None else "__any__")
        assert body["type"].startswith("https://lutnas.dev/problems/") and body["title"], body
    # no path route, ids past the INTEGER range, bodies that are not text, lone surrogates
    assert_problem(c.get("/v1/nothing-here"), 404)
    assert_problem(c.get("/v1/hardware/2147483648"), 422, "hardware_id")
    assert_problem(c.get("/v1/pareto", params={"supernet_id": 10**30, "hardware_id": 1}), 422, "supernet_id")
    assert_problem(c.post("/v1/hardware", content=b"\xff\xfe\x00", headers={"Content-Type": "application/json"}), 422)
    assert_problem(c.post("/v1/hardware", content=b'{"name": "x\\ud800", "kind": "cpu"}',
                          headers={"Content-Type": "application/json"}), 422, "name")
    # targets the agent cannot measure (it runs onnxruntime on fp32 or int8 units) are refused at
    # registration, naming the field, rather than served units of another runtime; nothing is stored
    for runtime, field in (({"backend": "torch"}, "runtime.backend"), ({"precision": "fp16"}, "runtime.precision")):
        assert_problem(c.post("/v1/hardware", json={"name": "unmeasurable", "kind": "cpu", "runtime": runtime}),
                       422, field)
    assert "unmeasurable" not in {h["name"] for h in c.get("/v1/hardware").json()["items"]}


def test_another_teams_resources_are_404(service: Service, artifacts: dict[str, Path]) -> None:
    alice, bob = _team(service, "alice"), _team(service, "bob")
    a_hw, b_hw = register_hardware(alice, "a-cpu"), register_hardware(bob, "b-cpu")
    a_sn, b_sn = _supernet(alice, artifacts), _supernet(bob, artifacts)
    r = alice.post("/v1/searches", json={"supernet_id": a_sn["id"], "hardware_ids": [a_hw["id"]],
                                         "population": 4, "generations": 1})
    assert r.status_code == 202, r.text
    search = r.json()["id"]
    arch = _stored_result(service, search, a_hw["id"])  # as a finished search leaves it

    # submitting with another team's supernet or hardware ids
    base = {"population": 4, "generations": 1}
    assert_problem(bob.post("/v1/searches", json={**base, "supernet_id": a_sn["id"], "hardware_ids": [b_hw["id"]]}),
                   404, "supernet_id")
    assert_problem(bob.post("/v1/searches", json={**base, "supernet_id": b_sn["id"],
                                                  "hardware_ids": [b_hw["id"], a_hw["id"]]}), 404, "hardware_ids.1")
    # cancelling, reading or exporting another team's search
    assert_problem(bob.post(f"/v1/searches/{search}/cancel"), 404)
    for path in (f"/v1/searches/{search}", f"/v1/searches/{search}/results", f"/v1/searches/{search}/pareto",
                 f"/v1/architectures/{arch}", f"/v1/architectures/{arch}/export"):
        assert_problem(bob.get(path), 404)
    assert_problem(bob.get(f"/v1/architectures/{arch}/export", params={"format": "onnx", "supernet_id": a_sn["id"]}),
                   404)
    assert_problem(bob.get("/v1/pareto", params={"supernet_id": a_sn["id"], "hardware_id": b_hw["id"]}), 404)
    # ... while its owner still sees all of it, untouched
    assert alice.get(f"/v1/searches/{search}").json()["status"] == "queued"
    assert alice.get(f"/v1/architectures/{arch}/export").text.strip() == ARCH
    assert alice.post(f"/v1/searches/{search}/cancel").json()["status"] == "cancelled"


def _stored_result(service: Service, search_id: int, hardware_id: int) -> str:
    """One ranked result of ``search_id``, written as the worker writes it (no worker runs here)."""
    import server.models as m
    from tracking.space import Architecture, SearchSpace

    arch = Architecture.parse(ARCH, SearchSpace.paper())
    engine = create_engine(service.env["LUTNAS_DATABASE_URL"])
    try:
        with Session(engine) as s:
            if s.get(m.ArchitectureRow, arch.canonical_id()) is None:
                s.add(m.ArchitectureRow(id=arch.canonical_id(), lighttrack=arch.to_string(), flops=None, params=None))
            s.add(m.SearchResult(search_id=search_id, rank=1, arch_id=arch.canonical_id(), score=0.5,
                                 latency_ms={str(hardware_id): 5.0}, feasible=True))
            s.commit()
    finally:
        engine.dispose()
    return arch.canonical_id()
