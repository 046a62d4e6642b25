"""SQLAlchemy 2 models of the latency lookup table (LUT), and the shared declarative ``Base``.

``Base`` is the one declarative base of the whole project: the server's models derive from it
too, so that there is a single ``Base.metadata`` and a single Alembic history (owned by the
server). Types are portable across SQLite (the embedded default) and PostgreSQL.

Table and column names are a contract with the server's migrations; do not rename them.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    Engine,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    UniqueConstraint,
    create_engine,
    event,
    func,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship


class Base(DeclarativeBase):
    """Shared declarative base (one metadata for LUT and server models)."""

    # Named constraints so Alembic autogenerate/batch migrations are deterministic on both dialects.
    metadata = MetaData(naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    })
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class LatencyTable(Base):
    """One LUT: a hardware target and a runtime configuration.

    ``hardware``: free-form description (``{"label": ..., "cpu": ..., "kind": ...}``).
    ``runtime``: ``{"backend", "provider", "threads", "precision", "graph_optimization"}``.
    ``overhead_ms``: per-run overhead (empty model) added once per prediction.
    ``calibration``: fitted correction (see ``latency_tables.calibrate``), or null.
    """

    __tablename__ = "lut_tables"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(255), unique=True, index=True)
    hardware: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    runtime: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    overhead_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    calibration: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), default=_utcnow, server_default=func.now())

    entries: Mapped[list[LatencyEntry]] = relationship(
        back_populates="table", cascade="all, delete-orphan", passive_deletes=True)

    def __repr__(self) -> str:
        return f"LatencyTable(id={self.id!r}, name={self.name!r})"


class LatencyEntry(Base):
    """Statistics of one unit in one table (milliseconds)."""

    __tablename__ = "lut_entries"
    __table_args__ = (UniqueConstraint("table_id", "unit_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    table_id: Mapped[int] = mapped_column(ForeignKey("lut_tables.id", ondelete="CASCADE"), index=True)
    unit_key: Mapped[str] = mapped_column(String(255))
    median_ms: Mapped[float] = mapped_column(Float)
    p10_ms: Mapped[float] = mapped_column(Float)
    p90_ms: Mapped[float] = mapped_column(Float)
    # Tail latency (1 frame in 100); NULL for entries measured before it was kept.
    p99_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    iqr_ms: Mapped[float] = mapped_column(Float)
    count: Mapped[int] = mapped_column(Integer)
    env: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    measured_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), default=_utcnow, server_default=func.now())

    table: Mapped[LatencyTable] = relationship(back_populates="entries")

    def __repr__(self) -> str:
        return f"LatencyEntry(table_id={self.table_id!r}, unit_key={self.unit_key!r}, median_ms={self.median_ms!r})"


def database_url(url_or_path: str | Path) -> str:
    """A URL as given; a plain file path becomes a SQLite URL."""
    text = str(url_or_path)
    if "://" in text:
        return text
    if text == ":memory:":
        return "sqlite://"
    return f"sqlite:///{Path(text).expanduser().resolve()}"


def make_engine(url_or_path: str | Path, **kwargs: Any) -> Engine:
    """Engine for a database URL or a SQLite file path (WAL, busy timeout, foreign keys on)."""
    url = database_url(url_or_path)
    if url.startswith("sqlite"):
        kwargs.setdefault("connect_args", {}).setdefault("timeout", 30)
    else:
        kwargs.setdefault("pool_pre_ping", True)
    engine = create_engine(url, **kwargs)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    try:
        cur.execute("PRAGMA journal_mode=WAL")  # readers do not block the writer
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA foreign_keys=ON")
    finally:
        cur.close()


def create_schema(engine: Engine) -> None:
    """Create every table of ``Base.metadata`` (local mode; the server uses Alembic instead)."""
    Base.metadata.create_all(engine)


__all__ = ["Base", "LatencyTable", "LatencyEntry", "make_engine", "create_schema", "database_url", "insert_ignore"]


def insert_ignore(session: Session, model: type, rows: list[dict], conflict: list[str]) -> int:
    """Insert ``rows``, skipping those that collide on the unique ``conflict`` columns;
    returns how many were inserted (``INSERT ... ON CONFLICT DO NOTHING`` on both dialects)."""
    if not rows:
        return 0
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    table = model.__table__  # type: ignore[attr-defined]
    pk = list(table.primary_key.columns)[0]
    # RETURNING counts what was inserted on both dialects (rowcount is -1 for batched psycopg inserts)
    stmt = insert(table).values(rows).on_conflict_do_nothing(index_elements=conflict).returning(pk)
    return len(session.execute(stmt).all())
