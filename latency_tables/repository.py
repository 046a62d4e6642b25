"""One latency table's facts through one session: the only code that reads or writes a table's
entries, its per-run overhead and its boundary layouts, used alike by the local CLI
(:class:`latency_tables.store.LatencyStore`) and the service (``server.measurements.lut``, agents' uploads,
transfers).

Facts and their one place:

* unit entries: ``lut_entries`` rows whose key is a unit's (:func:`stats` by statistic);
* the per-run overhead: ``lut_tables.overhead_ms`` (:attr:`overhead_ms`). An agent's overhead
  measurement is also kept as its ``overhead:empty`` entry (the service's coverage and exports
  count it as work), and :meth:`add_results` sets the table's value from it in the same step;
* whole subnets are measurements, not entries: :meth:`add_results` refuses them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from latency_tables.db import LatencyEntry, LatencyTable, insert_ignore
from latency_tables.kinds import OVERHEAD_KEY, Kind, kind_of
from profilers.layout import ENV_KEY as LAYOUT_ENV_KEY
from profilers.layout import valid_layout
from tracking.space import SearchSpace

# The statistic a prediction sums, by name: p50 is the median; p90/p99 the unit's tail.
LATENCY_STATS = {"p50": "median_ms", "p90": "p90_ms", "p99": "p99_ms"}
ENTRY_STATS = ("median_ms", "p10_ms", "p90_ms", "iqr_ms", "count", "p99_ms")
ENTRY_COLUMNS = (*ENTRY_STATS, "env", "measured_at")


def stat_column(stat: str) -> str:
    """The entry column of a latency statistic (``p50``, ``p90``, ``p99``)."""
    try:
        return LATENCY_STATS[stat]
    except KeyError:
        raise ValueError(f"latency stat must be one of {', '.join(LATENCY_STATS)}, got {stat!r}") from None


class TableRepository:
    """Reads and writes of table ``table_id`` in ``session`` (the caller commits)."""

    def __init__(self, session: Session, table_id: int) -> None:
        self.session = session
        self.table_id = table_id

    @property
    def table(self) -> LatencyTable:
        t = self.session.get(LatencyTable, self.table_id)
        if t is None:
            raise ValueError(f"no latency table with id {self.table_id}")
        return t

    # -- reads ---------------------------------------------------------------------------
    def stats(self, stat: str = "p50") -> dict[str, float]:
        """Unit key -> the unit's ``stat`` in ms. Entries that lack it (p99 of entries measured
        before it was kept) are left out, so a prediction needing them raises MissingUnitsError
        instead of mixing statistics; the overhead entry is not a unit and is left out too."""
        return self.column(stat_column(stat))

    def column(self, name: str) -> dict[str, float]:
        """Unit key -> one statistic column of the unit entries (``median_ms``, ``p10_ms``, ...)."""
        if name not in ENTRY_STATS:
            raise ValueError(f"no entry statistic {name!r}")
        rows = self.session.execute(select(LatencyEntry.unit_key, getattr(LatencyEntry, name))
                                    .where(LatencyEntry.table_id == self.table_id))
        return {k: float(v) for k, v in rows if v is not None and kind_of(k) is Kind.UNIT}

    @property
    def overhead_ms(self) -> float | None:
        """The per-run overhead every prediction adds once (None: not measured yet)."""
        return self.table.overhead_ms

    def layouts(self) -> dict[str, dict[str, float]]:
        """Unit key -> boundary reorder shares recorded with the entries (``env["layout"]``,
        written by ``lutnas profile`` and profiler agents; older entries have none)."""
        rows = self.session.execute(select(LatencyEntry.unit_key, LatencyEntry.env)
                                    .where(LatencyEntry.table_id == self.table_id))
        found = {k: valid_layout(env.get(LAYOUT_ENV_KEY)) for k, env in rows if isinstance(env, dict)}
        return {k: v for k, v in found.items() if v is not None}

    def predictor(self, space: SearchSpace | None = None, calibrated: bool = True, layout: bool = True,
                  stat: str = "p50") -> Any:
        """The table's :class:`~latency_tables.predict.LatencyPredictor`: ``calibrated=False`` the
        raw unit sums a calibration is fitted on, ``layout=False`` without the boundary reorder
        correction, ``stat`` p50 or a tail (median plus the root sum of squares of spreads). A
        calibrated predictor also carries the host speed the last drift-probe round applied
        (``runtime["drift"]``, ``server.measurements.drift``)."""
        from latency_tables.anchors import with_drift
        from latency_tables.predict import LatencyPredictor, tail_split

        t = self.table
        medians, spread = tail_split(self.stats("p50"), self.stats(stat) if stat != "p50" else None)
        calibration = with_drift(t.calibration, (t.runtime or {}).get("drift")) if calibrated else None
        pred = LatencyPredictor(medians, space, t.overhead_ms, calibration,
                                self.layouts() if layout else None, stat, spread)
        pred.frame = (t.runtime or {}).get("frame")
        return pred

    # -- writes --------------------------------------------------------------------------
    def put(self, results: Mapping[str, Mapping[str, Any]]) -> int:
        """Insert or replace unit entries (``key -> row`` of :data:`ENTRY_COLUMNS`, checked by the
        caller); an ``overhead:empty`` row also becomes the table's overhead."""
        self._refuse_subnets(results)
        existing = {e.unit_key: e for e in self.session.scalars(
            select(LatencyEntry).where(LatencyEntry.table_id == self.table_id,
                                       LatencyEntry.unit_key.in_(list(results))))}
        for key, values in results.items():
            if key in existing:
                for c, v in values.items():
                    setattr(existing[key], c, v)
            else:
                self.session.add(LatencyEntry(table_id=self.table_id, unit_key=key, **values))
        if OVERHEAD_KEY in results:
            self.table.overhead_ms = float(results[OVERHEAD_KEY]["median_ms"])
        return len(results)

    def add_results(self, results: Mapping[str, Mapping[str, Any]]) -> int:
        """Agents' results, first one wins (repeats are not stored; safe under concurrent
        uploads); returns how many were new. An overhead result sets the table's overhead."""
        self._refuse_subnets(results)
        rows = [{"table_id": self.table_id, "unit_key": k, **{c: v for c, v in r.items() if c in ENTRY_COLUMNS}}
                for k, r in results.items()]
        stored = insert_ignore(self.session, LatencyEntry, rows, ["table_id", "unit_key"])
        if OVERHEAD_KEY in results:
            self.table.overhead_ms = self.session.scalar(select(LatencyEntry.median_ms).where(
                LatencyEntry.table_id == self.table_id, LatencyEntry.unit_key == OVERHEAD_KEY))
        return stored

    def set_overhead(self, overhead_ms: float | None) -> None:
        self.table.overhead_ms = overhead_ms

    def set_layouts(self, layouts: Mapping[str, Mapping[str, float]]) -> int:
        """Record boundary reorder shares on existing entries (in their ``env``, under
        :data:`LAYOUT_ENV_KEY`); returns the number updated."""
        n = 0
        for e in self.session.scalars(select(LatencyEntry).where(LatencyEntry.table_id == self.table_id,
                                                                 LatencyEntry.unit_key.in_(list(layouts)))):
            e.env = {**(e.env or {}), LAYOUT_ENV_KEY: dict(layouts[e.unit_key])}
            n += 1
        return n

    @staticmethod
    def _refuse_subnets(results: Mapping[str, Any]) -> None:
        bad = [k for k in results if not kind_of(k).is_table]
        if bad:
            raise ValueError(f"{bad[0]!r} is a whole-subnet measurement, not a table entry")

