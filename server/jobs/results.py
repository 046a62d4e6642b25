"""A finished search's results, stored in one transaction with its ``succeeded`` status: the
ranked architectures, their predicted latencies (the latency cache), the Pareto front per hardware
target that the search computed (``SearchResult.fronts``, search.pareto.front_2d), the summary
(with each target's normalised hypervolume, ``SearchResult.hypervolumes``) and the final progress."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from server.db import db_now, insert_ignore, session_scope
from server.jobs.queue import LostJob
from server.jobs.status import SearchStatus
from server.models import ArchitectureRow, FrontPoint, LatencyCache, Search, SearchResult

CHUNK = 1000  # rows per INSERT


def _chunks(rows: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    return [rows[i:i + CHUNK] for i in range(0, len(rows), CHUNK)]


def store_result(factory: sessionmaker[Session], sid: int, worker_id: str, result: Any, hw_ids: list[int],
                 seconds: float, counts: Sequence[int]) -> None:
    """Store ``result`` (``search.runner``'s) of job ``sid`` if ``worker_id`` still runs it, else
    :class:`LostJob`. ``counts``: the search's score-cache hits and its own scored candidates."""
    with session_scope(factory) as s:
        search = s.get(Search, sid)
        if search is None or search.worker_id != worker_id or search.status != SearchStatus.running:
            raise LostJob(sid)
        _store_ranked(s, sid, result.ranked)
        for hid in hw_ids:
            _store_hardware(s, sid, hid, result)
        _succeed(s, search, result, seconds, counts)


def _store_ranked(s: Session, sid: int, ranked: list[Any]) -> None:
    """The ranked candidates (replacing any of an earlier attempt) and their architectures."""
    arch_rows = [{"id": r.canonical_id, "lighttrack": r.arch, "flops": r.macs, "params": r.params}
                 for r in ranked]
    for chunk in _chunks(arch_rows):
        insert_ignore(s, ArchitectureRow, chunk, ["id"])
    s.execute(SearchResult.__table__.delete().where(SearchResult.search_id == sid))
    s.execute(FrontPoint.__table__.delete().where(FrontPoint.search_id == sid))
    rows = [{"search_id": sid, "rank": r.rank, "arch_id": r.canonical_id, "score": r.score,
             "score_se": r.score_se, "latency_ms": {k: float(v) for k, v in r.latency_ms.items()},
             "feasible": r.feasible}
            for r in ranked]
    for chunk in _chunks(rows):
        s.execute(SearchResult.__table__.insert(), chunk)


def _store_hardware(s: Session, sid: int, hid: int, result: Any) -> None:
    """Hardware ``hid``'s predicted latencies (the reference architecture's too) and its front."""
    key, ranked, ref_arch = str(hid), result.ranked, result.reference_arch
    if ref_arch is not None and key in ref_arch.latency_ms:
        insert_ignore(s, LatencyCache, [{"hardware_id": hid, "arch_id": ref_arch.canonical_id,
                                         "latency_ms": float(ref_arch.latency_ms[key])}],
                      ["hardware_id", "arch_id"])
    lat_rows = [{"hardware_id": hid, "arch_id": r.canonical_id, "latency_ms": float(r.latency_ms[key])}
                for r in ranked]
    for chunk in _chunks(lat_rows):
        insert_ignore(s, LatencyCache, chunk, ["hardware_id", "arch_id"])
    by_id = {r.canonical_id: r for r in ranked}
    front = [by_id[c] for c in result.fronts[key]]  # the search's own front on this target
    if front:
        s.execute(FrontPoint.__table__.insert(), [
            {"search_id": sid, "hardware_id": hid, "arch_id": r.canonical_id, "score": r.score,
             "score_se": r.score_se, "latency_ms": float(r.latency_ms[key])} for r in front])


def _succeed(s: Session, search: Search, result: Any, seconds: float, counts: Sequence[int]) -> None:
    """The summary, the final progress and the ``succeeded`` status."""
    ranked, ref_arch = result.ranked, result.reference_arch
    ref = result.reference.get("latency_ms", {}) if isinstance(result.reference, dict) else {}
    search.summary = {"reference_ms": {k: float(v) for k, v in ref.items()},
                      "hypervolume": float(result.hypervolume),
                      # per hardware id, the normalised hypervolume of the stored front (server/jobs/fronts.py)
                      "hypervolumes": {k: float(v) for k, v in result.hypervolumes.items()},
                      "timings": {"worker_s": round(seconds, 3)},
                      # LightTrack-Mobile's point: the front's reference (server/jobs/fronts.py)
                      "reference_arch": ref_arch.model_dump() if ref_arch is not None else None}
    progress = dict(search.progress or {})
    progress.update({"generation": result.generations_done, "generations": result.generations_done,
                     "evaluated": result.evaluated, "cache_hits": counts[0], "scored": counts[1],
                     "best_score": ranked[0].score if ranked else None,
                     "front_size": len(result.front), "hypervolume": float(result.hypervolume),
                     "fraction": 1.0, "note": None})
    search.progress = progress
    search.status, search.finished_at, search.worker_id = SearchStatus.succeeded, db_now(s), None
