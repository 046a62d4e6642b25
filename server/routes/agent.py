"""The profiler-agent protocol (agent tokens; each token opens only its own hardware's work)."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from server.auth import AgentDep
from server.deps import SessionDep, SettingsDep, run_heavy
from server.measurements.drift import queue_probes
from server.measurements.lut import store_results
from server.measurements.workunits import claim, extend, model_format, unit_onnx_path
from server.models import Hardware, WorkUnit, utcnow
from server.problems import Problem, documented
from server.schemas import (
    NO_CONTROL,
    HeartbeatOut,
    HeartbeatRequest,
    LeaseOut,
    LeaseRequest,
    ResultsOut,
    ResultsUpload,
)
from server.settings import Settings

router = APIRouter(prefix="/v1/agent", tags=["agent"])


@router.post("/leases", response_model=LeaseOut, operation_id="lease_units")
def lease_units(body: LeaseRequest, agent: AgentDep, session: SessionDep, settings: SettingsDep) -> dict[str, Any]:
    token, hw = agent
    seconds = min(body.lease_seconds or settings.lease_seconds, settings.max_lease_seconds)
    if queue_probes(session, hw, settings.drift_interval_s, settings.drift_anchors):
        session.commit()
    lease_id, expires, keys, remaining = claim(session, hw.id, token.id, body.max_units, seconds)
    fmt = model_format(hw.runtime)  # LiteRT targets get .tflite units
    return {"lease_id": lease_id, "expires_at": expires, "remaining": remaining, "runtime": hw.runtime,
            "units": [{"key": k, "onnx_url": f"/v1/agent/units/onnx?key={quote(k, safe='')}", "format": fmt}
                      for k in keys]}


@router.get("/units/onnx", operation_id="download_unit", response_class=FileResponse,
            responses={200: {"content": {"application/octet-stream": {}}}, **documented(404)})
async def download_unit(request: Request, agent: AgentDep, session: SessionDep, settings: SettingsDep,
                        key: str = Query(min_length=1, max_length=255, pattern=NO_CONTROL)) -> FileResponse:
    # The first download of a unit exports it with torch: on the heavy pool (deps.run_heavy).
    path = await run_heavy(request, _unit_file, session, agent[1], settings, key)
    return FileResponse(path, media_type="application/octet-stream",
                        filename=key.replace(":", "_") + "." + model_format(agent[1].runtime))


def _unit_file(session: Session, hw: Hardware, settings: Settings, key: str) -> Path:
    known = session.scalar(select(WorkUnit.id).where(WorkUnit.hardware_id == hw.id, WorkUnit.unit_key == key))
    if known is None:
        raise Problem(404, f"unit {key!r} is not part of this hardware target's work", "key")
    # int8 units arrive quantized; fp16 (tensorrt only) gets fp32 units, which its engine builder converts
    precision = "int8" if (hw.runtime or {}).get("precision") == "int8" else "fp32"
    return unit_onnx_path(settings.data_dir / "units", hw.space, key, precision, model_format(hw.runtime))


@router.post("/results", response_model=ResultsOut, operation_id="upload_results")
def upload_results(body: ResultsUpload, agent: AgentDep, session: SessionDep, settings: SettingsDep) -> ResultsOut:
    _, hw = agent
    keys = [r.unit_key for r in body.results]
    known = set(session.scalars(
        select(WorkUnit.unit_key).where(WorkUnit.hardware_id == hw.id, WorkUnit.unit_key.in_(keys))))
    for i, r in enumerate(body.results):
        if r.unit_key not in known:
            raise Problem(422, f"unit {r.unit_key!r} is not part of this hardware target's work",
                          f"results.{i}.unit_key")
        _check_runtime(r.env, hw.runtime, hw.id, i)
    # One row per unit: the first result wins, repeats (retries, a second agent after a lease
    # expired) are counted as duplicates. Results are accepted even after the lease expired:
    # a finished measurement is still a valid one.
    seen: dict[str, dict[str, Any]] = {}
    for r in body.results:
        seen.setdefault(r.unit_key, {**r.model_dump(), "measured_at": utcnow()})
    session.execute(update(WorkUnit).where(WorkUnit.hardware_id == hw.id, WorkUnit.unit_key.in_(list(seen)))
                    .values(done=True, lease_id=None, lease_expires_at=None)
                    .execution_options(synchronize_session=False))
    stored = store_results(session, hw, seen, settings.unit_filter)
    session.commit()
    return ResultsOut(stored=stored, duplicates=len(body.results) - stored)


RUNTIME_KEYS = ("backend", "provider", "threads", "graph_optimization", "precision")


def _check_runtime(env: dict[str, Any], runtime: dict[str, Any], hardware_id: int, i: int) -> None:
    """A result measured under another runtime configuration than the target's would corrupt
    its table: refuse it, naming the setting (only settings the agent reports are checked)."""
    for key in RUNTIME_KEYS:
        want = runtime.get(key)
        if key not in env or want is None or (key == "threads" and not want):
            continue
        if env[key] != want:
            raise Problem(422, f"measured with {key} {env[key]!r}, but hardware {hardware_id} is registered "
                          f"with {key} {want!r}", f"results.{i}.env.{key}")


@router.post("/heartbeat", response_model=HeartbeatOut, operation_id="agent_heartbeat", responses=documented(404))
def agent_heartbeat(body: HeartbeatRequest, agent: AgentDep, session: SessionDep) -> HeartbeatOut:
    _, hw = agent
    expires = extend(session, hw.id, body.lease_id)
    if expires is None:
        raise Problem(404, "lease is unknown, expired or finished; lease new units", "lease_id")
    return HeartbeatOut(expires_at=expires)
