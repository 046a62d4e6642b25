"""Search jobs: submit (202 + Location), list, get, cancel, ranked results, Pareto fronts."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request, Response
from sqlalchemy import Connection, Row, Text, bindparam, cast, func, select, update
from sqlalchemy.orm import Session

from server.auth import TeamDep
from server.deps import SessionDep, SettingsDep
from server.jobs.fronts import SEARCH_FOR_FRONT, pareto_response
from server.jobs.status import SearchStatus
from server.measurements.workunits import space_of
from server.models import ArchitectureRow, Hardware, Search, SearchResult, Supernet, Team, utcnow
from server.pagination import Page, PageSize, PageToken, decode_token, page
from server.problems import Problem, documented, not_found
from server.schemas import IdPath, OptionalIdQuery, ParetoOut, Progress, ResultItem, SearchCreate, SearchOut

router = APIRouter(prefix="/v1/searches", tags=["searches"])


def get_team_search(session: Session, team: Team, search_id: int) -> Search:
    s = session.get(Search, search_id)
    if s is None or s.team_id != team.id:
        raise not_found("search", search_id)
    return s


def _timings(s: Search) -> dict[str, float]:
    out: dict[str, float] = {}
    if s.started_at:
        out["queued_s"] = round((s.started_at - s.created_at).total_seconds(), 3)
        end = s.finished_at or utcnow()
        out["running_s"] = round((end - s.started_at).total_seconds(), 3)
    if s.finished_at:
        out["total_s"] = round((s.finished_at - s.created_at).total_seconds(), 3)
    out.update({k: float(v) for k, v in (s.summary or {}).get("timings", {}).items()})
    return out


def search_out(s: Search) -> SearchOut:
    return SearchOut(id=s.id, status=s.status, request=s.request, progress=Progress(**(s.progress or {})),
                     created_at=s.created_at, started_at=s.started_at, finished_at=s.finished_at,
                     error=s.error, timings=_timings(s))


@router.post("", status_code=202, response_model=SearchOut, operation_id="submit_search",
             responses={**documented(404), 429: {"description": "the team already has LUTNAS_MAX_QUEUED_SEARCHES "
                                                            "searches queued"}})
def submit_search(body: SearchCreate, team: TeamDep, session: SessionDep, settings: SettingsDep,
                  response: Response) -> SearchOut:
    queued = session.scalar(select(func.count()).where(Search.team_id == team.id,
                                                         Search.status == SearchStatus.queued))
    if (queued or 0) >= settings.max_queued_searches:
        raise Problem(429, f"this team already has {queued} searches queued (the limit is "
                      f"{settings.max_queued_searches}); wait for some to start or cancel some",
                      title="Too many requests", kind="too-many-queued", headers={"Retry-After": "30"})
    sn = session.get(Supernet, body.supernet_id)
    # another team's ids answer exactly as ids that do not exist: 404, naming the field
    if sn is None or sn.team_id != team.id:
        raise Problem(404, f"supernet {body.supernet_id} not found", "supernet_id")
    spaces = set()
    for i, hid in enumerate(body.hardware_ids):
        hw = session.get(Hardware, hid)
        if hw is None or hw.team_id != team.id:
            raise Problem(404, f"hardware {hid} not found", f"hardware_ids.{i}")
        spaces.add(hw.space)
    if len(spaces) > 1:
        raise Problem(422, "all hardware targets of a search must use the same search space", "hardware_ids")
    space = spaces.pop()
    if tuple(sn.space.get("output_stages", ())) != space_of(space).output_stages:
        raise Problem(422, f"the supernet's space does not match the hardware's space {space!r}", "supernet_id")
    s = Search(team_id=team.id, supernet_id=sn.id, request=body.model_dump(mode="json"),
               status=SearchStatus.queued,
               progress=Progress(generations=body.generations).model_dump(), summary={})
    session.add(s)
    session.commit()
    response.headers["Location"] = f"/v1/searches/{s.id}"
    return search_out(s)


@router.get("", response_model=Page[SearchOut], operation_id="list_searches")
def list_searches(team: TeamDep, session: SessionDep, page_size: PageSize = 50,
                  page_token: PageToken = None, status: SearchStatus | None = None) -> dict[str, Any]:
    """Newest first; ``status`` keeps only searches in that state (the dashboard's filter too)."""
    before = decode_token(page_token)
    q = select(Search).where(Search.team_id == team.id)
    if status is not None:
        q = q.where(Search.status == status)
    if before is not None:
        q = q.where(Search.id < before)
    rows = list(session.scalars(q.order_by(Search.id.desc()).limit(page_size + 1)))
    result = page(rows, page_size, lambda s: s.id)
    result["items"] = [search_out(s) for s in result["items"]]
    return result


@router.get("/{search_id}", response_model=SearchOut, operation_id="get_search")
def get_search(search_id: IdPath, team: TeamDep, session: SessionDep) -> SearchOut:
    return search_out(get_team_search(session, team, search_id))


@router.post("/{search_id}/cancel", response_model=SearchOut, operation_id="cancel_search")
def cancel_search(search_id: IdPath, team: TeamDep, session: SessionDep) -> SearchOut:
    s = get_team_search(session, team, search_id)
    # queued: cancelled at once (conditional, so a worker claiming it at the same moment wins
    # or loses cleanly); running: flagged, the worker stops between evaluation batches.
    session.execute(update(Search).where(Search.id == s.id, Search.status == SearchStatus.queued)
                    .values(status=SearchStatus.cancelled, finished_at=utcnow()).execution_options(synchronize_session=False))
    session.execute(update(Search).where(Search.id == s.id, Search.status == SearchStatus.running)
                    .values(cancel_requested=True).execution_options(synchronize_session=False))
    session.commit()
    session.refresh(s)
    return search_out(s)


# Built once, with bound parameters: constructing this select() per request cost about 0.8 ms of
# CPU (measured), more than PostgreSQL spends executing it. One statement checks ownership and
# reads the page; ``latency_ms`` comes back as its stored JSON text and goes into the response
# as is (decoding and re-encoding 50 small objects per page cost another ~0.5 ms).
_RESULTS_PAGE = (
    select(SearchResult.rank, SearchResult.arch_id, SearchResult.score, SearchResult.score_se,
           cast(SearchResult.latency_ms, Text).label("latency_json"), SearchResult.feasible,
           ArchitectureRow.lighttrack, ArchitectureRow.flops, ArchitectureRow.params)
    .join(ArchitectureRow, ArchitectureRow.id == SearchResult.arch_id)
    .join(Search, Search.id == SearchResult.search_id)
    .where(SearchResult.search_id == bindparam("search_id"), Search.team_id == bindparam("team_id"),
           SearchResult.rank > bindparam("after"))
    .order_by(SearchResult.rank).limit(bindparam("limit")))


def result_rows(conn: Connection, search_id: int, team_id: int, after: int, limit: int) -> list[Row[Any]]:
    """Ranked results after rank ``after`` (ranks start at 1), at most ``limit``; a 404 problem
    when the team has no such search. The REST pages and the dashboard both read through here."""
    rows = conn.execute(_RESULTS_PAGE, {"search_id": search_id, "team_id": team_id, "after": after,
                                        "limit": limit}).all()
    if not rows and conn.scalar(select(Search.id).where(Search.id == search_id,
                                                        Search.team_id == team_id)) is None:
        raise not_found("search", search_id)
    return rows


@router.get("/{search_id}/results", response_model=Page[ResultItem], operation_id="list_results")
def list_results(request: Request, search_id: IdPath, team: TeamDep, page_size: PageSize = 50,
                 page_token: PageToken = None) -> Response:
    after = decode_token(page_token)
    # A plain Core connection in autocommit mode (a read needs no transaction: no BEGIN/ROLLBACK
    # round trips) skips the ORM session's bookkeeping on this hot endpoint.
    with request.app.state.read_engine.connect() as conn:
        rows = result_rows(conn, search_id, team.id, 0 if after is None else after, page_size + 1)
    result = page(rows, page_size, lambda r: r.rank)
    result["items"] = [{"rank": r.rank, "architecture_id": r.arch_id, "lighttrack": r.lighttrack, "score": r.score,
                        "score_se": r.score_se, "latency_ms": orjson.Fragment(r.latency_json), "flops": r.flops, "params": r.params,
                        "feasible": r.feasible} for r in result["items"]]
    # The rows are already JSON-shaped, so skip re-validating them (the declared response_model
    # still documents the shape in the OpenAPI schema) and serialise with orjson.
    return Response(orjson.dumps(result), media_type="application/json")


@router.get("/{search_id}/pareto", response_model=ParetoOut, operation_id="get_search_pareto")
def get_search_pareto(request: Request, search_id: IdPath, team: TeamDep,
                      hardware_id: OptionalIdQuery = None) -> Response:
    with request.app.state.read_engine.connect() as conn:
        s = conn.execute(SEARCH_FOR_FRONT, {"search_id": search_id, "team_id": team.id}).one_or_none()
        if s is None:
            raise not_found("search", search_id)
        hw_ids = [int(h) for h in s.request["hardware_ids"]]
        if hardware_id is None:
            hardware_id = hw_ids[0]
        elif hardware_id not in hw_ids:
            raise Problem(404, f"search {s.id} did not run on hardware {hardware_id}", "hardware_id")
        return pareto_response(conn, [s], hardware_id)
