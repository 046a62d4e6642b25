"""Architectures at the edge (parsing with field-named errors) and LUT predictions for a target."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from latency_tables.db import LatencyTable
from latency_tables.kinds import Kind, kind_of
from latency_tables.repository import TableRepository
from server.measurements.workunits import space_of
from server.models import Hardware
from server.problems import Problem
from tracking.space import Architecture, ArchitectureError


def parse_architectures(values: list[str | dict[str, Any]], space: str, field: str) -> list[Architecture]:
    """Parse LightTrack strings or JSON objects; the first bad one is a 422 naming ``field.i``."""
    sp = space_of(space)
    out = []
    for i, v in enumerate(values):
        try:
            out.append(Architecture.parse(v, sp) if isinstance(v, str) else Architecture.from_json(v, sp))
        except ArchitectureError as e:
            raise Problem(422, str(e), f"{field}.{i}") from None
    return out


def predictor_for(session: Session, hw: Hardware, calibrated: bool = True, stat: str = "p50") -> Any:
    """The ``latency_tables.predict.LatencyPredictor`` of a target's table, read by the table
    repository as ``lutnas latency predict`` reads a local one (``calibrated=False``: the raw unit
    sums, what a calibration is fitted on; ``stat``: p50, or a tail statistic)."""
    if session.get(LatencyTable, hw.table_id) is None:
        raise ValueError(f"hardware target {hw.id} has no latency table")
    return TableRepository(session, hw.table_id).predictor(space_of(hw.space), calibrated=calibrated, stat=stat)


def store_results(session: Session, hw: Hardware, results: dict[str, dict[str, Any]],
                  unit_filter: list[str] | None = None) -> int:
    """Agents' results for ``hw``'s work, dispatched by kind in this one place: units and the
    overhead are table entries (first result wins; the overhead also becomes the table's
    ``overhead_ms``), whole subnets are measurements (``server.measurements.verification``: a front's closed
    loop, or a transfer), anchors are drift probes (``server.measurements.drift``). Call after their work rows
    are marked done; returns how many were new. The caller commits."""
    from server.measurements.drift import store_anchor_results
    from server.measurements.verification import store_measurements

    by_kind: dict[Kind, dict[str, dict[str, Any]]] = {k: {} for k in Kind}
    for key, r in results.items():
        by_kind[kind_of(key)][key] = r
    stored = TableRepository(session, hw.table_id).add_results({**by_kind[Kind.UNIT], **by_kind[Kind.OVERHEAD]})
    stored += store_anchor_results(session, hw, list(by_kind[Kind.ANCHOR].values()))
    return stored + store_measurements(session, hw, list(by_kind[Kind.SUBNET].values()), unit_filter)


def predict_for(session: Session, hw: Hardware, archs: list[Architecture]) -> list[float]:
    """LUT latencies of ``archs``; a 409 problem saying how many units are missing."""
    from latency_tables.predict import MissingUnitsError

    predictor = predictor_for(session, hw)
    try:
        return [float(x) for x in predictor.predict_batch(archs)]
    except MissingUnitsError as e:
        n = len(e.keys)
        raise Problem(409, f"{n} unit{'s' if n != 1 else ''} of these architectures "
                      f"{'are' if n != 1 else 'is'} not measured yet on hardware {hw.id}",
                      "architectures", kind="missing-units",
                      extra={"missing_units": n, "missing_sample": sorted(e.keys)[:20]}) from None
