"""Upgrades keep data: a database at the first migration (0001) with a team's whole story in it
(hardware, measured latency table, supernet, a finished search with ranked results and its
front) is upgraded to head on SQLite and PostgreSQL; every row is still there and readable
through today's models, and alembic's autogenerate (types compared) finds no drift between the
models and the migrations."""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, MetaData, create_engine, func, select
from sqlalchemy.orm import Session

import server.models as m
from latency_tables.db import Base, LatencyEntry, LatencyTable
from server.migrate import current_revision, upgrade
from tests.server.conftest import PG_ADMIN_URL, pg_unreachable, skip_without_pg

T0 = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
ARCH = "0123456789abcdef"
LIGHTTRACK = "back_04502514044521042540+cls_211000022+reg_100000111_ops_32"


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A fresh, empty database of each kind (its own PostgreSQL database, dropped after)."""
    if request.param == "sqlite":
        engine = create_engine(f"sqlite:///{tmp_path / 'old.db'}")
        yield engine
        engine.dispose()
        return
    why = pg_unreachable()
    if why:
        skip_without_pg(why)
    import psycopg

    name = f"lutnas_mig_{secrets.token_hex(4)}"
    dsn = PG_ADMIN_URL.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    engine = create_engine(PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name)
    try:
        yield engine
    finally:
        engine.dispose()
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _fill_0001(engine: Engine) -> dict[str, int]:
    """Rows as a 0001-era server wrote them, through the 0001 tables themselves (reflected, so
    no column of a later migration is named)."""
    meta = MetaData()
    meta.reflect(engine)
    t = meta.tables
    with engine.begin() as c:
        team = c.execute(t["teams"].insert().values(name="vision", created_at=T0)).inserted_primary_key[0]
        c.execute(t["api_keys"].insert().values(team_id=team, key_hash="a" * 64, prefix="lnt_abcd", created_at=T0))
        table = c.execute(t["lut_tables"].insert().values(
            name="team1/pixel", hardware={"label": "pixel"}, runtime={"backend": "onnxruntime"},
            overhead_ms=0.25, calibration=None, created_at=T0)).inserted_primary_key[0]
        hw = c.execute(t["hardware"].insert().values(
            team_id=team, name="pixel", kind="cpu", runtime={"backend": "onnxruntime", "threads": 4}, space="paper",
            table_id=table, created_at=T0)).inserted_primary_key[0]
        c.execute(t["agent_tokens"].insert().values(hardware_id=hw, name="a1", token_hash="b" * 64, created_at=T0))
        c.execute(t["work_units"].insert().values(hardware_id=hw, unit_key="stem", done=True))
        c.execute(t["work_units"].insert().values(hardware_id=hw, unit_key="overhead:empty", done=True))
        c.execute(t["work_units"].insert().values(hardware_id=hw, unit_key="subnet:" + LIGHTTRACK, done=False))
        c.execute(t["lut_entries"].insert().values(
            table_id=table, unit_key="stem", median_ms=1.5, p10_ms=1.25, p90_ms=2.0, iqr_ms=0.5, count=30,
            env={"threads": 4}, measured_at=T0))
        sn = c.execute(t["supernets"].insert().values(
            team_id=team, name="synth", checkpoint_path="/srv/sn.pt", data_path="/srv/val",
            space={"output_stages": [2, 3]}, created_at=T0)).inserted_primary_key[0]
        search = c.execute(t["searches"].insert().values(
            team_id=team, supernet_id=sn, request={"supernet_id": sn, "hardware_ids": [hw], "population": 8},
            status="succeeded", progress={"generation": 2, "generations": 2}, error=None, cancel_requested=False,
            attempts=1, summary={"timings": {"score_s": 3.5}}, created_at=T0, started_at=T0,
            finished_at=T0)).inserted_primary_key[0]
        c.execute(t["architectures"].insert().values(id=ARCH, lighttrack=LIGHTTRACK, flops=530_000_000,
                                                     params=1_970_000))
        c.execute(t["search_results"].insert().values(search_id=search, rank=1, arch_id=ARCH, score=0.61,
                                                      latency_ms={str(hw): 7.5}, feasible=True))
        c.execute(t["front_points"].insert().values(search_id=search, hardware_id=hw, arch_id=ARCH, score=0.61,
                                                    latency_ms=7.5))
        c.execute(t["score_cache"].insert().values(supernet_id=sn, mode="pairs", arch_id=ARCH, score=0.61,
                                                   metrics={"pairs": 256}))
        c.execute(t["latency_cache"].insert().values(hardware_id=hw, arch_id=ARCH, latency_ms=7.5))
    return {"team": team, "hardware": hw, "table": table, "supernet": sn, "search": search}


def test_upgrade_from_0001_keeps_data_and_models_match(empty_engine: Engine) -> None:
    upgrade(empty_engine, "0001")
    assert current_revision(empty_engine) == "0001"
    ids = _fill_0001(empty_engine)

    upgrade(empty_engine)  # to head, as `lutnas serve` does at start
    assert current_revision(empty_engine) != "0001"

    with Session(empty_engine) as s:
        team = s.get(m.Team, ids["team"])
        assert team is not None and team.name == "vision"
        assert s.scalar(select(func.count()).select_from(m.ApiKey)) == 1
        hw = s.get(m.Hardware, ids["hardware"])
        assert hw is not None and hw.runtime == {"backend": "onnxruntime", "threads": 4} and hw.table_id == ids["table"]
        table = s.get(LatencyTable, ids["table"])
        assert table is not None and table.overhead_ms == 0.25
        entry = s.scalar(select(LatencyEntry).where(LatencyEntry.table_id == ids["table"]))
        assert entry is not None and (entry.unit_key, entry.median_ms, entry.count) == ("stem", 1.5, 30)
        assert entry.env == {"threads": 4}
        sn = s.get(m.Supernet, ids["supernet"])
        assert sn is not None and sn.space == {"output_stages": [2, 3]}
        search = s.get(m.Search, ids["search"])
        assert search is not None and search.status == "succeeded"
        assert search.request["hardware_ids"] == [ids["hardware"]] and search.summary["timings"]["score_s"] == 3.5
        assert search.finished_at is not None and search.finished_at.replace(tzinfo=dt.UTC) == T0
        result = s.scalar(select(m.SearchResult).where(m.SearchResult.search_id == ids["search"]))
        assert result is not None and (result.rank, result.arch_id, result.score) == (1, ARCH, 0.61)
        assert result.latency_ms == {str(ids["hardware"]): 7.5} and result.score_se is None  # added by 0002: null
        arch = s.get(m.ArchitectureRow, ARCH)
        assert arch is not None and (arch.flops, arch.params) == (530_000_000, 1_970_000)
        assert s.scalar(select(m.ScoreCache.score).where(m.ScoreCache.arch_id == ARCH)) == 0.61
        assert s.scalar(select(m.LatencyCache.latency_ms).where(m.LatencyCache.arch_id == ARCH)) == 7.5
        assert s.scalar(select(func.count()).select_from(m.WorkUnit).where(m.WorkUnit.done.is_(True))) == 2
        # 0008: each work row's kind, from its key
        assert dict(s.execute(select(m.WorkUnit.unit_key, m.WorkUnit.kind)).all()) == {
            "stem": "unit", "overhead:empty": "overhead", "subnet:" + LIGHTTRACK: "subnet"}

    # the models and the migrations describe the same schema, column types included
    with empty_engine.connect() as conn:
        drift = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    assert drift == [], drift
