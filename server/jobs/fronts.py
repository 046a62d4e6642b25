"""Pareto fronts of score (higher is better) vs latency (lower is better) on one target.

The front and its hypervolume are search.pareto's (``front_2d``, ``target_hypervolume``): a
search's own front is the one its run computed (stored by server/jobs/results.py), a team's front
over several searches is ``front_2d`` of their stored fronts.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

import orjson
from fastapi import Response
from sqlalchemy import Connection, bindparam, func, select
from sqlalchemy.orm import Session

from search.pareto import front_2d, target_hypervolume
from server.measurements.verification import measured_for
from server.models import ArchitectureRow, FrontPoint, Search, SubnetMeasurement

# A search as the fronts need it: ``id``, ``status``, ``request``, ``summary`` (an ORM ``Search``
# or a row of ``SEARCH_FOR_FRONT``).
SearchLike = Any

# Built once with bound parameters (see routes/searches.py: building a select() per request costs
# more CPU than PostgreSQL spends running it).
SEARCH_FOR_FRONT = select(Search.id, Search.status, Search.request, Search.summary).where(
    Search.id == bindparam("search_id"), Search.team_id == bindparam("team_id"))
TEAM_SEARCHES_FOR_FRONT = select(Search.id, Search.status, Search.request, Search.summary).where(
    Search.team_id == bindparam("team_id"), Search.supernet_id == bindparam("supernet_id"),
    Search.status == "succeeded")
_FRONT_POINTS = (select(FrontPoint.arch_id, FrontPoint.score, FrontPoint.score_se, FrontPoint.latency_ms,
                        ArchitectureRow.lighttrack)
                 .join(ArchitectureRow, ArchitectureRow.id == FrontPoint.arch_id)
                 .where(FrontPoint.search_id.in_(bindparam("ids", expanding=True)),
                        FrontPoint.hardware_id == bindparam("hardware_id")))


def pareto_payload(conn: Connection | Session, searches: list[SearchLike], hardware_id: int) -> dict[str, Any]:
    """The front across ``searches`` on ``hardware_id``, with its hypervolume.

    One search: the front its run computed (``SearchResult.fronts``, as stored) and its stored
    hypervolume. Several: :func:`search.pareto.front_2d` over their stored fronts, and its
    hypervolume by the same :func:`search.pareto.target_hypervolume`.

    ``hypervolume`` is the normalised one, as the search reports it (progress, ranked.json):
    objectives ``1 - score`` and ``latency / R`` against the reference point (1, 1), with R the
    largest reference latency of those searches on this target (the slowest architecture their
    spaces allow there, as the search engine uses). ``hypervolume_score_ms`` is the same area in
    score x ms (``hypervolume * R``). Both are comparable between searches of one (supernet,
    target). Every point carries its score's standard error (``score_se``, null where unknown),
    and ``reference`` is LightTrack-Mobile's own point (:func:`reference_of`).
    """
    ids = [s.id for s in searches]
    rows = conn.execute(_FRONT_POINTS, {"ids": ids, "hardware_id": hardware_id}).all() if ids else []
    names = {r.arch_id: r.lighttrack for r in rows}
    se: dict[str, float | None] = {}
    for r in rows:  # the same row front_2d keeps for an architecture (its first)
        se.setdefault(r.arch_id, None if r.score_se is None else float(r.score_se))
    points = [(r.arch_id, float(r.score), float(r.latency_ms)) for r in rows]
    key = str(hardware_id)
    refs = [float(v) for s in searches if (v := (s.summary or {}).get("reference_ms", {}).get(key)) is not None]
    stored = (searches[0].summary or {}).get("hypervolumes", {}).get(key) if len(searches) == 1 else None
    # one search: the run's own front as stored (fastest first); several: the front of their fronts
    front = sorted(points, key=lambda p: (p[2], -p[1], p[0])) if len(searches) == 1 else front_2d(points)
    ref_lat = max(refs) if refs else (max((p[2] for p in front), default=0.0) * 1.1)
    # searches stored before the hypervolumes were kept: the same helper on their stored front
    hv = float(stored) if stored is not None else target_hypervolume(front, ref_lat)
    stats = {(s.request or {}).get("latency_stat", "p50") for s in searches}
    measured = measured_for(conn, hardware_id, [names[a] for a, _, _ in front], stats.pop() if len(stats) == 1 else "p50")
    budget = budget_of(searches, hardware_id)
    return {"hardware_id": hardware_id, "reference_point": {"score": 0.0, "latency_ms": ref_lat},
            "hypervolume": hv, "hypervolume_score_ms": hv * ref_lat,
            "reference": reference_of(searches, hardware_id), "budget_ms": budget,
            "measured": sum(names[a] in measured for a, _, _ in front),
            "points": [{"architecture_id": a, "lighttrack": names[a], "score": s, "score_se": se[a],
                        "latency_ms": lat, "predicted_ms": lat, "measured_ms": measured.get(names[a]),
                        "over_budget": None if budget is None or names[a] not in measured
                        else measured[names[a]] > budget}
                       for a, s, lat in front]}


def budget_of(searches: list[SearchLike], hardware_id: int) -> float | None:
    """The latency budget on ``hardware_id`` that every one of ``searches`` was run under (a
    front mixing budgets, or with none, has none)."""
    budgets = {(s.request or {}).get("budget_ms") if (s.request or {}).get("objective") == "budget"
               and (s.request or {}).get("budget_hardware_id") == hardware_id else None for s in searches}
    return float(next(iter(budgets))) if len(budgets) == 1 and None not in budgets else None


def reference_of(searches: list[SearchLike], hardware_id: int) -> dict[str, Any] | None:
    """LightTrack-Mobile's point on ``hardware_id``: its supernet score (with standard error) and
    its predicted latency there, as the newest of ``searches`` that scored it recorded it in its
    summary (searches finished before the reference existed have none: null)."""
    key = str(hardware_id)
    for s in sorted(searches, key=lambda s: s.id, reverse=True):
        ref = (s.summary or {}).get("reference_arch")
        if isinstance(ref, dict) and key in (ref.get("latency_ms") or {}):
            return {"name": ref.get("name", "LightTrack-Mobile"), "architecture_id": ref["canonical_id"],
                    "lighttrack": ref["arch"], "score": float(ref["score"]),
                    "score_se": None if ref.get("score_se") is None else float(ref["score_se"]),
                    "latency_ms": float(ref["latency_ms"][key])}
    return None


# (database, search ids, hardware id, subnets measured there) -> the serialised payload. A succeeded search's front is written once,
# in the transaction that marks it succeeded, and never changes, so its payload (and a team
# front over succeeded searches only) can be served from memory; fronts of other searches are not
# cached. Per process, bounded.
_CACHE: OrderedDict[tuple[str, tuple[int, ...], int, int], bytes] = OrderedDict()
_MEASURED_ON = select(func.count()).where(SubnetMeasurement.hardware_id == bindparam("hardware_id"))
_CACHE_SIZE = 512
_LOCK = threading.Lock()


def pareto_response(conn: Connection | Session, searches: list[SearchLike], hardware_id: int) -> Response:
    """:func:`pareto_payload` as a JSON response, from the cache when every search has succeeded."""
    bind = conn.get_bind() if isinstance(conn, Session) else conn.engine
    # a succeeded search's points never change, but measurements of them arrive later
    n_measured = conn.execute(_MEASURED_ON, {"hardware_id": hardware_id}).scalar_one()
    key = (str(bind.url), tuple(sorted(s.id for s in searches)), hardware_id, int(n_measured))
    cacheable = all(s.status == "succeeded" for s in searches)
    body = None
    if cacheable:
        with _LOCK:
            body = _CACHE.get(key)
            if body is not None:
                _CACHE.move_to_end(key)
    if body is None:
        body = orjson.dumps(pareto_payload(conn, searches, hardware_id))
        if cacheable:
            with _LOCK:
                _CACHE[key] = body
                while len(_CACHE) > _CACHE_SIZE:
                    _CACHE.popitem(last=False)
    return Response(body, media_type="application/json")
