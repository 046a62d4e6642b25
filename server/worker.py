"""The search-job worker: claims queued jobs, runs them generation by generation, persists.

Claiming is atomic: ``SELECT ... FOR UPDATE SKIP LOCKED`` on PostgreSQL, then a conditional
``UPDATE ... WHERE status='queued'`` whose rowcount says who won (the only guard needed on
SQLite, where writes are serialised). A running job's ``heartbeat_at`` is stamped with the
database clock by a heartbeat thread; any worker re-queues a running job whose heartbeat is older
than ``heartbeat_timeout``, and the next claimer resumes it from the state saved after its last
finished generation (``search_states``), which gives the same final result as an uninterrupted
run. Every write of a job is conditional on ``worker_id`` so a worker that lost its job (it was
re-queued while this one was frozen) can never overwrite the new owner's progress.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
import time
import traceback
from collections.abc import Sequence
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from latency_tables.db import LatencyEntry
from search.evaluators import Score, as_score
from server.db import db_now, insert_ignore, is_postgres, session_scope
from server.fronts import front_of
from server.lut import predictor_for
from server.models import (
    ArchitectureRow,
    FrontPoint,
    Hardware,
    LatencyCache,
    ScoreCache,
    Search,
    SearchResult,
    SearchState,
    Supernet,
)
from server.problems import scrub_paths
from server.settings import Settings
from server.workunits import OVERHEAD_KEY
from tracking.space import Architecture

log = logging.getLogger("lutnas.worker")


class LostJob(Exception):
    """This worker no longer owns the job (re-queued after a missed heartbeat, or finished)."""


class DbCachedAccuracy:
    """Supernet validation scores and their standard errors cached in ``score_cache`` by (supernet,
    mode, architecture id); rows cached before standard errors were kept answer ``se=None``.

    The (slow, torch) scorer is built only when an architecture is not cached yet.
    """

    def __init__(self, factory: sessionmaker[Session], supernet: Supernet, mode: str, settings: Settings) -> None:
        self.factory, self.supernet, self.mode, self.settings = factory, supernet, mode, settings
        self._scorer: Any = None
        # lookups answered by score_cache, and architectures this scorer computed: together they
        # are every score the search asked for (the progress' cache_hits and scored)
        self.hits = 0
        self.scored = 0

    def _base(self) -> Any:
        if self._scorer is None:
            from search.evaluators import SupernetAccuracy

            s = self.settings
            kwargs = {"n_pairs": s.scorer_pairs, "bn_batches": s.scorer_bn_batches,
                      "bn_batch_size": s.scorer_bn_batch_size, "max_sequences": s.scorer_max_sequences,
                      "max_frames": s.scorer_max_frames}
            if s.ray_address or s.eval_workers > 1:  # actors score; this cache and the DB stay here
                from search.ray_pool import ScorerSpec, open_pool

                spec = ScorerSpec(self.supernet.checkpoint_path, self.supernet.data_path, self.mode, kwargs)
                self._scorer = open_pool(spec, s.eval_workers, s.ray_address, threads=s.eval_threads,
                                         device=s.device)
            else:
                self._scorer = SupernetAccuracy.from_checkpoint(
                    self.supernet.checkpoint_path, self.supernet.data_path, mode=self.mode, device=s.device,
                    **kwargs)
        return self._scorer

    def close(self) -> None:
        """Stop the Ray actors of this job, if any."""
        if self._scorer is not None and hasattr(self._scorer, "close"):
            self._scorer.close()
        self._scorer = None

    def evaluate(self, archs: Sequence[Architecture]) -> list[Score]:
        ids = [a.canonical_id() for a in archs]
        with self.factory() as session:
            rows = session.execute(
                select(ScoreCache.arch_id, ScoreCache.score, ScoreCache.score_se).where(
                    ScoreCache.supernet_id == self.supernet.id, ScoreCache.mode == self.mode,
                    ScoreCache.arch_id.in_(ids))).all()
        cached = {cid: as_score((score, se)) for cid, score, se in rows}
        todo = {cid: a for cid, a in zip(ids, archs, strict=True) if cid not in cached}
        self.hits += len(ids) - len(todo)
        self.scored += len(todo)
        if todo:
            scores = self._base().evaluate(list(todo.values()))
            new = {cid: as_score(s) for cid, s in zip(todo, scores, strict=True)}
            with session_scope(self.factory) as session:
                insert_ignore(session, ScoreCache, [
                    {"supernet_id": self.supernet.id, "mode": self.mode, "arch_id": cid, "score": s.value,
                     "score_se": s.se, "metrics": {}}
                    for cid, s in new.items()], ["supernet_id", "mode", "arch_id"])
            cached.update(new)
        return [cached[c] for c in ids]


class _Heartbeat(threading.Thread):
    def __init__(self, worker: Worker, search_id: int) -> None:
        super().__init__(daemon=True, name=f"heartbeat-{search_id}")
        self.worker, self.search_id = worker, search_id
        self.done = threading.Event()
        self.lost = threading.Event()

    def run(self) -> None:
        while not self.done.wait(self.worker.settings.heartbeat_seconds):
            try:
                with session_scope(self.worker.factory) as s:
                    res = s.execute(update(Search).where(
                        Search.id == self.search_id, Search.worker_id == self.worker.id,
                        Search.status == "running").values(heartbeat_at=db_now(s))
                        .execution_options(synchronize_session=False))
                    if not res.rowcount:  # type: ignore[attr-defined]
                        self.lost.set()
                        return
            except Exception:  # noqa: BLE001 - a missed beat is retried; the timeout is generous
                log.warning("heartbeat of search %s failed", self.search_id, exc_info=True)


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
        with session_scope(self.factory) as s:
            cutoff = db_now(s) - dt.timedelta(seconds=self.settings.heartbeat_timeout)
            res = s.execute(update(Search).where(Search.status == "running", Search.heartbeat_at < cutoff)
                            .values(status="queued", worker_id=None, available_at=None)
                            .execution_options(synchronize_session=False))
            n = int(res.rowcount or 0)  # type: ignore[attr-defined]
        if n:
            log.warning("re-queued %d job(s) whose worker stopped heartbeating", n)
        return n

    def claim(self) -> int | None:
        """Atomically take the oldest claimable queued job; its id, or None."""
        with session_scope(self.factory) as s:
            now = db_now(s)
            q = (select(Search.id).where(Search.status == "queued",
                                         or_(Search.available_at.is_(None), Search.available_at <= now))
                 .order_by(Search.id).limit(1))
            if is_postgres(s):
                q = q.with_for_update(skip_locked=True)
            sid = s.scalar(q)
            if sid is None:
                return None
            res = s.execute(update(Search).where(Search.id == sid, Search.status == "queued").values(
                status="running", worker_id=self.id, heartbeat_at=now, available_at=None,
                attempts=Search.attempts + 1).execution_options(synchronize_session=False))
            if not res.rowcount:  # type: ignore[attr-defined]
                return None
            s.execute(update(Search).where(Search.id == sid, Search.started_at.is_(None))
                      .values(started_at=now).execution_options(synchronize_session=False))
        return sid

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
        except Exception as e:  # noqa: BLE001 - a failing job must not kill the worker
            log.error("search %s failed:\n%s", sid, traceback.format_exc())
            user_error = isinstance(e, ValueError | OSError | KeyError)
            msg = str(e).splitlines()[0] if str(e) else type(e).__name__
            self._finish(sid, "failed", error=msg if user_error else f"internal error ({type(e).__name__}): {msg}")
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
    def _update(self, sid: int, **values: Any) -> None:
        with session_scope(self.factory) as s:
            res = s.execute(update(Search).where(Search.id == sid, Search.worker_id == self.id,
                                                 Search.status == "running").values(**values)
                            .execution_options(synchronize_session=False))
            if not res.rowcount:  # type: ignore[attr-defined]
                raise LostJob(sid)

    def _finish(self, sid: int, status: str, error: str | None = None) -> None:
        with session_scope(self.factory) as s:
            s.execute(update(Search).where(Search.id == sid, Search.worker_id == self.id,
                                           Search.status == "running")
                      .values(status=status, error=scrub_paths(error) if error else error,
                              finished_at=db_now(s), worker_id=None)
                      .execution_options(synchronize_session=False))

    def _waited(self, sid: int, progress: dict[str, Any]) -> float:
        """Seconds this job has been waiting for latency units (database clock); the first wait
        stamps ``waiting_since`` into its progress."""
        with session_scope(self.factory) as s:
            now = db_now(s)
        since = progress.get("waiting_since")
        if since is None:
            progress["waiting_since"] = now.isoformat()
            self._update(sid, progress=progress)
            return 0.0
        return max((now - dt.datetime.fromisoformat(since)).total_seconds(), 0.0)

    def _release(self, sid: int, note: str | None, delay: float = 0.0) -> None:
        """Give a job back to the queue (shutdown, or waiting for latency units)."""
        if note and note.startswith("waiting"):
            if self._waiting.get(sid) != note:
                log.info("search %s %s", sid, note)
            self._waiting[sid] = note
            self._still_waiting = True
        with session_scope(self.factory) as s:
            search = s.get(Search, sid)
            if search is None:
                raise LostJob(sid)
            progress = dict(search.progress or {})
            progress["note"] = note
            s.execute(update(Search).where(Search.id == sid, Search.worker_id == self.id,
                                           Search.status == "running")
                      .values(status="queued", worker_id=None, progress=progress,
                              available_at=db_now(s) + dt.timedelta(seconds=delay) if delay else None)
                      .execution_options(synchronize_session=False))

    def process(self, sid: int) -> None:
        from search.config import SearchConfig
        from search.runner import run_search

        t0 = time.perf_counter()
        with self.factory() as s:
            search = s.get(Search, sid)
            if search is None:
                raise LostJob(sid)
            if search.cancel_requested:
                self._finish(sid, "cancelled")
                return
            req = dict(search.request)
            supernet = s.get(Supernet, search.supernet_id)
            hws = [s.get(Hardware, int(h)) for h in req["hardware_ids"]]
            if supernet is None or any(h is None for h in hws):
                raise ValueError("the search's supernet or a hardware target was deleted")
            predictors, missing = {}, {}
            for hw in hws:
                assert hw is not None  # type narrowing: None was refused just above  # nosec B101
                p = predictor_for(s, hw)
                predictors[str(hw.id)] = p
                gap = set(p.missing_units())
                if not s.scalar(select(LatencyEntry.id).where(LatencyEntry.table_id == hw.table_id,
                                                              LatencyEntry.unit_key == OVERHEAD_KEY)):
                    gap.add(OVERHEAD_KEY)  # the per-run overhead is part of every target's work
                if gap:
                    missing[hw.id] = len(gap)
            saved = s.get(SearchState, sid)
            state = saved.state if saved is not None else None
            progress = dict(search.progress or {})
        if missing:
            what = ", ".join(f"{n} on hardware {h}" for h, n in missing.items())
            total = sum(missing.values())
            msg = f"{total} latency unit{'s' if total != 1 else ''} not measured yet ({what})"
            if req.get("missing_units", "wait") == "fail":
                self._finish(sid, "failed", error=msg)
                return
            waited = self._waited(sid, progress)
            deadline = float(req.get("unit_wait_deadline_s") or self.settings.unit_wait_deadline_s)
            if deadline and waited >= deadline:
                self._finish(sid, "failed", error=(
                    f"gave up after waiting {waited:.0f} s for latency units (deadline {deadline:g} s): {msg}; "
                    "run lutnas-agent with the hardware's agent token, then submit the search again"))
            else:
                self._release(sid, f"waiting: {msg}", self.settings.missing_units_retry_seconds)
            return
        if progress.get("note") or progress.get("waiting_since"):
            progress["note"] = None
            progress.pop("waiting_since", None)
            self._update(sid, progress=progress)

        hw_space = hws[0].space  # type: ignore[union-attr]
        objective = req.get("objective", "pareto")
        population = int(req["population"])
        config = SearchConfig(
            algorithm="pareto" if objective == "pareto" else "evolution",
            budget_ms=req.get("budget_ms") if objective == "budget" else None,
            target=str(req.get("budget_hardware_id")) if objective == "budget" else None,
            population=population, generations=int(req["generations"]), parents=min(10, population),
            seed=int(req["seed"]), predictor=bool(req.get("use_predictor", False)), space=hw_space,
            # a resumed job keeps the batch size it started with (it is part of the saved config)
            batch_size=int((state or {}).get("config", {}).get("batch_size") or self.settings.eval_batch_size))
        accuracy = DbCachedAccuracy(self.factory, supernet, req.get("mode", "pairs"), self.settings)
        # score-cache counts so far: a resumed job continues those of its last saved generation
        # (saved with its state), so generations finished before a stop are neither scored nor
        # counted again
        base = (int(progress.get("cache_hits") or 0), int(progress.get("scored") or 0)) if state else (0, 0)
        counts = list(base)

        beat = _Heartbeat(self, sid)
        beat.start()
        last_check = [0.0, False]

        def should_stop() -> bool:
            if self.stop_event.is_set() or beat.lost.is_set():
                return True
            if time.monotonic() - last_check[0] >= 1.0:  # at most one query a second
                with self.factory() as s2:
                    row = s2.execute(select(Search.cancel_requested, Search.worker_id, Search.status)
                                     .where(Search.id == sid)).one()
                last_check[0] = time.monotonic()
                last_check[1] = bool(row[0]) or row[1] != self.id or row[2] != "running"
            return bool(last_check[1])

        def on_generation(prog: dict[str, Any], st: dict[str, Any]) -> None:
            gens = max(int(prog.get("generations") or config.generations), 1)
            done = int(prog.get("generation", 0)) + 1
            p = {"generation": done, "generations": gens, "evaluated": prog.get("evaluated", 0),
                 "cache_hits": base[0] + accuracy.hits, "scored": base[1] + accuracy.scored,
                 "best_score": prog.get("best_score"),
                 "front_size": prog.get("front_size", 0), "fraction": round(done / gens, 4),
                 "hypervolume": prog.get("hypervolume"), "note": None}
            counts[:] = [p["cache_hits"], p["scored"]]  # the reference point scored after the search is not a candidate
            with session_scope(self.factory) as s2:
                res = s2.execute(update(Search).where(Search.id == sid, Search.worker_id == self.id,
                                                      Search.status == "running")
                                 .values(progress=p, heartbeat_at=db_now(s2))
                                 .execution_options(synchronize_session=False))
                if not res.rowcount:  # type: ignore[attr-defined]
                    raise LostJob(sid)
                row = s2.get(SearchState, sid)
                if row is None:
                    s2.add(SearchState(search_id=sid, generation=done, state=st))
                else:
                    row.generation, row.state = done, st

        from search.ray_pool import RayClusterError

        try:
            result = run_search(config, accuracy, predictors, state=state, on_generation=on_generation,
                                should_stop=should_stop)
        except RayClusterError as e:  # back to the queue: it resumes from its last finished generation
            self._release(sid, f"waiting: {e}", self.settings.ray_retry_seconds)
            return
        finally:
            beat.done.set()
            accuracy.close()
        if beat.lost.is_set():
            raise LostJob(sid)
        if not result.completed:
            with self.factory() as s:
                search = s.get(Search, sid)
                if search is None:
                    raise LostJob(sid)
                cancelled = search.cancel_requested
            if cancelled:
                self._finish(sid, "cancelled")
            elif self.stop_event.is_set():
                self._release(sid, "worker stopped; resumes from the last finished generation")
            else:
                raise LostJob(sid)
            return
        self._store_result(sid, result, [h.id for h in hws if h is not None], time.perf_counter() - t0,
                           counts)

    def _store_result(self, sid: int, result: Any, hw_ids: list[int], seconds: float,
                      counts: list[int]) -> None:
        with session_scope(self.factory) as s:
            search = s.get(Search, sid)
            if search is None or search.worker_id != self.id or search.status != "running":
                raise LostJob(sid)
            ranked = result.ranked
            arch_rows = [{"id": r.canonical_id, "lighttrack": r.arch, "flops": r.macs, "params": r.params}
                         for r in ranked]
            for i in range(0, len(arch_rows), 1000):
                insert_ignore(s, ArchitectureRow, arch_rows[i:i + 1000], ["id"])
            s.execute(SearchResult.__table__.delete().where(SearchResult.search_id == sid))
            s.execute(FrontPoint.__table__.delete().where(FrontPoint.search_id == sid))
            rows = [{"search_id": sid, "rank": r.rank, "arch_id": r.canonical_id, "score": r.score,
                     "score_se": r.score_se, "latency_ms": {k: float(v) for k, v in r.latency_ms.items()},
                     "feasible": r.feasible}
                    for r in ranked]
            for i in range(0, len(rows), 1000):
                s.execute(SearchResult.__table__.insert(), rows[i:i + 1000])
            se_of = {r.canonical_id: r.score_se for r in ranked}
            ref_arch = result.reference_arch
            for hid in hw_ids:
                key = str(hid)
                if ref_arch is not None and key in ref_arch.latency_ms:
                    insert_ignore(s, LatencyCache, [{"hardware_id": hid, "arch_id": ref_arch.canonical_id,
                                                     "latency_ms": float(ref_arch.latency_ms[key])}],
                                  ["hardware_id", "arch_id"])
                lat_rows = [{"hardware_id": hid, "arch_id": r.canonical_id, "latency_ms": float(r.latency_ms[key])}
                            for r in ranked]
                for i in range(0, len(lat_rows), 1000):
                    insert_ignore(s, LatencyCache, lat_rows[i:i + 1000], ["hardware_id", "arch_id"])
                front = front_of([(r.canonical_id, r.score, float(r.latency_ms[key])) for r in ranked])
                if front:
                    s.execute(FrontPoint.__table__.insert(), [
                        {"search_id": sid, "hardware_id": hid, "arch_id": a, "score": sc, "score_se": se_of[a],
                         "latency_ms": lat} for a, sc, lat in front])
            ref = result.reference.get("latency_ms", {}) if isinstance(result.reference, dict) else {}
            search.summary = {"reference_ms": {k: float(v) for k, v in ref.items()},
                              "hypervolume": float(result.hypervolume),
                              "timings": {"worker_s": round(seconds, 3)},
                              # LightTrack-Mobile's point: the front's reference (server/fronts.py)
                              "reference_arch": ref_arch.model_dump() if ref_arch is not None else None}
            progress = dict(search.progress or {})
            progress.update({"generation": result.generations_done, "generations": result.generations_done,
                             "evaluated": result.evaluated, "cache_hits": counts[0], "scored": counts[1],
                             "best_score": ranked[0].score if ranked else None,
                             "front_size": len(result.front), "fraction": 1.0, "note": None})
            search.progress = progress
            search.status, search.finished_at, search.worker_id = "succeeded", db_now(s), None


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
