"""Storage: the shipped Alembic migrations build exactly the models' schema on both dialects,
``lutnas admin`` works from the installed package, and the worker's claim is atomic."""

from __future__ import annotations

import subprocess
import threading
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, event, select

from latency_tables.db import Base
from server.db import create_engine_for, make_sessionmaker, session_scope
from server.jobs.worker import Worker
from server.migrate import current_revision, upgrade
from server.models import Search, Supernet, Team
from server.settings import Settings
from tests.server.conftest import BIN, service_env


def _fresh_schema(url: str) -> Engine:
    """An engine on an empty schema: a new SQLite file, or a private PostgreSQL schema (the
    session database is shared with the live-server tests)."""
    engine = create_engine_for(url)
    if engine.dialect.name != "postgresql":
        return engine
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP SCHEMA IF EXISTS storage_test CASCADE")
        conn.exec_driver_sql("CREATE SCHEMA storage_test")
    engine.dispose()

    @event.listens_for(engine, "connect")
    def _search_path(dbapi_conn: Any, _record: Any) -> None:
        with dbapi_conn.cursor() as cur:
            cur.execute("SET search_path TO storage_test")

    return engine


def _team_with_supernet(s: Any, name: str) -> tuple[Team, Supernet]:
    team = Team(name=name)
    s.add(team)
    s.flush()
    sn = Supernet(team_id=team.id, name="x", checkpoint_path="x", data_path="x", space={})
    s.add(sn)
    s.flush()
    return team, sn


@pytest.fixture
def engine(database_url: str, tmp_path):  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 'm.db'}" if database_url.startswith("sqlite") else database_url
    eng = _fresh_schema(url)
    yield eng
    if eng.dialect.name == "postgresql":
        with eng.begin() as conn:
            conn.exec_driver_sql("DROP SCHEMA storage_test CASCADE")
    eng.dispose()


def test_migrations_match_models(engine) -> None:  # type: ignore[no-untyped-def]
    upgrade(engine)
    upgrade(engine)  # idempotent
    assert current_revision(engine) == "0010"
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": False}), Base.metadata)
    assert diff == []


def test_worker_claim_is_atomic(engine) -> None:  # type: ignore[no-untyped-def]
    upgrade(engine)
    factory = make_sessionmaker(engine)
    with session_scope(factory) as s:
        team, sn = _team_with_supernet(s, "claims")
        for _ in range(20):
            s.add(Search(team_id=team.id, supernet_id=sn.id, request={}, progress={}, summary={}))
    settings = Settings(database_url=str(engine.url))
    workers = [Worker(factory, settings, name=f"w{i}") for i in range(6)]
    claimed: dict[str, list[int]] = {w.id: [] for w in workers}

    def take(w: Worker) -> None:
        while (sid := w.claim()) is not None:
            claimed[w.id].append(sid)

    threads = [threading.Thread(target=take, args=(w,)) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ids = [i for v in claimed.values() for i in v]
    assert sorted(ids) == sorted(set(ids)) and len(ids) == 20
    with factory() as s:
        owners = dict(s.execute(select(Search.id, Search.worker_id)).all())
    for wid, sids in claimed.items():
        assert all(owners[i] == wid for i in sids)


def test_admin_cli(tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = service_env(f"sqlite:///{tmp_path / 'cli.db'}", tmp_path)
    out = subprocess.run([str(BIN / "lutnas"), "admin", "migrate"], env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0 and "revision 0010" in out.stdout, out.stderr
    out = subprocess.run([str(BIN / "lutnas"), "admin", "create-team", "vision"], env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1].startswith("lnt_")
    again = subprocess.run([str(BIN / "lutnas"), "admin", "create-team", "vision"], env=env, capture_output=True,
                           text=True, timeout=120)
    assert again.returncode == 2 and again.stderr.strip() == "error: team 'vision' already exists"
    bad = subprocess.run([str(BIN / "lutnas"), "admin", "create-team", "no spaces"], env=env,
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr


def test_pareto_cache_serves_only_finished_fronts(engine) -> None:  # type: ignore[no-untyped-def]
    import json

    from latency_tables.db import LatencyTable
    from server.jobs.fronts import pareto_response
    from server.models import ArchitectureRow, FrontPoint, Hardware

    upgrade(engine)
    factory = make_sessionmaker(engine)
    with session_scope(factory) as s:
        team, sn = _team_with_supernet(s, "fronts")
        table = LatencyTable(name="fronts-cpu", hardware={}, runtime={})
        s.add(table)
        s.flush()
        hw = Hardware(team_id=team.id, name="cpu", kind="cpu", runtime={}, table_id=table.id)
        s.add(hw)
        s.flush()
        search = Search(team_id=team.id, supernet_id=sn.id, request={"hardware_ids": [hw.id]}, progress={},
                        summary={}, status="running")
        s.add(search)
        s.add_all([ArchitectureRow(id=f"a{i}", lighttrack=f"arch{i}", flops=1, params=1) for i in range(3)])
        s.flush()
        s.add(FrontPoint(search_id=search.id, hardware_id=hw.id, arch_id="a0", score=0.5, latency_ms=5.0))
        sid, hid = search.id, hw.id

    def points() -> list[str]:
        with factory() as s:
            body = pareto_response(s, [s.get(Search, sid)], hid).body
        return [p["architecture_id"] for p in json.loads(body)["points"]]

    def add_point(arch: str, score: float, ms: float, status: str | None = None) -> None:
        with session_scope(factory) as s:
            s.add(FrontPoint(search_id=sid, hardware_id=hid, arch_id=arch, score=score, latency_ms=ms))
            if status:
                s.get(Search, sid).status = status

    assert points() == ["a0"]
    add_point("a1", 0.7, 7.0)  # a running search's front is read afresh every time
    assert points() == ["a0", "a1"]
    add_point("a2", 0.9, 9.0, status="succeeded")
    assert points() == ["a0", "a1", "a2"]
    with session_scope(factory) as s:  # never happens to a finished search: shows the cache serves it
        s.execute(FrontPoint.__table__.delete().where(FrontPoint.arch_id == "a2"))
    assert points() == ["a0", "a1", "a2"]
