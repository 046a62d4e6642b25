"""Faults over real processes (uvicorn, ``lutnas worker``, ``lutnas-agent``, PostgreSQL), SIGKILL
included: what survives, what is redone, and what is not done twice.

- a worker killed in the MIDDLE of a generation resumes from its last saved generation: the
  result equals an uninterrupted run on a separate score cache, and the generations finished
  before the kill are not scored again (the score-cache counts say so); a repeat of the search is
  answered entirely from the cache (cache_hits = evaluated); a search waiting for latency units
  gives up at its deadline with a reason;
- an agent killed mid-lease: its short lease (kept alive by heartbeats while it lived) runs out,
  a new agent completes the table with exactly one entry per unit, saying what it waits for;
- the API server killed and restarted during a search loses nothing, and ``lutnas search watch``
  rides out the restart saying it retries; the per-team queued-search limit; key rotation and
  revocation from the admin CLI;
- a PostgreSQL restart during a search (a private throwaway cluster, never the shared one).

Scores and latencies are real, but the latency tables of the worker tests are filled through the
agent API with synthetic measurements (deterministic per unit): those tests are about the worker.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from tests.server.conftest import (
    BIN,
    Service,
    agent_token,
    free_port,
    register_hardware,
    service_env,
    wait_for,
)
from tests.server.test_flow import all_results, coverage, wait_search

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]
SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
FAST = ("--min-time", "0.01", "--max-time", "0.03")
# Cheaper scoring for these workers (2 pairs, no BN recalibration: ~0.7 s an architecture here):
# the tests are about what is scored when, and every supernet they score is their own.
QUICK_SCORES = {"LUTNAS_SCORER_PAIRS": "2", "LUTNAS_SCORER_BN_BATCHES": "0", "LUTNAS_EVAL_BATCH_SIZE": "2"}


def synthetic_ms(key: str) -> float:
    """fill_table's timing of a unit: 0.05-1.05 ms, fixed per unit key."""
    return 0.05 + int(hashlib.sha256(key.encode()).hexdigest()[:6], 16) % 1000 / 1000


def fill_table(url: str, token: str, overhead_ms: float | None = None) -> int:
    """Measure every unit of a target through the agent API with synthetic timings (0.05-1.05 ms,
    fixed per unit key; the per-run overhead ``overhead_ms`` when given); returns the number of units."""
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=120) as a:
        lease = a.post("/v1/agent/leases", json={"max_units": 256}).json()
        results = []
        for unit in lease["units"]:
            ms = synthetic_ms(unit["key"])
            if overhead_ms is not None and unit["key"] == "overhead:empty":
                ms = overhead_ms
            results.append({"unit_key": unit["key"], "median_ms": ms, "p10_ms": ms * 0.9, "p90_ms": ms * 1.1,
                            "iqr_ms": ms * 0.1, "count": 10})
        r = a.post("/v1/agent/results", json={"lease_id": lease["lease_id"], "results": results})
        assert r.status_code == 200 and r.json()["stored"] == len(results), r.text
        assert a.post("/v1/agent/leases", json={"max_units": 8}).json()["remaining"] == 0
    return len(results)


def score_rows(database_url: str, supernet_id: int) -> int:
    from server.db import create_engine_for
    from server.models import ScoreCache

    engine = create_engine_for(database_url)
    try:
        with engine.connect() as conn:
            return int(conn.scalar(select(func.count()).where(ScoreCache.supernet_id == supernet_id)) or 0)
    finally:
        engine.dispose()


def register_supernet(c: httpx.Client, name: str, artifacts: dict[str, Path]) -> int:
    r = c.post("/v1/supernets", json={"name": name, "checkpoint_path": str(artifacts["checkpoint"]),
                                       "data_path": str(artifacts["data"])})
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def comparable(results: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(x["rank"], x["architecture_id"], x["score"], x["score_se"], x["latency_ms"]) for x in results]


@SQLITE_ONLY
def test_worker_killed_mid_generation_resumes_without_rescoring(service: Service, database_url: str,
                                                                 artifacts: dict[str, Path]) -> None:
    c = service.team("faults-worker")
    hid = register_hardware(c, "synthetic-cpu")["id"]
    fill_table(service.url, agent_token(c, hid))
    killed_sn, reference_sn = (register_supernet(c, n, artifacts) for n in ("killed", "reference"))
    # scoring batches of 2 in generations of 4: a kill lands between the batches of one generation
    worker = service.spawn([str(BIN / "lutnas"), "worker"], "worker", **QUICK_SCORES)

    # A search on a target no agent measures gives up at its deadline, saying why.
    idle_hw = register_hardware(c, "no-agent")["id"]
    waiting = c.post("/v1/searches", json={"supernet_id": killed_sn, "hardware_ids": [idle_hw], "population": 4,
                                           "generations": 1, "unit_wait_deadline_s": 2}).json()["id"]
    gave_up = wait_search(c, waiting, 120)
    assert gave_up["status"] == "failed" and gave_up["error"].startswith("gave up after waiting"), gave_up
    assert "latency units not measured yet" in gave_up["error"] and "lutnas-agent" in gave_up["error"]

    request = {"hardware_ids": [hid], "population": 4, "generations": 2, "seed": 5, "mode": "pairs"}
    sid = c.post("/v1/searches", json={**request, "supernet_id": killed_sn}).json()["id"]

    def mid_generation() -> tuple[int, int] | None:
        rows = score_rows(database_url, killed_sn)  # before the progress: a later save only raises it
        p = c.get(f"/v1/searches/{sid}").json()["progress"]
        return (p["evaluated"], rows) if p["generation"] >= 1 and rows > p["evaluated"] else None

    saved_evaluated, rows_seen = wait_for(mid_generation, 300, 0.05, "scores of a generation after the first")
    worker.send_signal(signal.SIGKILL)
    worker.wait(30)
    assert saved_evaluated >= request["population"] and rows_seen < saved_evaluated + request["population"]
    assert c.get(f"/v1/searches/{sid}").json()["status"] == "running"  # until its heartbeat times out
    service.spawn([str(BIN / "lutnas"), "worker"], "worker", **QUICK_SCORES)
    resumed = wait_search(c, sid, 300)
    assert resumed["status"] == "succeeded", resumed
    reference = wait_search(c, c.post("/v1/searches", json={**request, "supernet_id": reference_sn}).json()["id"], 300)
    assert reference["status"] == "succeeded", reference

    # identical result to the uninterrupted run, which had a score cache of its own
    assert comparable(all_results(c, sid)) == comparable(all_results(c, reference["id"]))
    assert reference["progress"]["cache_hits"] == 0
    assert reference["progress"]["scored"] == reference["progress"]["evaluated"]
    # The resumed run took from the cache only the scores of the generation the kill interrupted
    # (at least the batch seen stored); everything saved before the kill was neither scored nor
    # looked up again (a restart from scratch would have hit the cache >= saved_evaluated times).
    p = resumed["progress"]
    assert p["evaluated"] == reference["progress"]["evaluated"]
    assert p["scored"] + p["cache_hits"] == p["evaluated"]
    assert rows_seen - saved_evaluated <= p["cache_hits"] < request["population"] <= saved_evaluated

    # The same search again is answered entirely from the score cache, and says so.
    again = wait_search(c, c.post("/v1/searches", json={**request, "supernet_id": killed_sn}).json()["id"], 300)
    assert again["status"] == "succeeded"
    assert again["progress"]["cache_hits"] == again["progress"]["evaluated"] and again["progress"]["scored"] == 0
    assert comparable(all_results(c, again["id"])) == comparable(all_results(c, sid))


@SQLITE_ONLY
def test_agent_killed_mid_lease_then_a_new_agent_completes_the_table(service: Service) -> None:
    c = service.team("faults-agent")
    hid = register_hardware(c, "agent-cpu")["id"]
    token = agent_token(c, hid)
    total = coverage(c, hid)["total"]
    # Export every unit's ONNX file first (the session's unit cache; later tests reuse it): on a busy
    # host the exports can hold the server up long enough to starve the heartbeats measured below.
    with httpx.Client(base_url=service.url, headers={"Authorization": f"Bearer {token}"}, timeout=300) as warm:
        lease = warm.post("/v1/agent/leases", json={"max_units": 256, "lease_seconds": 1}).json()
        for unit in lease["units"]:
            assert warm.get(unit["onnx_url"]).status_code == 200
    time.sleep(1.5)  # that lease runs out
    # lease everything for 10 s at a time, 0.2 s per unit: the heartbeat must keep the lease alive
    first = service.agent(token, "--batch", str(total), "--lease-seconds", "10", "--min-time", "0.2",
                          "--max-time", "0.2", "--idle-wait", "0.5")
    wait_for(lambda: coverage(c, hid)["measured"] >= 2, 300, 0.2, "the first agent's first units")
    time.sleep(12)  # past one lease length: still held, because the agent renews it
    with httpx.Client(base_url=service.url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as probe:
        held = probe.post("/v1/agent/leases", json={"max_units": 256}).json()
    assert held["units"] == [] and held["remaining"] > 0
    first.send_signal(signal.SIGKILL)
    first.wait(30)
    measured = coverage(c, hid)["measured"]
    assert measured < total

    second = service.agent(token, "--exit-when-done", "--batch", "16", "--idle-wait", "0.5", *FAST)
    assert second.wait(300) == 0
    cov = coverage(c, hid)
    assert cov["measured"] == cov["total"] == total
    rows = c.get(f"/v1/hardware/{hid}/latency-table/export.csv").text.strip().splitlines()[1:]
    keys = [row.split(",")[0] for row in rows]
    assert len(keys) == total == len(set(keys))  # exactly one entry per unit
    log = (service.logs / f"agent-{service.procs.index(second)}.log").read_text()
    assert "leased by other agents; waiting" in log  # what it waited for, said once
    assert log.count("leased by other agents") == 1
    assert "table of this target is complete" in log and "exiting (--exit-when-done)" in log


# -- a private API server: killed and restarted ------------------------------------------------------


def _serve(svc: Service, port: int) -> subprocess.Popen[bytes]:
    proc = svc.spawn([str(BIN / "lutnas"), "serve", "--no-worker", "--no-access-log", "--port", str(port)], "server")

    def up() -> bool:
        assert proc.poll() is None, "the server exited"
        try:
            return httpx.get(svc.url + "/healthz", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    wait_for(up, 120, 0.3, "the server")
    return proc


@pytest.fixture()
def private(tmp_path: Path, artifacts: dict[str, Path]) -> Iterator[tuple[Service, int]]:
    """A server of this test only (SQLite), at most 2 queued searches per team."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    artifacts["cache"].mkdir(exist_ok=True)
    (data_dir / "units").symlink_to(artifacts["cache"], target_is_directory=True)
    port = free_port()
    logs = tmp_path / "logs"
    logs.mkdir()
    svc = Service(url=f"http://127.0.0.1:{port}", logs=logs,
                  env=service_env(f"sqlite:///{tmp_path / 'private.db'}", data_dir,
                                  LUTNAS_DATA_ROOTS=str(artifacts["root"]), LUTNAS_MAX_QUEUED_SEARCHES="2",
                                  **QUICK_SCORES))
    try:
        yield svc, port
    finally:
        svc.stop_all()


def test_api_server_killed_and_restarted_during_a_search(private: tuple[Service, int],
                                                         artifacts: dict[str, Path]) -> None:
    svc, port = private
    server = _serve(svc, port)
    c = svc.team("restart")
    hid = register_hardware(c, "cpu")["id"]
    token = agent_token(c, hid)
    fill_table(svc.url, token)
    sn = register_supernet(c, "tiny", artifacts)
    request = {"supernet_id": sn, "hardware_ids": [hid], "population": 4, "generations": 2, "seed": 2}
    sid = c.post("/v1/searches", json=request).json()["id"]
    watch_log = svc.logs / "watch.log"
    with open(watch_log, "wb") as out:
        watch = subprocess.Popen([str(BIN / "lutnas"), "search", "watch", str(sid), "--poll", "0.3"],
                                 env={**svc.env, "LUTNAS_SERVER": svc.url, "LUTNAS_API_KEY": c.headers["authorization"][7:]},
                                 stdout=out, stderr=subprocess.STDOUT)
    svc.worker()
    wait_for(lambda: c.get(f"/v1/searches/{sid}").json()["status"] == "running", 120, 0.2, "the search to start")

    # The queued-search limit (2 here): a third queued search is refused with problem+json.
    queued = [c.post("/v1/searches", json={**request, "seed": s}).json()["id"] for s in (10, 11)]
    refused = c.post("/v1/searches", json={**request, "seed": 12})
    assert refused.status_code == 429 and refused.headers["content-type"] == "application/problem+json"
    assert "2 searches queued" in refused.json()["detail"] and refused.headers["retry-after"]
    for q in queued:
        assert c.post(f"/v1/searches/{q}/cancel").json()["status"] == "cancelled"

    server.send_signal(signal.SIGKILL)
    server.wait(30)
    time.sleep(6)  # away for a while: the worker keeps going, watch and the SDK retry
    _serve(svc, port)
    assert watch.wait(300) == 0, watch_log.read_text()[-3000:]
    said = watch_log.read_text()
    assert "warning:" in said and "retry" in said and "Traceback" not in said
    done = c.get(f"/v1/searches/{sid}").json()
    assert done["status"] == "succeeded" and done["progress"]["generation"] == 2
    results = all_results(c, sid)
    assert len(results) == done["progress"]["evaluated"] and results[0]["rank"] == 1
    assert [s["status"] for s in c.get("/v1/searches").json()["items"]] == ["cancelled", "cancelled", "succeeded"]

    # Key rotation and revocation from the admin CLI, on the server's database.
    env = {**svc.env}
    team_name = c.get("/v1/me").json()["name"]
    rotated = subprocess.run([str(BIN / "lutnas"), "admin", "rotate-key", "--team", team_name], env=env,
                             capture_output=True, text=True, timeout=120)
    assert rotated.returncode == 0, rotated.stderr
    new_key = rotated.stdout.strip().splitlines()[-1]
    assert new_key.startswith("lnt_") and "the old ones are revoked" in rotated.stderr
    with httpx.Client(base_url=svc.url, headers={"Authorization": f"Bearer {new_key}"}, timeout=30) as fresh:
        assert fresh.get(f"/v1/searches/{sid}").json()["status"] == "succeeded"
    # the old key stops working within the server's 5 s key cache
    wait_for(lambda: httpx.get(svc.url + "/v1/me", headers=c.headers, timeout=30).status_code == 401, 30, 0.5,
             "the old key to be refused")
    revoked = subprocess.run([str(BIN / "lutnas"), "admin", "revoke-key", "-"], input=token, env=env,
                             capture_output=True, text=True, timeout=120)
    assert revoked.returncode == 0 and f"agent token of hardware {hid}" in revoked.stdout, revoked.stderr
    r = httpx.post(svc.url + "/v1/agent/leases", json={"max_units": 1}, timeout=30,
                   headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401 and r.headers["content-type"] == "application/problem+json"
    again = subprocess.run([str(BIN / "lutnas"), "admin", "revoke-key", token], env=env, capture_output=True,
                           text=True, timeout=120)
    assert again.returncode == 2 and again.stderr.strip() == "error: no such agent token (already revoked?)"


# -- PostgreSQL restarted during a search ----------------------------------------------------------


def _pg_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    return found[-1].parent if found else None


@pytest.fixture()
def private_postgres() -> Iterator[tuple[str, list[str]]]:
    """A throwaway PostgreSQL cluster (initdb in a temporary folder, its own port); yields its URL
    and the pg_ctl command that controls it. Runs as the postgres user when the tests run as root."""
    bindir = _pg_bin() or (Path(p).parent if (p := shutil.which("pg_ctl")) else None)
    if bindir is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    root = Path(tempfile.mkdtemp(prefix="lutnas-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        as_user = ["runuser", "-u", "postgres", "--"]
        shutil.chown(root, "postgres")
    data, port = root / "data", free_port()
    run = lambda *args: subprocess.run([*as_user, *args], capture_output=True, text=True, timeout=120)  # noqa: E731
    out = run(str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
    assert out.returncode == 0, out.stderr
    ctl = [*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(root / "pg.log"), "-w",
           "-o", f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"]
    assert subprocess.run([*ctl, "start"], capture_output=True, timeout=120).returncode == 0
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres", ctl
    finally:
        subprocess.run([*ctl, "stop", "-m", "immediate"], capture_output=True, timeout=120)
        shutil.rmtree(root, ignore_errors=True)


def test_postgres_restart_during_a_search(private_postgres: tuple[str, list[str]], tmp_path: Path,
                                          artifacts: dict[str, Path]) -> None:
    url, ctl = private_postgres
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    artifacts["cache"].mkdir(exist_ok=True)
    (data_dir / "units").symlink_to(artifacts["cache"], target_is_directory=True)
    port = free_port()
    svc = Service(url=f"http://127.0.0.1:{port}", logs=tmp_path, env=service_env(
        url, data_dir, LUTNAS_DATA_ROOTS=str(artifacts["root"]), **QUICK_SCORES))
    try:
        _serve(svc, port)
        c = svc.team("pg-restart")
        hid = register_hardware(c, "cpu")["id"]
        fill_table(svc.url, agent_token(c, hid))
        sn = register_supernet(c, "tiny", artifacts)
        request = {"supernet_id": sn, "hardware_ids": [hid], "population": 4, "generations": 3, "seed": 4}
        sid = c.post("/v1/searches", json=request).json()["id"]
        svc.worker()
        wait_for(lambda: c.get(f"/v1/searches/{sid}").json()["progress"]["generation"] >= 1, 300, 0.2,
                 "the first generation")
        restarted = subprocess.run([*ctl, "restart", "-m", "fast"], capture_output=True, text=True, timeout=120)
        assert restarted.returncode == 0, restarted.stderr
        done = wait_search(c, sid, 300)  # the API server's pool reconnects (pre-ping); the worker retries
        assert done["status"] == "succeeded", done
        assert done["progress"]["generation"] == 3
        assert done["progress"]["scored"] + done["progress"]["cache_hits"] == done["progress"]["evaluated"]
        assert len(all_results(c, sid)) == done["progress"]["evaluated"]
        # the interrupted run ends exactly as an uninterrupted one (its own score cache)
        other = register_supernet(c, "tiny-again", artifacts)
        ref = wait_search(c, c.post("/v1/searches", json={**request, "supernet_id": other}).json()["id"], 300)
        assert comparable(all_results(c, sid)) == comparable(all_results(c, ref["id"]))
    finally:
        svc.stop_all()
