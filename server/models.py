"""SQLAlchemy 2 models of the service (teams, hardware, agents, supernets, searches, results).

They share ``latency_tables.db.Base`` with the LUT models, so there is one metadata and one
Alembic history (``server/migrations``). Each hardware target owns one ``LatencyTable``.
Indexes are chosen for the hot reads: ranked results by ``(search_id, rank)``, Pareto points by
``(search_id, hardware_id)``, the job queue by ``(status, id)``, and lease claims by
``(hardware_id, done, lease_expires_at)``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from latency_tables.db import Base, LatencyEntry, LatencyTable
from latency_tables.kinds import Kind, kind_of
from server.jobs.status import SearchStatus


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Timezone-aware UTC datetimes on both dialects (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Team(Base):
    __tablename__ = "teams"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ApiKey(Base):
    """A team API key; only its sha256 is stored."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"), index=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Hardware(Base):
    """A hardware target (device + runtime) of a team, with its own latency table."""

    __tablename__ = "hardware"
    __table_args__ = (UniqueConstraint("team_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(32))
    runtime: Mapped[dict[str, Any]] = mapped_column(JSON)
    space: Mapped[str] = mapped_column(String(16), default="paper")
    table_id: Mapped[int] = mapped_column(ForeignKey("lut_tables.id", ondelete="RESTRICT"), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class AgentToken(Base):
    """A profiler-agent token scoped to one hardware target; only its sha256 is stored."""

    __tablename__ = "agent_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    hardware_id: Mapped[int] = mapped_column(ForeignKey("hardware.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(128))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # last authenticated request of this agent (the dashboard's "last heartbeat"); null: never seen
    last_seen_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class UiSession(Base):
    """A dashboard sign-in: a team API key exchanged for a cookie; only the cookie's sha256 is
    stored, so a database dump opens no session. Signing out deletes the row."""

    __tablename__ = "ui_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


def _kind_default(context: Any) -> str:
    return kind_of(context.get_current_parameters()["unit_key"]).value


class WorkUnit(Base):
    """One unit a hardware target must measure, and its lease (the agents' work queue).

    A unit is free when not ``done`` and its lease is absent or expired; claiming sets
    ``lease_id``/``lease_expires_at`` in one conditional statement (see ``server.leases``).
    """

    __tablename__ = "work_units"
    __table_args__ = (
        UniqueConstraint("hardware_id", "unit_key"),
        Index("ix_work_units_claim", "hardware_id", "done", "lease_expires_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    hardware_id: Mapped[int] = mapped_column(ForeignKey("hardware.id", ondelete="CASCADE"))
    unit_key: Mapped[str] = mapped_column(String(255))
    # unit, overhead or subnet (latency_tables.kinds): derived from the key on every insert, Core
    # multi-row inserts included, so no caller states it and queries never test key prefixes
    kind: Mapped[str] = mapped_column(String(16), default=_kind_default, server_default=Kind.UNIT.value)
    done: Mapped[bool] = mapped_column(Boolean, default=False)
    lease_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    lease_expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    lease_seconds: Mapped[float | None] = mapped_column(Float, nullable=True)  # heartbeats extend by this
    agent_token_id: Mapped[int | None] = mapped_column(
        ForeignKey("agent_tokens.id", ondelete="SET NULL"), nullable=True)


class Supernet(Base):
    __tablename__ = "supernets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(128))
    checkpoint_path: Mapped[str] = mapped_column(Text)
    data_path: Mapped[str] = mapped_column(Text)
    space: Mapped[dict[str, Any]] = mapped_column(JSON)
    # an ensemble: the ids of the team's supernets it averages (checkpoint_path and data_path are its
    # first member's: the weights an export inherits, the data every member scores on); None: one supernet
    members: Mapped[list[int] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Search(Base):
    """A search job. ``status``: a ``SearchStatus`` value (the column is plain text)."""

    __tablename__ = "searches"
    __table_args__ = (
        Index("ix_searches_queue", "status", "id"),
        Index("ix_searches_team", "team_id", "id"),
        Index("ix_searches_front", "team_id", "supernet_id", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"))
    supernet_id: Mapped[int] = mapped_column(ForeignKey("supernets.id", ondelete="CASCADE"), index=True)
    request: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default=SearchStatus.queued.value)
    progress: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    worker_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    heartbeat_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # a queued job waiting for latency units is not claimed again before this time
    available_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # hypervolume reference latency per hardware id, timings, etc. (written when the job ends)
    summary: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class SearchState(Base):
    """The resumable state of a search after its last finished generation."""

    __tablename__ = "search_states"

    search_id: Mapped[int] = mapped_column(ForeignKey("searches.id", ondelete="CASCADE"), primary_key=True)
    generation: Mapped[int] = mapped_column(Integer)
    state: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ArchitectureRow(Base):
    """An architecture some search evaluated (id: ``Architecture.canonical_id()``)."""

    __tablename__ = "architectures"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    lighttrack: Mapped[str] = mapped_column(String(64))
    flops: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    params: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class ScoreCache(Base):
    """Validation score of an architecture under a supernet (and scoring mode), with its standard
    error (NULL for rows cached before standard errors were kept)."""

    __tablename__ = "score_cache"
    __table_args__ = (UniqueConstraint("supernet_id", "mode", "arch_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    supernet_id: Mapped[int] = mapped_column(ForeignKey("supernets.id", ondelete="CASCADE"))
    mode: Mapped[str] = mapped_column(String(16))
    arch_id: Mapped[str] = mapped_column(String(16))
    score: Mapped[float] = mapped_column(Float)
    score_se: Mapped[float | None] = mapped_column(Float, nullable=True)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class LatencyCache(Base):
    """LUT-predicted latency of an architecture on a hardware target."""

    __tablename__ = "latency_cache"
    __table_args__ = (UniqueConstraint("hardware_id", "arch_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    hardware_id: Mapped[int] = mapped_column(ForeignKey("hardware.id", ondelete="CASCADE"))
    arch_id: Mapped[str] = mapped_column(String(16))
    latency_ms: Mapped[float] = mapped_column(Float)


class SearchResult(Base):
    """One ranked architecture of a finished (or running) search."""

    __tablename__ = "search_results"
    __table_args__ = (
        UniqueConstraint("search_id", "rank"),
        Index("ix_search_results_arch", "arch_id", "search_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    search_id: Mapped[int] = mapped_column(ForeignKey("searches.id", ondelete="CASCADE"))
    rank: Mapped[int] = mapped_column(Integer)
    arch_id: Mapped[str] = mapped_column(String(16))
    score: Mapped[float] = mapped_column(Float)
    score_se: Mapped[float | None] = mapped_column(Float, nullable=True)
    latency_ms: Mapped[dict[str, Any]] = mapped_column(JSON)
    feasible: Mapped[bool] = mapped_column(Boolean, default=True)


class FrontPoint(Base):
    """A point of a search's Pareto front (score vs latency) on one hardware target."""

    __tablename__ = "front_points"
    __table_args__ = (Index("ix_front_points_search_hw", "search_id", "hardware_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    search_id: Mapped[int] = mapped_column(ForeignKey("searches.id", ondelete="CASCADE"))
    hardware_id: Mapped[int] = mapped_column(ForeignKey("hardware.id", ondelete="CASCADE"), index=True)
    arch_id: Mapped[str] = mapped_column(String(16))
    score: Mapped[float] = mapped_column(Float)
    score_se: Mapped[float | None] = mapped_column(Float, nullable=True)
    latency_ms: Mapped[float] = mapped_column(Float)


class _GraphTiming:
    """What an agent reports of a whole graph it measured (subnet and anchor rows alike)."""

    median_ms: Mapped[float] = mapped_column(Float)
    p90_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    count: Mapped[int] = mapped_column(Integer)
    env: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    measured_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class SubnetMeasurement(_GraphTiming, Base):
    """A whole subnet on a search's front, measured end to end by its target's agents (the closed
    loop, ``server.measurements.verification``): one row per (target, architecture), the first result wins."""

    __tablename__ = "subnet_measurements"
    __table_args__ = (UniqueConstraint("hardware_id", "lighttrack"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    hardware_id: Mapped[int] = mapped_column(ForeignKey("hardware.id", ondelete="CASCADE"))
    lighttrack: Mapped[str] = mapped_column(String(255))


class AnchorMeasurement(_GraphTiming, Base):
    """One anchor subnet of a target's table measured in one drift-probe round (``server.measurements.drift``):
    round 1 is the baseline measured right after the table's units, later rounds the host's speed
    since. One row per (target, round, architecture), the first result wins."""

    __tablename__ = "anchor_measurements"
    __table_args__ = (UniqueConstraint("hardware_id", "round", "lighttrack"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    hardware_id: Mapped[int] = mapped_column(ForeignKey("hardware.id", ondelete="CASCADE"))
    round: Mapped[int] = mapped_column(Integer)
    lighttrack: Mapped[str] = mapped_column(String(255))


__all__ = [
    "AgentToken", "AnchorMeasurement", "ApiKey", "ArchitectureRow", "Base", "FrontPoint", "Hardware", "LatencyCache",
    "LatencyEntry", "LatencyTable", "ScoreCache", "Search", "SearchResult", "SearchState", "Supernet",
    "SubnetMeasurement", "Team", "UiSession", "WorkUnit", "utcnow", "UTCDateTime",
]
