"""Standard errors and LightTrack-Mobile's reference point in the service's storage.

Migration 0002 on SQLite and PostgreSQL: rows written under 0001 keep a NULL standard error and
still load (the worker's score cache answers them without re-scoring; fronts show null), and the
migration goes down and up again. The worker stores what a search returns (standard errors of
results and front points, Mobile's point in the summary) and the Pareto payload serves them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, event, inspect, select, text, update

from latency_tables.db import LatencyTable
from latency_tables.predict import LatencyPredictor
from search.config import SearchConfig
from search.evaluators import Score, SurrogateAccuracy
from search.pareto import front_2d, hypervolume, target_hypervolume
from search.report import write_ranked
from search.runner import run_search
from server.db import create_engine_for, make_sessionmaker, session_scope
from server.jobs.fronts import pareto_payload
from server.jobs.worker import DbCachedAccuracy, Worker
from server.migrate import alembic_config, current_revision, upgrade
from server.models import FrontPoint, Hardware, ScoreCache, Search, SearchResult, Supernet, Team
from server.routes.searches import _RESULTS_PAGE, search_out
from server.settings import Settings
from tests.search.conftest import synthetic_unit_ms
from tracking.space import LIGHTTRACK_MOBILE, Architecture, SearchSpace, lighttrack_mobile

SCHEMA = "score_se_test"


@pytest.fixture
def engine(database_url: str, tmp_path: Any) -> Iterator[Engine]:
    """An empty database: a new SQLite file, or a private PostgreSQL schema."""
    url = f"sqlite:///{tmp_path / 'se.db'}" if database_url.startswith("sqlite") else database_url
    eng = create_engine_for(url)
    if eng.dialect.name == "postgresql":
        with eng.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
            conn.exec_driver_sql(f"CREATE SCHEMA {SCHEMA}")
        eng.dispose()

        @event.listens_for(eng, "connect")
        def _search_path(dbapi_conn: Any, _record: Any) -> None:
            with dbapi_conn.cursor() as cur:
                cur.execute(f"SET search_path TO {SCHEMA}")
            dbapi_conn.commit()  # a later rollback must not undo it

    yield eng
    if eng.dialect.name == "postgresql":
        with eng.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {SCHEMA} CASCADE")
    eng.dispose()


def _downgrade(engine: Engine, revision: str) -> None:
    cfg = alembic_config(engine)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)


def _columns(engine: Engine, table: str) -> set[str]:
    return {c["name"] for c in inspect(engine).get_columns(table)}


def test_migration_0002_keeps_old_rows_with_null_se(engine: Engine) -> None:
    upgrade(engine, "0001")
    mobile = lighttrack_mobile().canonical_id()
    with engine.begin() as conn:  # rows as a 0001 service wrote them (no score_se column yet)
        conn.execute(text("INSERT INTO teams (id, name, created_at) VALUES (1, 't', CURRENT_TIMESTAMP)"))
        conn.execute(text("INSERT INTO supernets (id, team_id, name, checkpoint_path, data_path, space, created_at) "
                          "VALUES (1, 1, 'sn', '/nonexistent.pt', '/nonexistent', '{}', CURRENT_TIMESTAMP)"))
        conn.execute(text("INSERT INTO lut_tables (id, name, hardware, runtime) VALUES (1, 'cpu', '{}', '{}')"))
        conn.execute(text("INSERT INTO hardware (id, team_id, name, kind, runtime, space, table_id, created_at) "
                          "VALUES (1, 1, 'cpu', 'cpu', '{}', 'paper', 1, CURRENT_TIMESTAMP)"))
        conn.execute(text("INSERT INTO searches (id, team_id, supernet_id, request, status, progress, "
                          "cancel_requested, attempts, summary, created_at) VALUES (1, 1, 1, "
                          "'{\"hardware_ids\": [1]}', 'succeeded', '{}', false, 1, '{}', CURRENT_TIMESTAMP)"))
        conn.execute(text("INSERT INTO architectures (id, lighttrack) VALUES (:id, :lt)"),
                     {"id": mobile, "lt": LIGHTTRACK_MOBILE})
        conn.execute(text("INSERT INTO score_cache (supernet_id, mode, arch_id, score, metrics) "
                          "VALUES (1, 'pairs', :id, 0.42, '{}')"), {"id": mobile})
        conn.execute(text("INSERT INTO search_results (search_id, rank, arch_id, score, latency_ms, feasible) "
                          "VALUES (1, 1, :id, 0.42, '{\"1\": 3.5}', true)"), {"id": mobile})
        conn.execute(text("INSERT INTO front_points (search_id, hardware_id, arch_id, score, latency_ms) "
                          "VALUES (1, 1, :id, 0.42, 3.5)"), {"id": mobile})
    upgrade(engine)
    assert current_revision(engine) == ScriptDirectory.from_config(alembic_config()).get_current_head()
    for table in ("score_cache", "search_results", "front_points"):
        assert "score_se" in _columns(engine, table)
    factory = make_sessionmaker(engine)
    with factory() as s:
        assert s.scalars(select(ScoreCache.score_se)).all() == [None]
        assert s.scalars(select(SearchResult.score_se)).all() == [None]
        assert s.scalars(select(FrontPoint.score_se)).all() == [None]
        supernet = s.get(Supernet, 1)
        assert supernet is not None
        # the cached old row answers without scoring (the checkpoint does not even exist)
        cached = DbCachedAccuracy(factory, supernet, "pairs", Settings())
        assert cached.evaluate([lighttrack_mobile()]) == [Score(0.42, None)] and cached.hits == 1
        search = s.get(Search, 1)
        payload = pareto_payload(s, [search], 1)
    assert payload["points"] == [{"architecture_id": mobile, "lighttrack": LIGHTTRACK_MOBILE, "score": 0.42,
                                  "score_se": None, "latency_ms": 3.5, "predicted_ms": 3.5, "measured_ms": None,
                                  "over_budget": None}]
    assert payload["reference"] is None  # finished before the reference point was recorded
    with engine.connect() as conn:
        [row] = conn.execute(_RESULTS_PAGE, {"search_id": 1, "team_id": 1, "after": 0, "limit": 10}).all()
    assert row.score == 0.42 and row.score_se is None
    # down and up again: the columns go and come back, the rows stay
    _downgrade(engine, "0001")
    assert current_revision(engine) == "0001" and "score_se" not in _columns(engine, "front_points")
    upgrade(engine)
    with factory() as s:
        assert s.scalars(select(FrontPoint.score)).all() == [0.42]


class SurrogateWithSE:
    """The analytic surrogate's score with a per-architecture standard error (seeded by its id)."""

    def __init__(self, space: SearchSpace) -> None:
        self.surrogate = SurrogateAccuracy(space)

    def evaluate(self, archs: Sequence[Architecture]) -> list[Score]:
        return [Score(v, 0.001 + int(a.canonical_id()[:4], 16) / 65535 * 0.01)
                for v, a in zip(self.surrogate.evaluate(archs), archs, strict=True)]


def test_worker_stores_standard_errors_and_the_reference(engine: Engine) -> None:
    upgrade(engine)
    factory = make_sessionmaker(engine)
    space = SearchSpace.paper()
    worker = Worker(factory, Settings())
    with session_scope(factory) as s:
        team = Team(name="se")
        s.add(team)
        s.flush()
        sn = Supernet(team_id=team.id, name="x", checkpoint_path="x", data_path="x", space={})
        table = LatencyTable(name="se-cpu", hardware={}, runtime={})
        s.add_all([sn, table])
        s.flush()
        hw = Hardware(team_id=team.id, name="cpu", kind="cpu", runtime={}, table_id=table.id)
        s.add(hw)
        s.flush()
        search = Search(team_id=team.id, supernet_id=sn.id, request={"hardware_ids": [hw.id]}, progress={},
                        summary={}, status="running", worker_id=worker.id)
        s.add(search)
        s.flush()
        sid, hid, team_id = search.id, hw.id, team.id
    predictor = LatencyPredictor(synthetic_unit_ms(space, 1.0, 1), space)
    result = run_search(SearchConfig(algorithm="pareto", population=8, generations=2, parents=4, seed=0),
                        SurrogateWithSE(space), {str(hid): predictor})
    worker._store_result(sid, result, [hid], 1.0, [0, result.evaluated])  # counts: cache hits, scored
    with engine.connect() as conn:
        rows = conn.execute(_RESULTS_PAGE, {"search_id": sid, "team_id": team_id, "after": 0, "limit": 1000}).all()
    assert len(rows) == len(result.ranked)
    assert [r.score_se for r in rows] == pytest.approx([x.score_se for x in result.ranked])
    assert all(r.score_se > 0 for r in rows)
    with factory() as s:
        payload = pareto_payload(s, [s.get(Search, sid)], hid)
    assert payload["points"] and all(p["score_se"] > 0 for p in payload["points"])
    se = {x.canonical_id: x.score_se for x in result.ranked}
    assert all(p["score_se"] == pytest.approx(se[p["architecture_id"]]) for p in payload["points"])
    mobile = lighttrack_mobile()
    ref = payload["reference"]
    assert ref == {"name": "LightTrack-Mobile", "architecture_id": mobile.canonical_id(),
                   "lighttrack": LIGHTTRACK_MOBILE, "score": pytest.approx(SurrogateAccuracy(space).evaluate([mobile])[0]),
                   "score_se": pytest.approx(0.001 + int(mobile.canonical_id()[:4], 16) / 65535 * 0.01),
                   "latency_ms": pytest.approx(float(predictor.predict_batch([mobile])[0]))}
    # a newer search that recorded no reference does not hide an older one's
    with session_scope(factory) as s:
        s.execute(update(Search).where(Search.id == sid).values(status="succeeded"))
        s.add(Search(team_id=team_id, supernet_id=s.get(Search, sid).supernet_id,  # type: ignore[union-attr]
                     request={"hardware_ids": [hid]}, progress={}, summary={}, status="succeeded"))
    with factory() as s:
        both = list(s.scalars(select(Search)))
        assert pareto_payload(s, both, hid)["reference"] == ref


def test_stored_front_and_hypervolume_are_the_searchs(engine: Engine, tmp_path: Any) -> None:
    """The worker stores the front the search computed (the engine's, for one target) and its
    normalised hypervolume: the same number in the job's progress, the pareto payload and the
    local ranked.json. A team front over two searches is front_2d of their stored fronts."""
    upgrade(engine)
    factory = make_sessionmaker(engine)
    space = SearchSpace.paper()
    worker = Worker(factory, Settings())
    with session_scope(factory) as s:
        team = Team(name="hv")
        s.add(team)
        s.flush()
        sn = Supernet(team_id=team.id, name="x", checkpoint_path="x", data_path="x", space={})
        table = LatencyTable(name="hv-cpu", hardware={}, runtime={})
        s.add_all([sn, table])
        s.flush()
        hw = Hardware(team_id=team.id, name="cpu", kind="cpu", runtime={}, table_id=table.id)
        s.add(hw)
        s.flush()
        searches = [Search(team_id=team.id, supernet_id=sn.id, request={"hardware_ids": [hw.id]}, progress={},
                           summary={}, status="running", worker_id=worker.id) for _ in range(2)]
        s.add_all(searches)
        s.flush()
        sids, hid = [x.id for x in searches], hw.id
    predictor = LatencyPredictor(synthetic_unit_ms(space, 1.0, 1), space)
    results = []
    for sid, seed in zip(sids, (0, 1), strict=True):
        seen: list[dict[str, Any]] = []
        result = run_search(SearchConfig(algorithm="pareto", population=8, generations=3, parents=4, seed=seed),
                            SurrogateWithSE(space), {str(hid): predictor}, on_generation=lambda p, _s, seen=seen: seen.append(p))
        worker._store_result(sid, result, [hid], 1.0, [0, result.evaluated])
        results.append(result)
        assert result.hypervolume == seen[-1]["hypervolume"]  # the run's last progress
    result, sid, key = results[0], sids[0], str(hid)
    _, json_path = write_ranked(result, tmp_path)
    ranked_json = json.loads(json_path.read_text())
    with factory() as s:
        search = s.get(Search, sid)
        assert search is not None
        stored = s.scalars(select(FrontPoint.arch_id).where(FrontPoint.search_id == sid,
                                                           FrontPoint.hardware_id == hid)).all()
        payload = pareto_payload(s, [search], hid)
        progress = search_out(search).progress  # the job's progress as GET /v1/searches/{id} serves it
        team = pareto_payload(s, list(s.scalars(select(Search).where(Search.id.in_(sids)))), hid)
    # the stored front is the engine's (one target: its 2-D front is the search's front)
    assert sorted(stored) == sorted(result.fronts[key]) == sorted(r.canonical_id for r in result.front)
    assert [p["architecture_id"] for p in payload["points"]] == result.fronts[key]  # fastest first
    # one hypervolume: progress == REST pareto == ranked.json == the engine's
    assert progress.hypervolume == payload["hypervolume"] == ranked_json["hypervolume"] == result.hypervolume
    assert ranked_json["hypervolumes"][key] == result.hypervolume
    ref_ms = result.reference["latency_ms"][key]
    assert payload["reference_point"] == {"score": 0.0, "latency_ms": ref_ms}
    area = hypervolume(np.array([[-p["score"], p["latency_ms"]] for p in payload["points"]]), [0.0, ref_ms])
    assert payload["hypervolume_score_ms"] == pytest.approx(area, rel=1e-9)  # the old score x ms figure
    # two searches: the front of both stored fronts, its hypervolume by the same helper
    union = front_2d([(r.canonical_id, r.score, r.latency_ms[key]) for res in results
                      for r in res.ranked if r.canonical_id in set(res.fronts[key])])
    assert [p["architecture_id"] for p in team["points"]] == [a for a, _, _ in union]
    ref_both = max(res.reference["latency_ms"][key] for res in results)
    assert team["hypervolume"] == target_hypervolume(union, ref_both)
    assert team["hypervolume_score_ms"] == pytest.approx(team["hypervolume"] * ref_both)
    assert team["hypervolume"] >= max(res.hypervolume for res in results) - 1e-12
