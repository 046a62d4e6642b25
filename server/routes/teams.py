"""Teams: created by the admin; a team reads itself with its key."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import text

from server.auth import AdminDep, TeamDep, create_team
from server.deps import SessionDep
from server.problems import documented
from server.schemas import TeamCreate, TeamCreated, TeamOut

router = APIRouter(tags=["teams"])


@router.post("/v1/teams", status_code=201, response_model=TeamCreated, operation_id="create_team",
             responses=documented(409))
def create_team_route(body: TeamCreate, _: AdminDep, session: SessionDep) -> TeamCreated:
    team, key = create_team(session, body.name)
    session.commit()
    return TeamCreated(id=team.id, name=team.name, api_key=key)


@router.get("/v1/me", response_model=TeamOut, operation_id="get_me")
def get_me(team: TeamDep) -> TeamOut:
    return TeamOut(id=team.id, name=team.name)


@router.get("/healthz", operation_id="healthz", tags=["health"])
def healthz(session: SessionDep) -> dict[str, str]:
    try:
        session.execute(text("SELECT 1"))
        db = "ok"
    except Exception as e:  # noqa: BLE001 - reported, not raised: health must answer
        db = f"error: {type(e).__name__}"
    return {"status": "ok" if db == "ok" else "degraded", "database": db}
