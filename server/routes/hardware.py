"""Hardware targets: register (with their latency table and profiling work), list, get, agent tokens."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from latency_tables.db import LatencyTable
from latency_tables.kinds import kind_of
from server.auth import AGENT_PREFIX, TeamDep, hash_secret, new_secret
from server.deps import SessionDep, SettingsDep
from server.measurements.drift import drift_out
from server.measurements.transfer import transfer_plan
from server.measurements.verification import table_units
from server.measurements.workunits import work_keys
from server.models import AgentToken, Hardware, Team, WorkUnit
from server.pagination import Page, PageSize, PageToken, decode_token, page
from server.problems import Problem, documented, not_found
from server.schemas import AgentTokenCreate, AgentTokenOut, Coverage, HardwareCreate, HardwareOut, IdPath

router = APIRouter(tags=["hardware"])


def get_team_hardware(session: Session, team: Team, hardware_id: int) -> Hardware:
    hw = session.get(Hardware, hardware_id)
    if hw is None or hw.team_id != team.id:
        raise not_found("hardware", hardware_id)
    return hw


def coverage(session: Session, hardware_ids: list[int]) -> dict[int, Coverage]:
    rows = session.execute(
        select(WorkUnit.hardware_id, func.count(), func.sum(case((WorkUnit.done, 1), else_=0)))
        .where(WorkUnit.hardware_id.in_(hardware_ids), table_units()).group_by(WorkUnit.hardware_id)).all()
    out = {h: Coverage(measured=0, total=0, fraction=0.0) for h in hardware_ids}
    for hid, total, measured in rows:
        measured = int(measured or 0)
        out[hid] = Coverage(measured=measured, total=int(total),
                            fraction=round(measured / total, 6) if total else 0.0)
    return out


def hardware_out(hw: Hardware, cov: Coverage, drift: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"id": hw.id, "name": hw.name, "kind": hw.kind, "runtime": hw.runtime, "space": hw.space,
            "created_at": hw.created_at, "coverage": cov, "drift": drift}


@router.post("/v1/hardware", status_code=201, response_model=HardwareOut, operation_id="register_hardware",
             responses=documented(409))
def register_hardware(body: HardwareCreate, team: TeamDep, session: SessionDep, settings: SettingsDep,
                      response: Response) -> dict[str, Any]:
    if session.scalar(select(Hardware.id).where(Hardware.team_id == team.id, Hardware.name == body.name)):
        raise Problem(409, f"hardware {body.name!r} already exists in this team", "name")
    runtime = body.runtime.model_dump()
    keys, described = work_keys(body.space, settings.unit_filter), {"label": body.name, "kind": body.kind,
                                                                    "team_id": team.id}
    if body.transfer_from is not None:  # its agents measure only what the transfer needs
        keys, described["transfer"] = transfer_plan(session, team.id, body.transfer_from, body.space,
                                                    body.transfer_measure)
    table = LatencyTable(name=f"team{team.id}/{body.name}", hardware=described, runtime=runtime)
    session.add(table)
    session.flush()
    hw = Hardware(team_id=team.id, name=body.name, kind=body.kind, runtime=runtime, space=body.space,
                  table_id=table.id)
    session.add(hw)
    session.flush()
    session.add_all(WorkUnit(hardware_id=hw.id, unit_key=k, done=False) for k in keys)
    session.commit()
    response.headers["Location"] = f"/v1/hardware/{hw.id}"
    return hardware_out(hw, Coverage(measured=0, total=sum(kind_of(k).is_table for k in keys),
                                     fraction=0.0))


@router.get("/v1/hardware", response_model=Page[HardwareOut], operation_id="list_hardware")
def list_hardware(team: TeamDep, session: SessionDep, page_size: PageSize = 50,
                  page_token: PageToken = None) -> dict[str, Any]:
    after = decode_token(page_token)
    q = select(Hardware).where(Hardware.team_id == team.id)
    if after is not None:
        q = q.where(Hardware.id > after)
    rows = list(session.scalars(q.order_by(Hardware.id).limit(page_size + 1)))
    result = page(rows, page_size, lambda h: h.id)
    ids = [h.id for h in result["items"]]
    cov = coverage(session, ids)
    runtimes = dict(session.execute(select(Hardware.id, LatencyTable.runtime)  # one read for the page
                                    .join(LatencyTable, LatencyTable.id == Hardware.table_id)
                                    .where(Hardware.id.in_(ids))).all()) if ids else {}
    result["items"] = [HardwareOut.model_validate(hardware_out(h, cov[h.id], drift_out(runtimes.get(h.id))))
                       for h in result["items"]]
    return result


@router.get("/v1/hardware/{hardware_id}", response_model=HardwareOut, operation_id="get_hardware")
def get_hardware(hardware_id: IdPath, team: TeamDep, session: SessionDep) -> dict[str, Any]:
    hw = get_team_hardware(session, team, hardware_id)
    table = session.get(LatencyTable, hw.table_id)
    return hardware_out(hw, coverage(session, [hw.id])[hw.id], drift_out(table.runtime if table else None))


@router.post("/v1/hardware/{hardware_id}/agent-tokens", status_code=201, response_model=AgentTokenOut,
             operation_id="create_agent_token")
def create_agent_token(hardware_id: IdPath, body: AgentTokenCreate, team: TeamDep,
                       session: SessionDep) -> AgentTokenOut:
    hw = get_team_hardware(session, team, hardware_id)
    token = new_secret(AGENT_PREFIX)
    row = AgentToken(hardware_id=hw.id, name=body.name, token_hash=hash_secret(token))
    session.add(row)
    session.commit()
    return AgentTokenOut(id=row.id, hardware_id=hw.id, name=row.name, token=token)
