"""API latency with many stored results, and agent upload throughput, on SQLite and PostgreSQL.

Starts a real ``lutnas serve --no-worker --workers N`` (uvicorn) per database and process count
(``--workers 1 2`` by default), stores one finished search
with ``--n`` (default 100k) evaluated architectures directly in the database (bulk insert), then
prints p50/p99 latency of the results and Pareto endpoints with 1 and 16 concurrent clients, and
the rate of agent result uploads (one result per request, as ``lutnas-agent`` sends them).

``--mixed`` runs everything at once instead, for ``--duration`` seconds (default 60): 16 clients
on the read endpoints, 4 agents leasing, uploading one result per request and heartbeating (a new
hardware target when a table is complete), 2 users submitting searches and polling them (then
cancelling: no job worker runs, so its CPU is not in the figures); it prints p50/p99 per
endpoint and the number of errors (any unexpected status or transport error).

    python benchmarks/bench_api.py [--n 100000] [--requests 400] [--databases sqlite,postgresql] [--workers 1 2]
                                    [--client aiohttp|httpx] [--mixed [--duration 60]]

Writes what it prints to benchmarks/results/bench_api/DATE.txt (and the run's variant to DATE.json).

PostgreSQL: a throwaway database on $LUTNAS_BENCH_PG (default
postgresql+psycopg://postgres@127.0.0.1:5432/postgres), dropped afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import harness  # same folder: where results are written
import httpx
import numpy as np
from sqlalchemy import insert

from search.pareto import front_2d
from server.db import create_engine_for
from server.migrate import upgrade
from server.models import ArchitectureRow, FrontPoint, Hardware, Search, SearchResult, Supernet
from server.pagination import encode_token
from tracking.space import sample_many

ADMIN = "bench-admin-token"
PG = os.environ.get("LUTNAS_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fill(url: str, team_id: int, hardware_id: int, n: int, seed: int = 0) -> tuple[int, int]:
    """One succeeded search with ``n`` ranked results and its front; (search id, supernet id)."""
    engine = create_engine_for(url)
    rng = np.random.default_rng(seed)
    archs = sample_many(n, seed)
    ids = [a.canonical_id() for a in archs]
    uniq = {}
    for cid, a in zip(ids, archs, strict=True):
        uniq.setdefault(cid, a.to_string())
    scores = rng.uniform(0.2, 0.8, n)
    lat = rng.uniform(5.0, 40.0, n)
    with engine.begin() as conn:
        sn = conn.execute(insert(Supernet).values(team_id=team_id, name="bench", checkpoint_path="-", data_path="-",
                                                  space={"output_stages": [2, 3]}).returning(Supernet.id)).scalar_one()
        sid = conn.execute(insert(Search).values(
            team_id=team_id, supernet_id=sn, status="succeeded", request={"hardware_ids": [hardware_id]},
            progress={"generation": 1, "generations": 1, "fraction": 1.0}, summary={"reference_ms": {
                str(hardware_id): 45.0}})).inserted_primary_key[0]
        rows = [{"id": k, "lighttrack": v, "flops": 300_000_000, "params": 1_000_000} for k, v in uniq.items()]
        for i in range(0, len(rows), 5000):
            conn.execute(insert(ArchitectureRow), rows[i:i + 5000])
        order = np.argsort(-scores, kind="stable")
        res = [{"search_id": sid, "rank": r + 1, "arch_id": ids[j], "score": float(scores[j]),
                "latency_ms": {str(hardware_id): float(lat[j])}, "feasible": True} for r, j in enumerate(order)]
        for i in range(0, len(res), 5000):
            conn.execute(insert(SearchResult), res[i:i + 5000])
        front = front_2d([(ids[j], float(scores[j]), float(lat[j])) for j in range(n)])
        conn.execute(insert(FrontPoint), [{"search_id": sid, "hardware_id": hardware_id, "arch_id": a, "score": s,
                                           "latency_ms": m} for a, s, m in front])
    if engine.dialect.name == "postgresql":
        # Fresh statistics, as after any bulk load: until autovacuum gets to it (up to a minute),
        # the planner can pick a full join over the new rows for a page read (40 ms, measured).
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("ANALYZE")
    engine.dispose()
    return sid, sn


def timed(url: str, key: str, paths: Callable[[], str], clients: int, requests: int,
          client_lib: str = "aiohttp") -> np.ndarray:
    """Latencies (ms) of ``requests`` GETs from ``clients`` concurrent closed-loop clients, each
    with its own keep-alive connection. One asyncio loop drives them all: threads would add the
    load generator's own GIL contention to every measured latency. The generator shares the
    machine's cores with the server, so its own CPU per request inflates every figure: aiohttp's
    client costs a fraction of httpx's (``--client`` picks one)."""
    per = max(1, requests // clients)
    headers = {"Authorization": f"Bearer {key}"}

    async def httpx_client() -> list[float]:
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as c:
            await c.get("/v1/me")  # connect
            mine = []
            for _ in range(per):
                t0 = time.perf_counter()
                r = await c.get(paths())
                mine.append((time.perf_counter() - t0) * 1000)
                assert r.status_code == 200, r.text
            return mine

    async def aiohttp_client() -> list[float]:
        import aiohttp

        conn = aiohttp.TCPConnector(limit=1)  # one keep-alive connection per client
        async with aiohttp.ClientSession(url, headers=headers, connector=conn,
                                         timeout=aiohttp.ClientTimeout(total=60)) as c:
            async with c.get("/v1/me") as r:  # connect
                await r.read()
            mine = []
            for _ in range(per):
                t0 = time.perf_counter()
                async with c.get(paths()) as r:
                    body = await r.read()
                mine.append((time.perf_counter() - t0) * 1000)
                assert r.status == 200, body[:500]
            return mine

    one = aiohttp_client if client_lib == "aiohttp" else httpx_client

    async def run() -> list[list[float]]:
        return await asyncio.gather(*(one() for _ in range(clients)))

    return np.array([ms for mine in asyncio.run(run()) for ms in mine])


def uploads_per_second(url: str, client: httpx.Client, clients: int, targets: int) -> float:
    """Register ``targets`` hardware targets and upload every unit of each, one per request."""
    jobs = []
    for _ in range(targets):
        hw = client.post("/v1/hardware", json={"name": f"up-{secrets.token_hex(4)}", "kind": "cpu"}).json()
        tok = client.post(f"/v1/hardware/{hw['id']}/agent-tokens", json={"name": "b"}).json()["token"]
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {tok}"}, timeout=60) as a:
            lease = a.post("/v1/agent/leases", json={"max_units": 256}).json()
        jobs += [(tok, lease["lease_id"], u["key"]) for u in lease["units"]]
    random.Random(0).shuffle(jobs)
    chunks = [jobs[i::clients] for i in range(clients)]

    def run(chunk: list[tuple[str, str, str]]) -> None:
        with httpx.Client(base_url=url, timeout=60) as c:
            for tok, lease_id, key in chunk:
                r = c.post("/v1/agent/results", headers={"Authorization": f"Bearer {tok}"}, json={
                    "lease_id": lease_id, "results": [{"unit_key": key, "median_ms": 1.0, "p10_ms": 0.9,
                                                       "p90_ms": 1.2, "iqr_ms": 0.1, "count": 50, "env": {}}]})
                assert r.status_code == 200 and r.json()["stored"] == 1, r.text

    threads = [threading.Thread(target=run, args=(ch,)) for ch in chunks]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return len(jobs) / (time.perf_counter() - t0)


@contextmanager
def serving(url: str, workers: int) -> Iterator[str]:
    """A migrated database and ``lutnas serve --no-worker --workers N`` on it; yields the base URL."""
    engine = create_engine_for(url)
    upgrade(engine)
    engine.dispose()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LUTNAS_")}
    env.update({"LUTNAS_DATABASE_URL": url, "LUTNAS_ADMIN_TOKEN": ADMIN,
                "LUTNAS_DATA_DIR": tempfile.mkdtemp(prefix="lutnas-bench-")})
    log = open(Path(env["LUTNAS_DATA_DIR"]) / "server.log", "wb")  # noqa: SIM115
    server = subprocess.Popen([str(Path(sys.executable).parent / "lutnas"), "serve", "--no-worker", "--workers",
                               str(workers), "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(240):
            try:
                if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        yield base
    finally:
        server.terminate()
        server.wait(30)
        log.close()


def bench(name: str, url: str, n: int, requests: int, workers: int = 1, client_lib: str = "aiohttp") -> None:
    with serving(url, workers) as base:
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {ADMIN}"}) as admin:
            team = admin.post("/v1/teams", json={"name": f"bench-{secrets.token_hex(3)}"}).json()
        key = team["api_key"]
        client = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=60)
        hw = client.post("/v1/hardware", json={"name": "bench-cpu", "kind": "cpu"}).json()
        engine = create_engine_for(url)
        with engine.connect() as conn:
            team_id = conn.execute(Hardware.__table__.select().where(Hardware.id == hw["id"])).one().team_id
        engine.dispose()
        t0 = time.perf_counter()
        sid, sn = fill(url, team_id, hw["id"], n)
        name = f"{name} x{workers}"
        print(f"[{name}] stored {n} evaluated architectures in {time.perf_counter() - t0:.1f} s", flush=True)
        rng = random.Random(0)
        endpoints: dict[str, Callable[[], str]] = {
            "search pareto": lambda: f"/v1/searches/{sid}/pareto?hardware_id={hw['id']}",
            "team pareto": lambda: f"/v1/pareto?supernet_id={sn}&hardware_id={hw['id']}",
            "results page 1": lambda: f"/v1/searches/{sid}/results?page_size=50",
            "results deep page": lambda: (f"/v1/searches/{sid}/results?page_size=50&page_token="
                                          f"{encode_token(rng.randrange(n - 50))}"),
        }
        for label, paths in endpoints.items():
            for clients in (1, 16):
                ms = timed(base, key, paths, clients, requests, client_lib)
                print(f"[{name}] {label:18s} clients={clients:2d}  p50 {np.percentile(ms, 50):7.1f} ms  "
                      f"p99 {np.percentile(ms, 99):7.1f} ms  ({len(ms)} requests)", flush=True)
        for clients in (1, 16):
            rate = uploads_per_second(base, client, clients, targets=4)
            print(f"[{name}] agent result uploads clients={clients:2d}  {rate:7.1f} /s", flush=True)
        client.close()


def mixed(name: str, url: str, n: int, duration: float, workers: int) -> int:
    """The mixed load of ``--mixed`` for ``duration`` seconds; prints p50/p99 per endpoint and
    returns the number of errors."""
    import aiohttp

    with serving(url, workers) as base:
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=60) as admin:
            key = admin.post("/v1/teams", json={"name": f"mixed-{secrets.token_hex(3)}"}).json()["api_key"]
        auth = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=base, headers=auth, timeout=60) as c:
            hw = c.post("/v1/hardware", json={"name": "read-cpu", "kind": "cpu"}).json()
        engine = create_engine_for(url)
        with engine.connect() as conn:
            team_id = conn.execute(Hardware.__table__.select().where(Hardware.id == hw["id"])).one().team_id
        engine.dispose()
        sid, sn = fill(url, team_id, hw["id"], n)
        name = f"{name} x{workers}"
        print(f"[{name}] mixed load for {duration:g} s over a search of {n} stored architectures", flush=True)
        rng = random.Random(0)
        reads: list[tuple[str, Callable[[], str]]] = [
            ("GET search pareto", lambda: f"/v1/searches/{sid}/pareto?hardware_id={hw['id']}"),
            ("GET team pareto", lambda: f"/v1/pareto?supernet_id={sn}&hardware_id={hw['id']}"),
            ("GET results page 1", lambda: f"/v1/searches/{sid}/results?page_size=50"),
            ("GET results deep page", lambda: f"/v1/searches/{sid}/results?page_size=50&page_token="
                                              f"{encode_token(rng.randrange(max(n - 50, 1)))}"),
            ("GET search", lambda: f"/v1/searches/{sid}"),
            ("GET hardware list", lambda: "/v1/hardware"),
        ]
        times: dict[str, list[float]] = {}
        errors: list[str] = []
        end = time.monotonic() + duration

        async def call(session: aiohttp.ClientSession, label: str, method: str, path: str,
                       ok: tuple[int, ...] = (200,), **kw: object) -> object:
            t0 = time.perf_counter()
            try:
                async with session.request(method, path, **kw) as r:  # type: ignore[arg-type]
                    body = await r.read()
                    status = r.status
            except (TimeoutError, aiohttp.ClientError) as e:
                errors.append(f"{label}: {type(e).__name__} {e}")
                return None
            times.setdefault(label, []).append((time.perf_counter() - t0) * 1000)
            if status not in ok:
                errors.append(f"{label}: {status} {body[:200]!r}")
                return None
            import json

            return json.loads(body) if body else {}

        def session(headers: dict[str, str]) -> aiohttp.ClientSession:
            return aiohttp.ClientSession(base, headers=headers, connector=aiohttp.TCPConnector(limit=1),
                                         timeout=aiohttp.ClientTimeout(total=120))

        async def reader(i: int) -> None:
            async with session(auth) as s:
                j = i
                while time.monotonic() < end:
                    label, path = reads[j % len(reads)]
                    j += 1
                    await call(s, label, "GET", path())

        async def agent(i: int) -> None:
            async with session(auth) as team:
                while time.monotonic() < end:  # one hardware target per table this agent completes
                    target = await call(team, "POST hardware", "POST", "/v1/hardware", ok=(201,),
                                        json={"name": f"agent{i}-{secrets.token_hex(4)}", "kind": "cpu"})
                    tok = await call(team, "POST agent-tokens", "POST", f"/v1/hardware/{target['id']}/agent-tokens",
                                     ok=(201,), json={"name": "bench"}) if target else None
                    if not tok:
                        await asyncio.sleep(1)
                        continue
                    async with session({"Authorization": f"Bearer {tok['token']}"}) as a:
                        while time.monotonic() < end:
                            lease = await call(a, "POST leases", "POST", "/v1/agent/leases",
                                               json={"max_units": 8, "lease_seconds": 30})
                            if not lease or not lease["units"]:
                                break
                            await call(a, "POST heartbeat", "POST", "/v1/agent/heartbeat",
                                       json={"lease_id": lease["lease_id"]})
                            for u in lease["units"]:
                                ms = 0.1 + rng.random()
                                await call(a, "POST results", "POST", "/v1/agent/results", json={
                                    "lease_id": lease["lease_id"], "results": [{
                                        "unit_key": u["key"], "median_ms": ms, "p10_ms": ms * 0.9, "p90_ms": ms * 1.1,
                                        "iqr_ms": ms * 0.1, "count": 50, "env": {}}]})

        async def searcher(i: int) -> None:
            async with session(auth) as s:
                seed = i * 100_000
                while time.monotonic() < end:
                    seed += 1
                    job = await call(s, "POST searches", "POST", "/v1/searches", ok=(202,), json={
                        "supernet_id": sn, "hardware_ids": [hw["id"]], "population": 8, "generations": 2,
                        "seed": seed})
                    if not job:
                        await asyncio.sleep(1)
                        continue
                    for _ in range(10):
                        await call(s, "GET search (poll)", "GET", f"/v1/searches/{job['id']}")
                        await asyncio.sleep(0.5)
                    await call(s, "POST cancel", "POST", f"/v1/searches/{job['id']}/cancel")

        async def run() -> None:
            await asyncio.gather(*(reader(i) for i in range(16)), *(agent(i) for i in range(4)),
                                 *(searcher(i) for i in range(2)))

        t0 = time.perf_counter()
        asyncio.run(run())
        wall = time.perf_counter() - t0
        total = sum(len(v) for v in times.values())
        for label in sorted(times):
            ms = np.array(times[label])
            print(f"[{name}] {label:22s} p50 {np.percentile(ms, 50):7.1f} ms  p99 {np.percentile(ms, 99):7.1f} ms  "
                  f"({len(ms)} requests)", flush=True)
        print(f"[{name}] mixed: {total} requests in {wall:.0f} s ({total / wall:.0f}/s), {len(errors)} errors",
              flush=True)
        for e in errors[:10]:
            print(f"[{name}]   error: {e}", flush=True)
        return len(errors)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=100_000, help="stored evaluated architectures")
    p.add_argument("--requests", type=int, default=400, help="requests per endpoint and concurrency")
    p.add_argument("--databases", default="sqlite,postgresql")
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="API processes (lutnas serve --workers)")
    p.add_argument("--client", choices=["aiohttp", "httpx"], default="aiohttp",
                   help="load generator's HTTP client (it shares the cores with the server)")
    p.add_argument("--mixed", action="store_true", help="the mixed load (reads, agents, searches at once)")
    p.add_argument("--duration", type=float, default=60.0, help="seconds of mixed load per database")
    harness.add_arguments(p)
    a = p.parse_args()
    printed = harness.keep_stdout()
    errors = 0
    for db, workers in [(db, w) for db in a.databases.split(",") for w in a.workers]:
        with bench_database(db, "lutnas_bench") as url:
            if url is not None and a.mixed:
                errors += mixed(db, url, a.n, a.duration, workers)
            elif url is not None:
                bench(db, url, a.n, a.requests, workers, a.client)
    harness.write_result("bench_api", {"errors": errors},
                         printed.getvalue(), harness.variant(p, a), a.results_dir)
    if errors:
        raise SystemExit(f"{errors} errors")


@contextmanager
def bench_database(db: str, prefix: str) -> Iterator[str | None]:
    """A throwaway database URL for one benchmark run: a SQLite file in a temporary folder, or a
    fresh PostgreSQL database (dropped afterwards); None, said on stdout, when PostgreSQL does
    not answer."""
    if db == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            yield f"sqlite:///{tmp}/bench.db"
        return
    if db != "postgresql":
        raise SystemExit(f"unknown database {db!r}")
    import psycopg

    dsn = PG.replace("postgresql+psycopg://", "postgresql://")
    try:
        psycopg.connect(dsn, connect_timeout=3).close()
    except psycopg.Error as e:
        print(f"[postgresql] skipped: not reachable ({e})")
        yield None
        return
    name = f"{prefix}_{secrets.token_hex(3)}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
