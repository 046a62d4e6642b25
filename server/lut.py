"""Architectures at the edge (parsing with field-named errors) and LUT predictions for a target."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from latency_tables.db import LatencyEntry, LatencyTable
from latency_tables.store import entry_layouts, stat_column
from server.models import Hardware
from server.problems import Problem
from server.workunits import OVERHEAD_KEY, space_of
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


def lut_entries(session: Session, table_id: int, stat: str = "p50") -> dict[str, float]:
    """Unit key -> the unit's ``stat`` (p50, p90, p99) in ms; units that lack it are left out
    (missing), never filled with another statistic."""
    col = getattr(LatencyEntry, stat_column(stat))
    rows = session.execute(select(LatencyEntry.unit_key, col).where(LatencyEntry.table_id == table_id)).all()
    return {k: float(v) for k, v in rows if v is not None}


def predictor_for(session: Session, hw: Hardware, calibrated: bool = True, stat: str = "p50") -> Any:
    """The ``latency_tables.predict.LatencyPredictor`` of a target's table (``calibrated=False``:
    the raw unit sums, what a calibration is fitted on; ``stat``: p50, or a tail statistic,
    predicted as the median plus the root sum of squares of the units' spreads)."""
    from latency_tables.predict import LatencyPredictor, tail_split

    table = session.get(LatencyTable, hw.table_id)
    if table is None:
        raise ValueError(f"hardware target {hw.id} has no latency table")
    entries = lut_entries(session, hw.table_id)
    overhead = entries.pop(OVERHEAD_KEY, table.overhead_ms or 0.0)
    tail = None
    if stat != "p50":  # medians plus the root sum of squares of unit spreads (LatencyPredictor)
        tail = lut_entries(session, hw.table_id, stat)
        tail.pop(OVERHEAD_KEY, None)
    medians, spread = tail_split(entries, tail)
    return LatencyPredictor(medians, overhead_ms=overhead, space=space_of(hw.space),
                            calibration=table.calibration if calibrated else None,
                            layouts=entry_layouts(session, hw.table_id), stat=stat, spread=spread)


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
