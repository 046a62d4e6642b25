"""Profiling work of a hardware target: which units, their model files, and atomic leases.

The work of a target is every distinct unit of its search space
(``latency_tables.units.all_units``) plus the per-run overhead unit ``overhead:empty`` (an
identity model). Unit files depend only on the unit key, precision and format (ONNX, or .tflite
for LiteRT targets, converted server-side from the same modules), so they are exported once on
demand and cached on disk under ``<data_dir>/units/``.

Claiming is one statement, ``UPDATE work_units SET lease=... WHERE id IN (SELECT ... LIMIT n)``:
on PostgreSQL the subquery takes ``FOR UPDATE SKIP LOCKED`` so concurrent agents skip each
other's rows; on SQLite the single statement runs under the database write lock, so two
claims are serialised. Either way a unit with a live lease is never handed out twice.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import secrets
import tempfile
import threading
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session

from latency_tables.kinds import OVERHEAD_KEY, SUBNET_PREFIX, Kind, kind_of, subnet_of  # noqa: F401 - re-exported
from latency_tables.units import Unit, all_units, export_overhead_model, export_unit
from server.db import db_now, is_postgres
from server.models import WorkUnit
from tracking.space import SearchSpace

_export_lock = threading.Lock()


def space_of(name: str) -> SearchSpace:
    """The space a stored name means; an unknown name is an error, never the paper space."""
    return SearchSpace.named(name)


@lru_cache(maxsize=4)
def units_by_key(space: str) -> dict[str, Unit]:
    return {u.key: u for u in all_units(space_of(space))}


def work_keys(space: str, unit_filter: list[str] | None = None) -> list[str]:
    """Unit keys a target of ``space`` must measure (optionally only keys starting with a filter)."""
    keys = [OVERHEAD_KEY, *units_by_key(space)]
    if unit_filter:
        keys = [k for k in keys if any(k.startswith(f) for f in unit_filter)]
    return keys


def model_format(runtime: dict[str, Any] | None) -> str:
    """The unit format a target's agents run: tflite for LiteRT targets, else onnx."""
    return "tflite" if (runtime or {}).get("backend") == "litert" else "onnx"


def unit_onnx_path(cache_dir: Path, space: str, key: str, precision: str = "fp32", fmt: str = "onnx") -> Path:
    """Path of the cached model file of ``key`` (``fmt``: onnx, or tflite converted by
    ``latency_tables.litert``), exporting it first if needed; ``precision="int8"``: quantized as int8
    tables' units are (the overhead model stays as is)."""
    tag = key if precision == "fp32" else f"{key}|{precision}"  # fp32 ONNX files keep their old names
    tag = tag if fmt == "onnx" else f"{tag}|{fmt}"
    name = hashlib.sha256(tag.encode()).hexdigest()[:32] + "." + fmt
    path = cache_dir / name
    if path.exists():
        return path
    cache_dir.mkdir(parents=True, exist_ok=True)
    with _export_lock:  # one torch export at a time; other requests wait for the file
        if path.exists():
            return path
        fd, tmp = tempfile.mkstemp(dir=cache_dir, suffix=".tmp")
        os.close(fd)
        try:
            kind = kind_of(key)
            if kind is Kind.OVERHEAD:
                export_overhead_model(tmp, fmt)
            elif kind.is_graph:  # a front architecture or a drift anchor: its whole search graph
                _export_subnet(space, subnet_of(key), tmp, precision, fmt)
            else:
                export_unit(units_by_key(space)[key], tmp, precision=precision, fmt=fmt)
            os.replace(tmp, path)  # atomic: readers never see a half-written file
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return path


def _export_subnet(space: str, lighttrack: str, out: str, precision: str, fmt: str = "onnx") -> None:
    from latency_tables.fidelity import export_search_graphs
    from tracking.space import Architecture

    arch = Architecture.parse(lighttrack, space_of(space))
    with tempfile.TemporaryDirectory(dir=Path(out).parent) as tmp:
        os.replace(export_search_graphs([arch], tmp, space_of(space), precision=precision, fmt=fmt)[0], out)


def _free(now: dt.datetime):  # type: ignore[no-untyped-def]
    return and_(WorkUnit.done.is_(False),
                or_(WorkUnit.lease_id.is_(None), WorkUnit.lease_expires_at < now))


def claim(session: Session, hardware_id: int, agent_token_id: int, max_units: int,
          lease_seconds: float) -> tuple[str, dt.datetime, list[str], int]:
    """Lease up to ``max_units`` free units; returns (lease id, expiry, unit keys, units not
    measured yet). Commits."""
    now = db_now(session)
    expires = now + dt.timedelta(seconds=lease_seconds)
    lease_id = secrets.token_hex(16)
    ids = (select(WorkUnit.id).where(WorkUnit.hardware_id == hardware_id, _free(now))
           .order_by(WorkUnit.id).limit(max_units))
    if is_postgres(session):
        ids = ids.with_for_update(skip_locked=True)
    session.execute(
        update(WorkUnit).where(WorkUnit.id.in_(ids.scalar_subquery()), _free(now))
        .values(lease_id=lease_id, lease_expires_at=expires, lease_seconds=lease_seconds,
                agent_token_id=agent_token_id)
        .execution_options(synchronize_session=False))
    session.commit()
    keys = list(session.scalars(
        select(WorkUnit.unit_key).where(WorkUnit.hardware_id == hardware_id, WorkUnit.lease_id == lease_id)
        .order_by(WorkUnit.id)))
    remaining = session.scalar(select(func.count()).where(WorkUnit.hardware_id == hardware_id,
                                                          WorkUnit.done.is_(False)))
    return lease_id, expires, keys, int(remaining or 0)


def extend(session: Session, hardware_id: int, lease_id: str) -> dt.datetime | None:
    """Push a live lease's expiry forward by its own length; None when the lease is unknown,
    expired or finished."""
    now = db_now(session)
    seconds = session.scalar(
        select(WorkUnit.lease_seconds).where(WorkUnit.hardware_id == hardware_id, WorkUnit.lease_id == lease_id,
                                             WorkUnit.done.is_(False), WorkUnit.lease_expires_at >= now).limit(1))
    if seconds is None:
        session.rollback()
        return None
    expires = now + dt.timedelta(seconds=seconds)
    res = session.execute(
        update(WorkUnit).where(WorkUnit.hardware_id == hardware_id, WorkUnit.lease_id == lease_id,
                               WorkUnit.done.is_(False), WorkUnit.lease_expires_at >= now)
        .values(lease_expires_at=expires).execution_options(synchronize_session=False))
    session.commit()
    return expires if res.rowcount else None  # type: ignore[attr-defined]
