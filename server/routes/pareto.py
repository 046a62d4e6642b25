"""The team-wide Pareto front across finished searches of one (supernet, hardware) pair."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response
from sqlalchemy import select

from server.auth import TeamDep
from server.deps import SessionDep
from server.fronts import pareto_response
from server.models import Search
from server.routes.hardware import get_team_hardware
from server.routes.supernets import get_team_supernet
from server.schemas import ParetoOut

router = APIRouter(tags=["pareto"])


@router.get("/v1/pareto", response_model=ParetoOut, operation_id="get_team_pareto")
def get_team_pareto(supernet_id: int, hardware_id: int, team: TeamDep, session: SessionDep) -> Response:
    sn = get_team_supernet(session, team, supernet_id)
    hw = get_team_hardware(session, team, hardware_id)
    searches = list(session.scalars(select(Search).where(
        Search.team_id == team.id, Search.supernet_id == sn.id, Search.status == "succeeded")))
    searches = [s for s in searches if hw.id in [int(h) for h in s.request["hardware_ids"]]]
    return pareto_response(session, searches, hw.id)
