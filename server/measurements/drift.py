"""Drift probes: a target's anchor subnets re-measured by its own agents on a schedule, and the
table recalibrated to the host's speed from them, without waiting for a search.

A shared or throttled host changes speed by several percent over minutes (docs/latency.md, "Does
a table stay true?": 5-9% on this 2-core VM), and lone units re-measured later misjudge it; whole
graphs measured then and now compare like with like (``latency_tables.anchors``). So once a
target's table is complete, the service picks ``drift_anchors`` anchor subnets spread over its
predicted latency range and queues them as agent work (``anchor:<LightTrack>`` keys): round 1,
measured right after the units, is the baseline. Whenever an agent of the target asks for work
and the last round finished ``drift_interval_s`` ago or more, the anchors are queued again. A
finished round's speed is the median ratio now / baseline (``anchor_speed``); when the anchors
agree that it moved beyond their noise, the table's predictions are scaled by it
(``latency_tables.anchors.with_drift``), and the hardware's ``drift`` record says what was seen
and applied. Agents change nothing: an anchor is a whole graph like a front point.

State lives with the table (``runtime["anchors"]``: the anchors, their baseline and the current
round; ``runtime["drift"]``: the last round's reading and a bounded history); each round's
measurements are rows of ``anchor_measurements``.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from latency_tables.anchors import anchor_archs, anchor_speed
from latency_tables.db import LatencyTable, insert_ignore
from latency_tables.kinds import Kind, anchor_key, subnet_of
from server.db import db_now
from server.measurements.verification import table_units
from server.models import AnchorMeasurement, Hardware, WorkUnit

log = logging.getLogger("lutnas.server")

HISTORY = 50  # rounds kept in runtime["drift"]["history"]


def queue_probes(session: Session, hw: Hardware, interval_s: float, k: int) -> int:
    """When an agent of ``hw`` asks for work: queue the anchors' first round once its table is
    complete, or a new round when the last finished ``interval_s`` ago or more (0: off). Returns
    how many anchors were queued. Idempotent under concurrent leases (the row updates are
    conditional). The caller commits."""
    if interval_s <= 0:
        return 0
    table = session.get(LatencyTable, hw.table_id)
    if table is None or _undone(session, hw, table_units()):
        return 0
    runtime = dict(table.runtime or {})
    anchors = dict(runtime["anchors"]) if isinstance(runtime.get("anchors"), dict) else None
    now = db_now(session)
    if anchors is None:
        anchors = _pick(session, hw, k)
        if anchors is None:
            return 0
        anchors["round"] = 1
    else:
        if _undone(session, hw, WorkUnit.kind == Kind.ANCHOR.value):
            return 0  # a round is under way
        done_at = anchors.get("round_done_at") or anchors.get("measured_at")
        if done_at and (now - dt.datetime.fromisoformat(done_at)).total_seconds() < interval_s:
            return 0
        anchors["round"] = int(anchors.get("round", 1)) + 1
    anchors["queued_at"] = now.isoformat(timespec="seconds")
    keys = [anchor_key(a) for a in anchors["archs"]]
    insert_ignore(session, WorkUnit, [{"hardware_id": hw.id, "unit_key": key, "done": False} for key in keys],
                  ["hardware_id", "unit_key"])
    session.execute(update(WorkUnit).where(WorkUnit.hardware_id == hw.id, WorkUnit.unit_key.in_(keys),
                                           WorkUnit.done.is_(True))
                    .values(done=False, lease_id=None, lease_expires_at=None)
                    .execution_options(synchronize_session=False))
    table.runtime = {**runtime, "anchors": anchors}
    log.info("hardware %s: drift-probe round %s queued (%d anchors)", hw.id, anchors["round"], len(keys))
    return len(keys)


def _undone(session: Session, hw: Hardware, which: Any) -> int:
    return int(session.scalar(select(func.count()).where(WorkUnit.hardware_id == hw.id,
                                                         WorkUnit.done.is_(False), which)) or 0)


def _pick(session: Session, hw: Hardware, k: int) -> dict[str, Any] | None:
    """The anchors of a complete table, or None when it cannot predict the space (a target
    profiling a unit subset)."""
    from latency_tables.predict import MissingUnitsError
    from server.measurements.lut import predictor_for

    pred = predictor_for(session, hw, calibrated=False)
    try:
        archs = anchor_archs(pred, k)
        predicted = pred.predict_batch(archs)
    except MissingUnitsError:
        return None
    return {"archs": [a.to_string() for a in archs], "predicted_ms": [float(p) for p in predicted]}


def store_anchor_results(session: Session, hw: Hardware, results: list[dict[str, Any]]) -> int:
    """Keep agents' anchor results in the current round (first result wins); a round that now has
    every anchor is finished (:func:`finish_round`). Returns how many were new. The caller commits."""
    table = session.get(LatencyTable, hw.table_id)
    anchors = (table.runtime or {}).get("anchors") if table is not None else None
    if not results or not isinstance(anchors, dict):
        return 0
    rnd = int(anchors.get("round", 1))
    rows = [{"hardware_id": hw.id, "round": rnd, "lighttrack": subnet_of(r["unit_key"]), "median_ms": r["median_ms"],
             "p90_ms": r.get("p90_ms"), "count": r["count"], "env": r.get("env") or {},
             "measured_at": r.get("measured_at") or db_now(session)} for r in results]
    stored = insert_ignore(session, AnchorMeasurement, rows, ["hardware_id", "round", "lighttrack"])
    got = dict(session.execute(select(AnchorMeasurement.lighttrack, AnchorMeasurement.median_ms).where(
        AnchorMeasurement.hardware_id == hw.id, AnchorMeasurement.round == rnd)).all())
    if stored and all(a in got for a in anchors["archs"]):
        finish_round(session, table, [float(got[a]) for a in anchors["archs"]])
    return stored


def finish_round(session: Session, table: LatencyTable, now_ms: list[float]) -> None:
    """Round 1 becomes the baseline; a later round's speed is read against it and, when the
    anchors agree that the host moved, applied to the table's predictions."""
    runtime = dict(table.runtime or {})
    anchors = dict(runtime["anchors"])
    at = db_now(session).isoformat(timespec="seconds")
    anchors["round_done_at"] = at
    if "measured_ms" not in anchors:
        anchors.update(measured_ms=now_ms, measured_at=at)
        table.runtime = {**runtime, "anchors": anchors}
        return
    speed, se, moved = anchor_speed(now_ms, anchors["measured_ms"])
    reading = {"round": int(anchors["round"]), "at": at, "speed": speed, "se": None if se != se else se,
               "moved": moved}
    history = [*((runtime.get("drift") or {}).get("history") or []), reading][-HISTORY:]
    runtime["drift"] = {**reading, "applied": speed if moved else 1.0, "history": history}
    table.runtime = {**runtime, "anchors": anchors}
    log.info("table %s: anchors at %.3fx their baseline (se %s)%s", table.id, speed, reading["se"],
             ": predictions rescaled" if moved else ": within their noise")


def drift_out(runtime: dict[str, Any] | None) -> dict[str, Any] | None:
    """A target's drift record for the API, from its table's ``runtime``: the anchors, the last
    round's reading and what the predictions are scaled by; None before the anchors are chosen."""
    runtime = runtime or {}
    anchors = runtime.get("anchors")
    if not isinstance(anchors, dict):
        return None
    drift = runtime.get("drift") or {}
    return {"anchors": len(anchors.get("archs", [])), "round": int(anchors.get("round", 1)),
            "baseline_at": anchors.get("measured_at"), "last_round_at": anchors.get("round_done_at"),
            "speed": drift.get("speed"), "speed_se": drift.get("se"), "moved": bool(drift.get("moved", False)),
            "applied_scale": float(drift.get("applied", 1.0)), "history": drift.get("history", [])}
