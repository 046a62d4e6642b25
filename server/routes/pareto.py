"""The team-wide Pareto front across finished searches of one (supernet, hardware) pair."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import bindparam, select

from server.auth import TeamDep
from server.jobs.fronts import TEAM_SEARCHES_FOR_FRONT, pareto_response
from server.models import Hardware, Supernet
from server.problems import documented, not_found
from server.schemas import IdQuery, ParetoOut

router = APIRouter(tags=["pareto"])


# Both ownership checks in one round trip, built once (see routes/searches.py).
_OWNED = select(
    select(Supernet.id).where(Supernet.id == bindparam("supernet_id"), Supernet.team_id == bindparam("team_id"))
    .scalar_subquery().label("supernet"),
    select(Hardware.id).where(Hardware.id == bindparam("hardware_id"), Hardware.team_id == bindparam("team_id"))
    .scalar_subquery().label("hardware"))


@router.get("/v1/pareto", response_model=ParetoOut, operation_id="get_team_pareto", responses=documented(404))
def get_team_pareto(request: Request, supernet_id: IdQuery, hardware_id: IdQuery, team: TeamDep) -> Response:
    params = {"team_id": team.id, "supernet_id": supernet_id, "hardware_id": hardware_id}
    with request.app.state.read_engine.connect() as conn:
        owned = conn.execute(_OWNED, params).one()
        if owned.supernet is None:
            raise not_found("supernet", supernet_id)
        if owned.hardware is None:
            raise not_found("hardware", hardware_id)
        searches = [s for s in conn.execute(TEAM_SEARCHES_FOR_FRONT, params)
                    if hardware_id in [int(h) for h in s.request["hardware_ids"]]]
        return pareto_response(conn, searches, hardware_id)
