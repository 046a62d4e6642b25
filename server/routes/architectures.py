"""Architectures a team's searches evaluated, and their export (string, JSON, zipped ONNX)."""

from __future__ import annotations

import io
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from server.auth import TeamDep
from server.deps import SessionDep, run_heavy
from server.models import ArchitectureRow, Hardware, LatencyCache, Search, SearchResult, Team
from server.problems import Problem, documented, not_found
from server.routes.supernets import get_team_supernet
from server.schemas import ArchitectureOut, OptionalIdQuery
from tracking.space import Architecture, SearchSpace

router = APIRouter(prefix="/v1/architectures", tags=["architectures"])


def get_team_architecture(session: Session, team: Team, arch_id: str) -> ArchitectureRow:
    if len(arch_id) != 16 or any(c not in "0123456789abcdef" for c in arch_id):
        raise Problem(404, f"architecture {arch_id} not found (ids are 16 hex digits)", "arch_id")
    visible = session.scalar(
        select(SearchResult.id).join(Search, Search.id == SearchResult.search_id)
        .where(SearchResult.arch_id == arch_id, Search.team_id == team.id).limit(1))
    row = session.get(ArchitectureRow, arch_id) if visible else None
    if row is None:
        raise not_found("architecture", arch_id)
    return row


@router.get("/{arch_id}", response_model=ArchitectureOut, operation_id="get_architecture")
def get_architecture(arch_id: str, team: TeamDep, session: SessionDep) -> dict[str, Any]:
    row = get_team_architecture(session, team, arch_id)
    arch = Architecture.from_string(row.lighttrack, SearchSpace.code())
    lat = session.execute(
        select(LatencyCache.hardware_id, LatencyCache.latency_ms)
        .join(Hardware, Hardware.id == LatencyCache.hardware_id)
        .where(LatencyCache.arch_id == arch_id, Hardware.team_id == team.id)).all()
    scores = session.execute(
        select(Search.supernet_id, SearchResult.search_id, SearchResult.score, SearchResult.score_se)
        .join(Search, Search.id == SearchResult.search_id)
        .where(SearchResult.arch_id == arch_id, Search.team_id == team.id).order_by(SearchResult.search_id)).all()
    return {"id": row.id, "lighttrack": row.lighttrack, "arch": arch.to_json(), "flops": row.flops,
            "params": row.params, "latency_ms": {str(h): ms for h, ms in lat},
            "scores": [{"supernet_id": a, "search_id": b, "score": c, "score_se": se} for a, b, c, se in scores]}


@router.get("/{arch_id}/export", operation_id="export_architecture", response_class=Response,
            responses={200: {"content": {"text/plain": {}, "application/json": {}, "application/zip": {}}},
                       **documented(409)})
async def export_architecture(request: Request, arch_id: str, team: TeamDep, session: SessionDep,
                              format: Literal["lighttrack", "json", "onnx"] = "lighttrack",
                              supernet_id: OptionalIdQuery = None) -> Response:
    # An ONNX export runs torch for seconds: on the heavy pool, not one of the request threads.
    if format == "onnx":
        return await run_heavy(request, _export, session, team, arch_id, format, supernet_id)
    return await run_in_threadpool(_export, session, team, arch_id, format, supernet_id)


def _export(session: Session, team: Team, arch_id: str, format: str, supernet_id: int | None) -> Response:
    row = get_team_architecture(session, team, arch_id)
    if format == "lighttrack":
        return PlainTextResponse(row.lighttrack + "\n")
    if format == "json":
        arch = Architecture.from_string(row.lighttrack, SearchSpace.code())
        return JSONResponse({"id": row.id, "lighttrack": row.lighttrack, **arch.to_json()})
    if supernet_id is None:
        raise Problem(422, "format=onnx needs supernet_id (the weights to inherit)", "supernet_id")
    sn = get_team_supernet(session, team, supernet_id)
    data = _onnx_zip(sn.checkpoint_path, row.lighttrack)
    return Response(data, media_type="application/zip",
                    headers={"Content-Disposition": f'attachment; filename="{row.id}-onnx.zip"'})


def _onnx_zip(checkpoint: str, lighttrack: str) -> bytes:
    from tracking.checkpoint import load_supernet
    from tracking.export import export_onnx
    from tracking.subnet import extract_subnet

    try:
        supernet, _ = load_supernet(checkpoint)
        arch = Architecture.from_string(lighttrack, supernet.space)
    except (OSError, ValueError) as e:
        why = str(e).splitlines()[0] if isinstance(e, ValueError) and str(e) else "its checkpoint is unreadable"
        raise Problem(409, f"cannot export from this supernet: {why}", "supernet_id") from None
    subnet = extract_subnet(supernet, arch)
    with tempfile.TemporaryDirectory() as tmp:
        paths = export_onnx(subnet, tmp)
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            for p in paths.values():
                zf.write(p, Path(p).name)
            zf.writestr("architecture.txt", lighttrack + "\n")
    return buf.getvalue()
