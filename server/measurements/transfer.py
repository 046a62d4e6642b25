"""A new hardware target from another target's table plus K whole subnets measured on it: the
service side of ``latency_tables.transfer`` (``lutnas latency transfer`` does the same locally).

Registering a target with ``transfer_from`` gives its agents only the per-run overhead and K
seeded subnets to measure (``subnet:`` work, as the closed loop's), instead of every unit. When
the last of them arrives, the per-group scales are fitted against the source's raw table and the
new table is written: every unit's scaled in-graph cost plus the new overhead, ``count`` 0 and
``env.transferred_from``; the target's coverage is then complete, and the fit (scales, ridge,
in-sample and leave-one-out figures) is kept under the table's ``hardware["transfer"]``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from latency_tables.db import LatencyTable
from latency_tables.kinds import OVERHEAD_KEY, subnet_key
from latency_tables.repository import TableRepository
from server.db import insert_ignore
from server.measurements.workunits import space_of, work_keys
from server.models import Hardware, SubnetMeasurement, WorkUnit, utcnow
from server.problems import Problem

TRANSFER_SEED = 2000  # the subnets a transfer measures: the same K for every target of a space


def transfer_plan(session: Session, team_id: int, source_id: int, space: str, k: int) -> tuple[list[str], dict[str, Any]]:
    """The work keys of a target transferred from hardware ``source_id`` (the overhead and K
    subnets) and the plan kept with its table; a 422/409 problem on ``transfer_from`` when the
    source is not this team's, has another space, or its table is not complete."""
    from latency_tables.predict import MissingUnitsError
    from server.measurements.lut import predictor_for
    from tracking.space import sample_many

    source = session.get(Hardware, source_id)
    if source is None or source.team_id != team_id:
        raise Problem(422, f"hardware {source_id} is not one of this team's targets", "transfer_from")
    if source.space != space:
        raise Problem(422, f"hardware {source_id} has the {source.space!r} space, not {space!r}", "transfer_from")
    archs = sample_many(k, TRANSFER_SEED, space_of(space))
    try:
        predictor_for(session, source, calibrated=False).predict_batch(archs)
    except MissingUnitsError as e:
        raise Problem(409, f"hardware {source_id}'s table lacks {len(e.keys)} unit(s) these subnets need; a "
                      "transfer starts from a complete table", "transfer_from") from None
    keys = [OVERHEAD_KEY, *(subnet_key(a.to_string()) for a in archs)]
    return keys, {"from_hardware_id": source_id, "k": k, "seed": TRANSFER_SEED, "status": "measuring"}


def finish_transfer(session: Session, hw: Hardware, unit_filter: list[str] | None = None) -> bool:
    """If ``hw`` is a transfer target still measuring: once all its work is measured, fit and write
    its table. True while (and when) that happens: those subnets fit the transfer, not a refit."""
    table = session.get(LatencyTable, hw.table_id)
    plan = dict((table.hardware or {}).get("transfer") or {}) if table is not None else {}
    if table is None or not plan:
        return False
    if plan.get("status") != "measuring":  # done: later front measurements refit it like any table
        return False
    pending = session.scalar(select(func.count()).where(WorkUnit.hardware_id == hw.id, WorkUnit.done.is_(False)))
    if pending:
        return True
    try:
        fit, entries = _fit(session, hw, plan)
    except ValueError as e:  # e.g. subnets measured faster than the overhead: say so on the table
        table.hardware = {**table.hardware, "transfer": {**plan, "status": "failed", "error": str(e)[:300]}}
        return True
    now = utcnow()
    TableRepository(session, hw.table_id).add_results({k: {**v, "measured_at": now} for k, v in entries.items()})
    done_units = [{"hardware_id": hw.id, "unit_key": k, "done": True}
                  for k in work_keys(hw.space, unit_filter) if k != OVERHEAD_KEY]
    insert_ignore(session, WorkUnit, done_units, ["hardware_id", "unit_key"])
    table.hardware = {**table.hardware, "transfer": {**plan, "status": "done", **fit.to_dict()}}
    return True


def _fit(session: Session, hw: Hardware, plan: dict[str, Any]) -> tuple[Any, dict[str, dict[str, Any]]]:
    from latency_tables.transfer import fit_transfer, transferred_entries
    from server.measurements.lut import predictor_for
    from tracking.space import Architecture

    source_hw = session.get(Hardware, plan["from_hardware_id"])
    if source_hw is None:
        raise ValueError("the transfer's source hardware was deleted")
    source = predictor_for(session, source_hw, calibrated=False)
    rows = session.execute(select(SubnetMeasurement.lighttrack, SubnetMeasurement.median_ms)
                           .where(SubnetMeasurement.hardware_id == hw.id).order_by(SubnetMeasurement.id)).all()
    space = space_of(hw.space)
    archs = [Architecture.parse(a, space) for a, _ in rows]
    fit = fit_transfer(source, archs, [float(ms) for _, ms in rows], TableRepository(session, hw.table_id).overhead_ms or 0.0)
    src = TableRepository(session, source_hw.table_id)
    tails = {q: src.column(f"{q}_ms") for q in ("p10", "p90", "p99")}
    source_table = session.get(LatencyTable, source_hw.table_id)
    return fit, transferred_entries(source, tails, fit, source_table.name if source_table else str(source_hw.id))
