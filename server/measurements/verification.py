"""Closed loop in the service: the architectures a finished search put on each target's front are
measured end to end by that target's own agents, next to what the table predicted.

A front architecture is agent work like a unit (``work_units`` row, key ``subnet:<LightTrack
string>``): agents lease it, download its ONNX (the whole exported search graph, as
``lutnas search verify`` measures locally) and measure it with the table's protocol; nothing in
the agent changes. Its result goes to ``subnet_measurements`` instead of the table, and each new
batch refits the target's calibration from every subnet measured there (the table's usual robust
scale, ``latency_tables.calibrate``) with the figures before and after kept under ``verified``,
which the dashboard shows as the table's fidelity. The front's points keep what the search used
(``predicted_ms``) and gain ``measured_ms`` and ``over_budget``.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from latency_tables.kinds import Kind, subnet_key, subnet_of
from server.db import insert_ignore
from server.models import (
    ArchitectureRow,
    FrontPoint,
    Hardware,
    LatencyTable,
    SubnetMeasurement,
    WorkUnit,
    utcnow,
)

log = logging.getLogger("lutnas.server")


def table_units() -> ColumnElement[bool]:
    """``work_units`` rows that are the table's work (its units and the overhead, not subnets
    queued for measurement nor drift anchors): what coverage and missing-unit counts are about."""
    return WorkUnit.kind.in_([k.value for k in Kind if k.is_table])


def queue_front(session: Session, search_id: int, max_points: int) -> int:
    """Queue the front architectures of ``search_id`` (at most ``max_points`` per target, fastest
    first) for their targets' agents; ones already measured or queued there are not queued again.
    Returns how many were queued. The caller commits."""
    rows = session.execute(
        select(FrontPoint.hardware_id, ArchitectureRow.lighttrack)
        .join(ArchitectureRow, ArchitectureRow.id == FrontPoint.arch_id)
        .where(FrontPoint.search_id == search_id)
        .order_by(FrontPoint.hardware_id, FrontPoint.latency_ms, FrontPoint.arch_id)).all()
    per_target: dict[int, list[str]] = {}
    for hw_id, lighttrack in rows:
        keys = per_target.setdefault(hw_id, [])
        if len(keys) < max_points and subnet_key(lighttrack) not in keys:
            keys.append(subnet_key(lighttrack))
    measured = {(h, subnet_key(a)) for h, a in session.execute(
        select(SubnetMeasurement.hardware_id, SubnetMeasurement.lighttrack)
        .where(SubnetMeasurement.hardware_id.in_(list(per_target)))).all()} if per_target else set()
    work = [{"hardware_id": h, "unit_key": k, "done": False}
            for h, keys in per_target.items() for k in keys if (h, k) not in measured]
    return insert_ignore(session, WorkUnit, work, ["hardware_id", "unit_key"])


def store_measurements(session: Session, hw: Hardware, results: list[dict[str, Any]],
                       unit_filter: list[str] | None = None) -> int:
    """Keep agents' end-to-end results of subnets (first result wins); then a transfer target whose
    measurements are complete gets its table (``server.measurements.transfer``), any other target a refit of its
    calibration from all of them. Call after the upload's work rows are marked done. Returns how
    many were new. The caller commits."""
    from server.measurements.transfer import finish_transfer

    rows = [{"hardware_id": hw.id, "lighttrack": subnet_of(r["unit_key"]), "median_ms": r["median_ms"],
             "p90_ms": r.get("p90_ms"), "count": r["count"], "env": r.get("env") or {}, "measured_at": utcnow()}
            for r in results]
    stored = insert_ignore(session, SubnetMeasurement, rows, ["hardware_id", "lighttrack"])
    if not finish_transfer(session, hw, unit_filter) and stored:
        refit(session, hw)
    return stored


def refit(session: Session, hw: Hardware) -> dict[str, Any] | None:
    """Fit the target's calibration on every subnet measured there (two at least): the robust scale
    of ``latency_tables.calibrate``, with ``verified`` = agreement with these measurements of the
    table's predictions just before this refit and after it. None when there are too few."""
    from latency_tables.calibrate import fit_calibration
    from latency_tables.fidelity import agreement
    from latency_tables.predict import MissingUnitsError
    from server.measurements.lut import predictor_for
    from server.measurements.workunits import space_of
    from tracking.space import Architecture, ArchitectureError

    measured = session.execute(select(SubnetMeasurement.lighttrack, SubnetMeasurement.median_ms)
                               .where(SubnetMeasurement.hardware_id == hw.id)
                               .order_by(SubnetMeasurement.id)).all()
    space = space_of(hw.space)
    archs, y = [], []
    for lighttrack, ms in measured:
        try:
            archs.append(Architecture.parse(lighttrack, space))
            y.append(float(ms))
        except ArchitectureError:  # written by this module from a front of this target: never expected
            log.warning("hardware %s: measured subnet %r does not parse; left out of the refit", hw.id, lighttrack)
    if len(y) < 2:
        return None
    table = session.get(LatencyTable, hw.table_id)
    raw = predictor_for(session, hw, calibrated=False)  # the table read once; its calibration applied below
    try:
        before = raw.with_calibration(table.calibration if table is not None else None).predict_batch(archs)
        calib = fit_calibration(raw, archs, y)
    except MissingUnitsError:  # the table lost units since the search: nothing to refit against
        return None
    calib["verified"] = {"n": len(y), "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                         "before": agreement(before, y), "after": calib["after"], "after_cv": calib["after_cv"]}
    if table is not None:
        table.calibration = calib
    return calib


def measured_for(session: Any, hardware_id: int, lighttracks: list[str], stat: str = "p50") -> dict[str, float]:
    """Measured end-to-end latencies (ms) of those architectures on ``hardware_id``: their median,
    or their p90 for a front searched on p90."""
    if not lighttracks:
        return {}
    col = SubnetMeasurement.p90_ms if stat == "p90" else SubnetMeasurement.median_ms
    rows = session.execute(select(SubnetMeasurement.lighttrack, col).where(
        SubnetMeasurement.hardware_id == hardware_id, SubnetMeasurement.lighttrack.in_(lighttracks))).all()
    return {a: float(ms) for a, ms in rows if ms is not None}
