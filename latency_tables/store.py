"""The LUT store: tables of (hardware target, runtime configuration) -> unit key -> statistics,
kept in the database models of :mod:`latency_tables.db`; CSV and Parquet import/export (pandas).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import Engine, select
from sqlalchemy.exc import DatabaseError
from sqlalchemy.orm import Session

from latency_tables.db import LatencyEntry, LatencyTable, create_schema, make_engine
from latency_tables.repository import LATENCY_STATS, TableRepository, stat_column  # noqa: F401 - re-exported

STAT_COLUMNS = ("median_ms", "p10_ms", "p90_ms", "iqr_ms", "count")
# Kept when known, absent from older results and files (NULL in the database).
OPTIONAL_STAT_COLUMNS = ("p99_ms",)
FILE_COLUMNS = ("unit_key", *STAT_COLUMNS, "env", "measured_at",
                "table", "hardware", "runtime", "overhead_ms", "calibration")
@dataclass(frozen=True)
class TableInfo:
    """A table's identity and settings, detached from any session."""

    id: int
    name: str
    hardware: dict[str, Any]
    runtime: dict[str, Any]
    overhead_ms: float | None
    calibration: dict[str, Any] | None

    @classmethod
    def of(cls, t: LatencyTable) -> TableInfo:
        return cls(t.id, t.name, dict(t.hardware or {}), dict(t.runtime or {}), t.overhead_ms,
                   dict(t.calibration) if t.calibration else None)


def default_table_name(hardware: Mapping[str, Any], runtime: Mapping[str, Any]) -> str:
    """``<hardware label>/<backend>-<provider>-t<threads>-<precision>-opt<level>[-cpuclock]``."""
    label = hardware.get("label") or hardware.get("cpu") or "device"
    return (f"{label}/{runtime.get('backend', '?')}-{runtime.get('provider', '?')}-t{runtime.get('threads', '?')}"
            f"-{runtime.get('precision', 'fp32')}-opt{runtime.get('graph_optimization', 'all')}"
            + ("" if runtime.get("clock", "wall") == "wall" else f"-{runtime['clock']}clock"))


def split_table_spec(spec: str) -> tuple[str, str | None]:
    """A table as every command names it: ``PATH_OR_URL`` or ``PATH_OR_URL#NAME`` (the name is
    needed only when the database holds several tables) -> ``(location, name or None)``."""
    location, _, name = spec.partition("#")
    if not location:
        raise ValueError(f"table {spec!r}: expected a SQLite file or database URL, optionally #NAME")
    return location, (name or None)


class LatencyStore:
    """Tables in one database (a SQLite file path or a database URL)."""

    def __init__(self, url_or_path: str | Path | Engine, create: bool = True) -> None:
        self.engine = url_or_path if isinstance(url_or_path, Engine) else make_engine(url_or_path)
        if create:
            create_schema(self.engine)

    def session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    # -- tables -------------------------------------------------------------------------
    def tables(self) -> list[TableInfo]:
        try:
            with self.session() as s:
                return [TableInfo.of(t) for t in s.scalars(select(LatencyTable).order_by(LatencyTable.id))]
        except DatabaseError as e:  # not a database, or one without our tables
            raise ValueError(f"{self.engine.url.render_as_string(hide_password=True)} is not a latency-table "
                             f"database ({str(e.orig).splitlines()[0] if e.orig else type(e).__name__})") from None

    def find(self, name: str | None = None) -> TableInfo:
        """The table called ``name``; without a name, the only table of the database."""
        tables = self.tables()
        if name is None:
            if len(tables) == 1:
                return tables[0]
            if not tables:
                raise ValueError("the database holds no latency table")
            raise ValueError(f"the database holds {len(tables)} tables; name one with --name: "
                             + ", ".join(t.name for t in tables))
        for t in tables:
            if t.name == name:
                return t
        raise ValueError(f"no latency table named {name!r} (have: {', '.join(t.name for t in tables) or 'none'})")

    def get_or_create(self, name: str, hardware: Mapping[str, Any], runtime: Mapping[str, Any]) -> TableInfo:
        """The table ``name``; created if absent. An existing table must have the same runtime."""
        with self.session() as s:
            t = s.scalar(select(LatencyTable).where(LatencyTable.name == name))
            if t is None:
                t = LatencyTable(name=name, hardware=dict(hardware), runtime=dict(runtime))
                s.add(t)
                s.commit()
            elif _runtime_key(t.runtime) != _runtime_key(runtime):
                raise ValueError(f"table {name!r} was measured with runtime {t.runtime}, not {dict(runtime)}; "
                                 "use another table name")
            return TableInfo.of(t)

    def update(self, table_id: int, **fields: Any) -> TableInfo:
        """Set ``overhead_ms``, ``calibration``, ``hardware`` or ``runtime`` of a table."""
        allowed = {"overhead_ms", "calibration", "hardware", "runtime"}
        if set(fields) - allowed:
            raise ValueError(f"cannot update {sorted(set(fields) - allowed)}")
        with self.session() as s:
            t = s.get(LatencyTable, table_id)
            if t is None:
                raise ValueError(f"no latency table with id {table_id}")
            for k, v in fields.items():
                setattr(t, k, v)
            s.commit()
            return TableInfo.of(t)

    def delete(self, table_id: int) -> None:
        with self.session() as s:
            t = s.get(LatencyTable, table_id)
            if t is not None:
                s.delete(t)
                s.commit()

    # -- entries ------------------------------------------------------------------------
    def keys(self, table_id: int) -> set[str]:
        with self.session() as s:
            return set(s.scalars(select(LatencyEntry.unit_key).where(LatencyEntry.table_id == table_id)))

    def medians(self, table_id: int) -> dict[str, float]:
        return self.stats(table_id, "p50")

    def stats(self, table_id: int, stat: str = "p50") -> dict[str, float]:
        """Unit key -> the unit's ``stat`` (``p50``, ``p90``, ``p99``) in ms
        (:meth:`TableRepository.stats <latency_tables.repository.TableRepository.stats>`)."""
        with self.session() as s:
            return TableRepository(s, table_id).stats(stat)

    def layouts(self, table_id: int) -> dict[str, dict[str, float]]:
        """Unit key -> boundary reorder shares, for the entries that recorded them."""
        with self.session() as s:
            return TableRepository(s, table_id).layouts()

    def set_layouts(self, table_id: int, layouts: Mapping[str, Mapping[str, float]]) -> int:
        """Record boundary reorder shares on existing entries; returns the number updated."""
        with self.session() as s:
            n = TableRepository(s, table_id).set_layouts(layouts)
            s.commit()
        return n

    def predictor(self, table_id: int, **kwargs: Any) -> Any:
        """The table's predictor (:meth:`TableRepository.predictor`)."""
        with self.session() as s:
            return TableRepository(s, table_id).predictor(**kwargs)

    def put(self, table_id: int, results: Mapping[str, Any]) -> int:
        """Insert or replace entries: ``unit_key -> Measurement`` (or a dict with the stat
        columns and optional ``env``/``measured_at``). Returns the number written."""
        if not results:
            return 0
        rows = {}
        for key, m in results.items():
            row = m if isinstance(m, Mapping) else m.to_dict()
            values = {c: (int(row[c]) if c == "count" else float(row[c])) for c in STAT_COLUMNS}
            for c in OPTIONAL_STAT_COLUMNS:
                v = row.get(c)
                values[c] = None if v is None or pd.isna(v) else float(v)
            values["env"] = dict(row.get("env") or {})
            values["measured_at"] = _as_datetime(row.get("measured_at"))
            rows[key] = values
        with self.session() as s:
            n = TableRepository(s, table_id).put(rows)
            s.commit()
        return n

    def frame(self, table_id: int) -> pd.DataFrame:
        """Entries of one table, with the table's settings repeated per row (file layout)."""
        with self.session() as s:
            t = s.get(LatencyTable, table_id)
            if t is None:
                raise ValueError(f"no latency table with id {table_id}")
            rows = [{"unit_key": e.unit_key, **{c: getattr(e, c) for c in STAT_COLUMNS + OPTIONAL_STAT_COLUMNS},
                     "env": json.dumps(e.env or {}, sort_keys=True),
                     "measured_at": _as_datetime(e.measured_at).isoformat()}
                    for e in s.scalars(select(LatencyEntry).where(LatencyEntry.table_id == table_id)
                                       .order_by(LatencyEntry.unit_key))]
            meta = {"table": t.name, "hardware": json.dumps(t.hardware or {}, sort_keys=True),
                    "runtime": json.dumps(t.runtime or {}, sort_keys=True), "overhead_ms": t.overhead_ms,
                    "calibration": json.dumps(t.calibration) if t.calibration else ""}
        df = pd.DataFrame(rows, columns=[*FILE_COLUMNS[:8], *OPTIONAL_STAT_COLUMNS])
        for k, v in meta.items():
            df[k] = v
        return df.astype({"count": "int64", "overhead_ms": "float64", "p99_ms": "float64"})

    # -- files --------------------------------------------------------------------------
    def export_file(self, table_id: int, path: str | Path) -> Path:
        """Write one table to ``.csv`` or ``.parquet``."""
        path = Path(path)
        df = self.frame(table_id)
        if path.suffix == ".csv":
            df.to_csv(path, index=False)
        elif path.suffix == ".parquet":
            df.to_parquet(path, index=False)
        else:
            raise ValueError(f"unknown table file type {path.suffix!r}: use .csv or .parquet")
        return path

    def import_file(self, path: str | Path, name: str | None = None, replace: bool = False) -> TableInfo:
        """Read a file written by :meth:`export_file` into a table (``name`` overrides the file's).
        Existing entries of that table are updated; ``replace`` drops the table's other entries."""
        df = read_table_file(path)
        tname = name or str(df["table"].iloc[0])
        hardware = json.loads(df["hardware"].iloc[0] or "{}")
        runtime = json.loads(df["runtime"].iloc[0] or "{}")
        if replace:
            try:
                self.delete(self.find(tname).id)
            except ValueError:
                pass
        info = self.get_or_create(tname, hardware, runtime)
        overhead = df["overhead_ms"].iloc[0]
        calib = df["calibration"].iloc[0]
        info = self.update(info.id, overhead_ms=None if pd.isna(overhead) else float(overhead),
                           calibration=json.loads(calib) if isinstance(calib, str) and calib else None)
        self.put(info.id, {r["unit_key"]: {**{c: r[c] for c in STAT_COLUMNS},
                                            **{c: r[c] for c in OPTIONAL_STAT_COLUMNS if c in r},
                                            "env": json.loads(r["env"] or "{}"),
                                            "measured_at": r["measured_at"]}
                           for r in df.to_dict("records")})
        return info


def read_table_file(path: str | Path) -> pd.DataFrame:
    """Load and check a table file; a clear ValueError names what is wrong."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such table file: {path}")
    if path.suffix == ".csv":
        df = pd.read_csv(path, keep_default_na=True, dtype={"env": str, "calibration": str,
                                                             "hardware": str, "runtime": str})
        df["calibration"] = df["calibration"].fillna("")
        df["env"] = df["env"].fillna("{}")
    elif path.suffix == ".parquet":
        df = pd.read_parquet(path)
    else:
        raise ValueError(f"unknown table file type {path.suffix!r}: use .csv or .parquet")
    missing = [c for c in FILE_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{path.name}: missing columns {', '.join(missing)}")
    if df.empty:
        raise ValueError(f"{path.name}: no entries")
    if df["unit_key"].duplicated().any():
        raise ValueError(f"{path.name}: duplicate unit keys, e.g. {df['unit_key'][df['unit_key'].duplicated()].iloc[0]}")
    bad = df[~(pd.to_numeric(df["median_ms"], errors="coerce") > 0)]
    if not bad.empty:
        raise ValueError(f"{path.name}: median_ms must be a positive number (unit {bad['unit_key'].iloc[0]})")
    return df


def _runtime_key(runtime: Mapping[str, Any]) -> tuple[Any, ...]:
    keys = ("backend", "provider", "threads", "precision", "graph_optimization")
    return (*(str(runtime.get(k)) for k in keys), str(runtime.get("clock", "wall")),
            int(runtime.get("flush_bytes", 0)), bool(runtime.get("warm_inputs", False)))


def _as_datetime(value: Any) -> dt.datetime:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return dt.datetime.now(dt.UTC)
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime()
    if value.tzinfo is None:  # SQLite returns naive datetimes; they were stored as UTC
        value = value.replace(tzinfo=dt.UTC)
    return value

