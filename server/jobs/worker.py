"""The search-job worker: claims queued jobs, runs them generation by generation, persists.

A running job's ``heartbeat_at`` is stamped with the database clock by a heartbeat thread
(``server.jobs.heartbeat``); any worker re-queues a running job whose heartbeat is older than
``heartbeat_timeout``, and the next claimer resumes it from the state saved after its last
finished generation (``search_states``), which gives the same final result as an uninterrupted
run. Claiming and every write of a job live in ``server.jobs.queue``: each write is conditional on
``worker_id``, so a worker that lost its job can never overwrite the new owner's progress.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import traceback
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from latency_tables.kinds import OVERHEAD_KEY
from latency_tables.predict import LatencyPredictor
from latency_tables.repository import TableRepository
from server.db import session_scope
from server.jobs.config import parse_request, search_config
from server.jobs.heartbeat import JobWatch
from server.jobs.queue import LostJob, OwnedJob, claim, requeue_stale
from server.jobs.results import store_result
from server.jobs.score_cache import DbCachedAccuracy
from server.jobs.status import SearchStatus
from server.measurements.lut import predictor_for
from server.measurements.verification import queue_front
from server.models import Hardware, Search, SearchState, Supernet
from server.schemas import SearchCreate
from server.settings import Settings

__all__ = ["DbCachedAccuracy", "LostJob", "Worker", "WorkerThread"]

log = logging.getLogger("lutnas.worker")

STOPPED_NOTE = "worker stopped; resumes from the last finished generation"


@dataclass
class LoadedJob:
    """What a claimed job needs before it runs, read in one session."""

    request: SearchCreate
    supernet: Supernet
    hardware: list[Hardware]
    predictors: dict[str, LatencyPredictor]
    missing: dict[int, int]  # hardware id -> latency units it still lacks (the overhead counts)
    state: dict[str, Any] | None  # saved after the last finished generation: resume from it
    progress: dict[str, Any]


class _Generations:
    """``run_search``'s ``on_generation``: saves each finished generation's progress and state,
    and keeps the score-cache counts the final progress reports."""

    def __init__(self, job: OwnedJob, accuracy: DbCachedAccuracy, generations: int,
                 base: tuple[int, int]) -> None:
        # a resumed job continues the counts of its last saved generation, so generations
        # finished before a stop are neither scored nor counted again
        self.job, self.accuracy, self.generations, self.base = job, accuracy, generations, base
        self.counts = list(base)

    def __call__(self, prog: dict[str, Any], state: dict[str, Any]) -> None:
        gens = max(int(prog.get("generations") or self.generations), 1)
        done = int(prog.get("generation", 0)) + 1
        p = {"generation": done, "generations": gens, "evaluated": prog.get("evaluated", 0),
             "cache_hits": self.base[0] + self.accuracy.hits, "scored": self.base[1] + self.accuracy.scored,
             "best_score": prog.get("best_score"),
             "front_size": prog.get("front_size", 0), "fraction": round(done / gens, 4),
             "hypervolume": prog.get("hypervolume"), "note": None}
        # what the final progress reports: the reference point scored after the search is no candidate
        self.counts = [p["cache_hits"], p["scored"]]
        self.job.save_generation(p, done, state)


def _missing_units(s: Session, hw: Hardware, predictor: LatencyPredictor) -> int:
    """How many latency units (the per-run overhead included) ``hw``'s table still lacks."""
    gap = set(predictor.missing_units())
    if TableRepository(s, hw.table_id).overhead_ms is None:
        gap.add(OVERHEAD_KEY)  # the per-run overhead is part of every target's work
    return len(gap)


def _units_note(missing: dict[int, int]) -> str:
    what = ", ".join(f"{n} on hardware {h}" for h, n in missing.items())
    total = sum(missing.values())
    return f"{total} latency unit{'s' if total != 1 else ''} not measured yet ({what})"


class Worker:
    def __init__(self, factory: sessionmaker[Session], settings: Settings, name: str | None = None) -> None:
        self.factory, self.settings = factory, settings
        self.id = f"{socket.gethostname()}:{os.getpid()}:{name or threading.get_ident()}"[:64]
        self.stop_event = threading.Event()
        # search id -> the wait note last logged: a job re-checked every few seconds while it waits
        # for latency units is logged when its note changes, not at every re-check
        self._waiting: dict[int, str] = {}
        self._still_waiting = False
        if settings.device != "auto":  # a GPU this machine lacks fails the worker's start, not each job
            from tracking.devices import resolve_device

            resolve_device(settings.device)
        if settings.torch_threads:
            import torch

            torch.set_num_threads(settings.torch_threads)

    # -- queue ------------------------------------------------------------------------------
    def requeue_stale(self) -> int:
        """Put running jobs whose worker stopped heartbeating back in the queue."""
        return requeue_stale(self.factory, self.settings.heartbeat_timeout)

    def claim(self) -> int | None:
        """Atomically take the oldest claimable queued job; its id, or None."""
        return claim(self.factory, self.id)

    def run_once(self) -> bool:
        """Re-queue stale jobs, then claim and run one job; True if a job was taken."""
        self.requeue_stale()
        sid = self.claim()
        if sid is None:
            return False
        rechecked = sid in self._waiting
        (log.debug if rechecked else log.info)("worker %s took search %s", self.id, sid)
        self._still_waiting = False
        try:
            self.process(sid)
        except LostJob:
            log.warning("search %s was taken over by another worker", sid)
        except (OperationalError, InterfaceError) as e:  # the database went away mid-job: not the job's fault
            self._lost_database(sid, e)
        except Exception as e:  # noqa: BLE001 - a failing job must not kill the worker
            log.error("search %s failed:\n%s", sid, traceback.format_exc())
            user_error = isinstance(e, ValueError | OSError | KeyError)
            msg = str(e).splitlines()[0] if str(e) else type(e).__name__
            self._job(sid).finish(SearchStatus.failed,
                                  error=msg if user_error else f"internal error ({type(e).__name__}): {msg}")
        finally:
            if not self._still_waiting:  # it ran, finished or failed: its next wait is news again
                self._waiting.pop(sid, None)
        return True

    def run_forever(self) -> None:
        while not self.stop_event.is_set():
            try:
                took = self.run_once()
            except Exception:  # noqa: BLE001 - e.g. the database restarting; retry after a pause
                log.exception("worker loop error")
                took = False
            if not took:
                self.stop_event.wait(self.settings.poll_seconds)

    def start_thread(self) -> WorkerThread:
        t = WorkerThread(self)
        t.start()
        return t

    # -- one job ----------------------------------------------------------------------------
    def _lost_database(self, sid: int, e: Exception) -> None:
        """Back to the queue, to resume from its last finished generation; if the database is
        still away, the job's silent heartbeat has another worker re-queue it instead."""
        log.warning("search %s: the database connection failed (%s); the job goes back to the queue",
                    sid, type(e.orig if hasattr(e, "orig") else e).__name__)
        try:
            self._release(self._job(sid), "waiting: the database connection was lost; resumes from the last "
                          "finished generation", self.settings.missing_units_retry_seconds)
        except Exception:  # noqa: BLE001 - still down: the heartbeat timeout re-queues it
            log.warning("search %s: could not give it back yet; its heartbeat timeout will", sid)

    def _job(self, sid: int) -> OwnedJob:
        return OwnedJob(self.factory, sid, self.id)

    def process(self, sid: int) -> None:
        """Run claimed job ``sid`` to its end, or give it back to the queue (it waits for latency
        units, the Ray cluster is gone, or this worker stops)."""
        t0 = time.perf_counter()
        job = self._job(sid)
        loaded = self._load(sid)
        if loaded is None:
            job.finish(SearchStatus.cancelled)
        elif loaded.missing:
            self._wait_for_units(job, loaded)
        else:
            if loaded.progress.get("note") or loaded.progress.get("waiting_since"):
                progress = {k: v for k, v in loaded.progress.items() if k != "waiting_since"}
                job.update(progress={**progress, "note": None})
            self._run(job, loaded, t0)

    def _load(self, sid: int) -> LoadedJob | None:
        """The job's request, supernet, targets and saved state; None if its cancel was asked."""
        with self.factory() as s:
            search = s.get(Search, sid)
            if search is None:
                raise LostJob(sid)
            if search.cancel_requested:
                return None
            req = parse_request(search.request)
            supernet = s.get(Supernet, search.supernet_id)
            hws = [s.get(Hardware, h) for h in req.hardware_ids]
            if supernet is None or any(h is None for h in hws):
                raise ValueError("the search's supernet or a hardware target was deleted")
            targets = [h for h in hws if h is not None]
            predictors = {str(hw.id): predictor_for(s, hw, stat=req.latency_stat) for hw in targets}
            gaps = {hw.id: _missing_units(s, hw, predictors[str(hw.id)]) for hw in targets}
            saved = s.get(SearchState, sid)
            return LoadedJob(req, supernet, targets, predictors, {h: n for h, n in gaps.items() if n},
                             saved.state if saved is not None else None, dict(search.progress or {}))

    def _wait_for_units(self, job: OwnedJob, loaded: LoadedJob) -> None:
        """Fail the job, or put it back in the queue until its latency units are measured (up to
        its deadline)."""
        msg = _units_note(loaded.missing)
        if loaded.request.missing_units == "fail":
            job.finish(SearchStatus.failed, error=msg)
            return
        waited = job.waited(loaded.progress)
        deadline = float(loaded.request.unit_wait_deadline_s or self.settings.unit_wait_deadline_s)
        if deadline and waited >= deadline:
            job.finish(SearchStatus.failed, error=(
                f"gave up after waiting {waited:.0f} s for latency units (deadline {deadline:g} s): {msg}; "
                "run lutnas-agent with the hardware's agent token, then submit the search again"))
        else:
            self._release(job, f"waiting: {msg}", self.settings.missing_units_retry_seconds)

    def _run(self, job: OwnedJob, loaded: LoadedJob, t0: float) -> None:
        from search.ray_pool import RayClusterError
        from search.runner import run_search

        # a resumed job keeps the batch size it started with (it is part of the saved config)
        state = loaded.state
        batch_size = int((state or {}).get("config", {}).get("batch_size") or self.settings.eval_batch_size)
        config = search_config(loaded.request, loaded.hardware[0].space, batch_size)
        accuracy = DbCachedAccuracy(self.factory, loaded.supernet, loaded.request.mode, self.settings)
        progress = loaded.progress
        base = (int(progress.get("cache_hits") or 0), int(progress.get("scored") or 0)) if state else (0, 0)
        on_generation = _Generations(job, accuracy, config.generations, base)
        watch = JobWatch(job, self.settings.heartbeat_seconds, self.stop_event)
        watch.start()
        try:
            result = run_search(config, accuracy, loaded.predictors, state=state, on_generation=on_generation,
                                should_stop=watch.should_stop)
        except RayClusterError as e:  # back to the queue: it resumes from its last finished generation
            self._release(job, f"waiting: {e}", self.settings.ray_retry_seconds)
            return
        finally:
            watch.stop()
            accuracy.close()
        if watch.lost.is_set():
            raise LostJob(job.sid)
        if not result.completed:
            self._stopped(job)
            return
        self._store_result(job.sid, result, [h.id for h in loaded.hardware], time.perf_counter() - t0,
                           on_generation.counts)

    def _stopped(self, job: OwnedJob) -> None:
        """The search stopped before its last generation: cancelled, or this worker stops."""
        with self.factory() as s:
            search = s.get(Search, job.sid)
            if search is None:
                raise LostJob(job.sid)
            cancelled = search.cancel_requested
        if cancelled:
            job.finish(SearchStatus.cancelled)
        elif self.stop_event.is_set():
            self._release(job, STOPPED_NOTE)
        else:
            raise LostJob(job.sid)

    def _release(self, job: OwnedJob, note: str | None, delay: float = 0.0) -> None:
        """Give a job back to the queue (shutdown, or waiting for latency units or Ray); a wait is
        logged when its note changes."""
        if note and note.startswith("waiting"):
            if self._waiting.get(job.sid) != note:
                log.info("search %s %s", job.sid, note)
            self._waiting[job.sid] = note
            self._still_waiting = True
        job.release(note, delay)

    def _store_result(self, sid: int, result: Any, hw_ids: list[int], seconds: float,
                      counts: list[int]) -> None:
        store_result(self.factory, sid, self.id, result, hw_ids, seconds, counts)
        self._queue_front(sid)

    def _queue_front(self, sid: int) -> None:
        """The closed loop: the front goes to its targets' agents; a failure here costs the search
        nothing (it has succeeded), only that verification."""
        if not self.settings.verify_front_points:
            return
        try:
            with session_scope(self.factory) as s:
                queued = queue_front(s, sid, self.settings.verify_front_points)
            log.info("search %s: %d front architectures queued for end-to-end measurement", sid, queued)
        except Exception:  # noqa: BLE001 - logged; the search's result stands
            log.exception("search %s: its front could not be queued for measurement", sid)


class WorkerThread(threading.Thread):
    """The embedded worker of ``lutnas serve``."""

    def __init__(self, worker: Worker) -> None:
        super().__init__(daemon=True, name="lutnas-worker")
        self.worker = worker

    def run(self) -> None:
        self.worker.run_forever()

    def stop(self, timeout: float = 60.0) -> None:
        self.worker.stop_event.set()
        self.join(timeout)
