"""Latency tables of hardware targets: entries, coverage, CSV export, prediction."""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from latency_tables.db import LatencyEntry
from profilers.conditions import valid_conditions
from profilers.layout import ENV_KEY as LAYOUT_ENV_KEY
from profilers.layout import valid_layout
from server.auth import TeamDep
from server.deps import SessionDep
from server.measurements.lut import parse_architectures, predict_for
from server.measurements.verification import table_units
from server.models import WorkUnit
from server.pagination import Page, PageSize, PageToken, decode_token, page
from server.problems import documented
from server.routes.hardware import coverage, get_team_hardware
from server.schemas import CoverageDetail, IdPath, LatencyEntryOut, PredictOut, PredictRequest

router = APIRouter(prefix="/v1/hardware/{hardware_id}/latency-table", tags=["latency"])

CSV_COLUMNS = ["unit_key", "median_ms", "p10_ms", "p90_ms", "iqr_ms", "count", "measured_at"]


def _entry(e: LatencyEntry) -> dict[str, Any]:
    d = LatencyEntryOut.model_validate(e, from_attributes=True).model_dump()
    d["layout"] = valid_layout((e.env or {}).get(LAYOUT_ENV_KEY))
    d["conditions"] = valid_conditions((e.env or {}).get("conditions"))
    if d["measured_at"].tzinfo is None:  # SQLite keeps no zone; the LUT stores UTC
        d["measured_at"] = d["measured_at"].replace(tzinfo=dt.UTC)
    return d


@router.get("", response_model=Page[LatencyEntryOut], operation_id="list_latency_entries")
def list_latency_entries(hardware_id: IdPath, team: TeamDep, session: SessionDep, page_size: PageSize = 50,
                         page_token: PageToken = None) -> dict[str, Any]:
    hw = get_team_hardware(session, team, hardware_id)
    after = decode_token(page_token, str)
    q = select(LatencyEntry).where(LatencyEntry.table_id == hw.table_id)
    if after is not None:
        q = q.where(LatencyEntry.unit_key > after)
    rows = list(session.scalars(q.order_by(LatencyEntry.unit_key).limit(page_size + 1)))
    result = page(rows, page_size, lambda e: e.unit_key)
    result["items"] = [_entry(e) for e in result["items"]]
    return result


def missing_keys(session: Session, hardware_id: int, limit: int | None = None) -> list[str]:
    q = (select(WorkUnit.unit_key).where(WorkUnit.hardware_id == hardware_id, WorkUnit.done.is_(False), table_units())
         .order_by(WorkUnit.unit_key))
    if limit is not None:
        q = q.limit(limit)
    return list(session.scalars(q))


@router.get("/coverage", response_model=CoverageDetail, operation_id="get_coverage")
def get_coverage(hardware_id: IdPath, team: TeamDep, session: SessionDep) -> CoverageDetail:
    hw = get_team_hardware(session, team, hardware_id)
    cov = coverage(session, [hw.id])[hw.id]
    return CoverageDetail(**cov.model_dump(), missing_sample=missing_keys(session, hw.id, 20))


@router.get("/export.csv", operation_id="export_latency_table", response_class=Response,
            responses={200: {"content": {"text/csv": {}}}})
def export_latency_table(hardware_id: IdPath, team: TeamDep, session: SessionDep) -> Response:
    hw = get_team_hardware(session, team, hardware_id)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for e in session.scalars(select(LatencyEntry).where(LatencyEntry.table_id == hw.table_id)
                             .order_by(LatencyEntry.unit_key)):
        d = _entry(e)
        writer.writerow([d[c].isoformat() if c == "measured_at" else d[c] for c in CSV_COLUMNS])
    return Response(buf.getvalue(), media_type="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{hw.name}-lut.csv"'})


@router.post("/predict", response_model=PredictOut, operation_id="predict_latency", responses=documented(409))
def predict_latency(hardware_id: IdPath, body: PredictRequest, team: TeamDep, session: SessionDep) -> PredictOut:
    hw = get_team_hardware(session, team, hardware_id)
    archs = parse_architectures(body.architectures, hw.space, "architectures")
    latencies = predict_for(session, hw, archs)
    return PredictOut(predictions=[
        {"id": a.canonical_id(), "lighttrack": a.to_string(), "latency_ms": float(ms)}
        for a, ms in zip(archs, latencies, strict=True)])
