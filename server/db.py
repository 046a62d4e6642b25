"""Engine and sessions of the service database, and the database clock.

Engines come from ``latency_tables.db.make_engine`` (SQLite pragmas, pool pre-ping) so the
service and the LUT code agree on one configuration. Times that decide state changes (lease
expiry, worker heartbeats) come from :func:`db_now`: the PostgreSQL server clock when there is
one (several machines, one clock, as Optuna's RDB storage does), the process clock for the
embedded SQLite file (one machine).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from latency_tables.db import insert_ignore, make_engine  # noqa: F401 - insert_ignore re-exported


def create_engine_for(url: str) -> Engine:
    if url.startswith("sqlite"):
        return make_engine(url)
    return make_engine(url, pool_size=20, max_overflow=20)


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session committed on success, rolled back on error."""
    with factory() as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def db_now(session: Session) -> dt.datetime:
    """Current UTC time from the database server (PostgreSQL) or this process (SQLite)."""
    if session.get_bind().dialect.name == "postgresql":
        value = session.scalar(select(func.now()))
        assert value is not None  # type narrowing: now() is never NULL  # nosec B101
        return value.astimezone(dt.UTC)
    return dt.datetime.now(dt.UTC)


def is_postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


