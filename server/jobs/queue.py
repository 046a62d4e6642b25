"""The job queue in the ``searches`` table: claiming, re-queueing, and a worker's writes to the
job it runs.

Claiming is atomic: ``SELECT ... FOR UPDATE SKIP LOCKED`` on PostgreSQL, then a conditional
``UPDATE ... WHERE status='queued'`` whose rowcount says who won (the only guard needed on
SQLite, where writes are serialised). Every later write of a running job goes through
:meth:`OwnedJob.write`, conditional on ``worker_id`` and ``status='running'``, so a worker that
lost its job (re-queued while it was frozen) can never overwrite the new owner's progress.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Update, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from server.db import db_now, is_postgres, session_scope
from server.jobs.status import SearchStatus
from server.models import Search, SearchState
from server.problems import scrub_paths

log = logging.getLogger("lutnas.worker")


class LostJob(Exception):
    """This worker no longer owns the job (re-queued after a missed heartbeat, or finished)."""


def _rowcount(result: Any) -> int:
    return int(result.rowcount or 0)


def requeue_stale(factory: sessionmaker[Session], timeout_s: float) -> int:
    """Put running jobs whose worker has not heartbeaten for ``timeout_s`` back in the queue."""
    with session_scope(factory) as s:
        cutoff = db_now(s) - dt.timedelta(seconds=timeout_s)
        n = _rowcount(s.execute(
            update(Search).where(Search.status == SearchStatus.running, Search.heartbeat_at < cutoff)
            .values(status=SearchStatus.queued, worker_id=None, available_at=None)
            .execution_options(synchronize_session=False)))
    if n:
        log.warning("re-queued %d job(s) whose worker stopped heartbeating", n)
    return n


def claim(factory: sessionmaker[Session], worker_id: str) -> int | None:
    """Atomically take the oldest claimable queued job for ``worker_id``; its id, or None."""
    with session_scope(factory) as s:
        now = db_now(s)
        q = (select(Search.id).where(Search.status == SearchStatus.queued,
                                     or_(Search.available_at.is_(None), Search.available_at <= now))
             .order_by(Search.id).limit(1))
        if is_postgres(s):
            q = q.with_for_update(skip_locked=True)
        sid = s.scalar(q)
        if sid is None:
            return None
        won = s.execute(update(Search).where(Search.id == sid, Search.status == SearchStatus.queued).values(
            status=SearchStatus.running, worker_id=worker_id, heartbeat_at=now, available_at=None,
            attempts=Search.attempts + 1).execution_options(synchronize_session=False))
        if not _rowcount(won):
            return None
        s.execute(update(Search).where(Search.id == sid, Search.started_at.is_(None))
                  .values(started_at=now).execution_options(synchronize_session=False))
    return sid


@dataclass(frozen=True)
class OwnedJob:
    """The running job ``sid`` as seen by worker ``worker_id``: every write holds only while this
    worker still owns it."""

    factory: sessionmaker[Session]
    sid: int
    worker_id: str

    def _owned(self) -> Update:
        """``UPDATE searches ... WHERE`` this worker still runs this job."""
        return (update(Search).where(Search.id == self.sid, Search.worker_id == self.worker_id,
                                     Search.status == SearchStatus.running)
                .execution_options(synchronize_session=False))

    def write(self, session: Session, *, must_own: bool = True, **values: Any) -> bool:
        """Set ``values`` on the job if this worker still owns it; whether it did. ``must_own``:
        raise :class:`LostJob` instead of answering False."""
        owned = bool(_rowcount(session.execute(self._owned().values(**values))))
        if must_own and not owned:
            raise LostJob(self.sid)
        return owned

    def update(self, **values: Any) -> None:
        """Set ``values`` in a transaction of its own; :class:`LostJob` if no longer owned."""
        with session_scope(self.factory) as s:
            self.write(s, **values)

    def finish(self, status: SearchStatus, error: str | None = None) -> None:
        """End the job (a job already taken over is left to its new owner)."""
        with session_scope(self.factory) as s:
            self.write(s, must_own=False, status=status, error=scrub_paths(error) if error else error,
                       finished_at=db_now(s), worker_id=None)

    def release(self, note: str | None, delay: float = 0.0) -> None:
        """Give the job back to the queue, saying why in its progress' ``note``; no worker claims
        it again for ``delay`` seconds."""
        with session_scope(self.factory) as s:
            search = s.get(Search, self.sid)
            if search is None:
                raise LostJob(self.sid)
            progress = {**(search.progress or {}), "note": note}
            self.write(s, must_own=False, status=SearchStatus.queued, worker_id=None, progress=progress,
                       available_at=db_now(s) + dt.timedelta(seconds=delay) if delay else None)

    def save_generation(self, progress: dict[str, Any], generation: int, state: dict[str, Any]) -> None:
        """Store the progress after a finished generation with the state it resumes from."""
        with session_scope(self.factory) as s:
            self.write(s, progress=progress, heartbeat_at=db_now(s))
            row = s.get(SearchState, self.sid)
            if row is None:
                s.add(SearchState(search_id=self.sid, generation=generation, state=state))
            else:
                row.generation, row.state = generation, state

    def waited(self, progress: dict[str, Any]) -> float:
        """Seconds this job has been waiting for latency units (database clock); the first wait
        stamps ``waiting_since`` into ``progress`` and the job."""
        with session_scope(self.factory) as s:
            now = db_now(s)
        since = progress.get("waiting_since")
        if since is None:
            progress["waiting_since"] = now.isoformat()
            self.update(progress=progress)
            return 0.0
        return max((now - dt.datetime.fromisoformat(since)).total_seconds(), 0.0)
