"""A running job's watch: its heartbeat, and whether the search should stop.

The heartbeat thread stamps ``heartbeat_at`` with the database clock every ``heartbeat_seconds``
while the job runs; any worker re-queues a job whose heartbeat is older than the timeout
(``server.jobs.queue.requeue_stale``). A beat that finds the job no longer owned marks it lost.
The search asks :meth:`JobWatch.should_stop` between evaluation batches: the worker is stopping,
the job was lost, or its team asked to cancel it.
"""

from __future__ import annotations

import logging
import threading
import time

from sqlalchemy import select

from server.db import db_now, session_scope
from server.jobs.queue import OwnedJob
from server.jobs.status import SearchStatus
from server.models import Search

log = logging.getLogger("lutnas.worker")

CHECK_SECONDS = 1.0  # cancellation is looked up at most once a second


class JobWatch:
    def __init__(self, job: OwnedJob, heartbeat_seconds: float, stopping: threading.Event) -> None:
        self.job, self.heartbeat_seconds, self.stopping = job, heartbeat_seconds, stopping
        self.lost = threading.Event()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True, name=f"heartbeat-{job.sid}")
        self._checked_at = 0.0
        self._stop_asked = False

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._done.set()

    def _beat(self) -> None:
        while not self._done.wait(self.heartbeat_seconds):
            try:
                with session_scope(self.job.factory) as s:
                    if not self.job.write(s, must_own=False, heartbeat_at=db_now(s)):
                        self.lost.set()
                        return
            except Exception:  # noqa: BLE001 - a missed beat is retried; the timeout is generous
                log.warning("heartbeat of search %s failed", self.job.sid, exc_info=True)

    def should_stop(self) -> bool:
        """True once the worker stops, the job is lost, cancelled, or no longer running here."""
        if self.stopping.is_set() or self.lost.is_set():
            return True
        if time.monotonic() - self._checked_at >= CHECK_SECONDS:
            with self.job.factory() as s:
                cancel, worker_id, status = s.execute(
                    select(Search.cancel_requested, Search.worker_id, Search.status)
                    .where(Search.id == self.job.sid)).one()
            self._checked_at = time.monotonic()
            self._stop_asked = (bool(cancel) or worker_id != self.job.worker_id
                                or status != SearchStatus.running)
        return self._stop_asked
