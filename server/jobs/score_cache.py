"""The score cache: supernet validation scores kept in ``score_cache`` across searches, so a
candidate scored by one search of a supernet and mode is never scored again by another."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from search.evaluators import Score, as_score
from server.db import insert_ignore, session_scope
from server.models import ScoreCache, Supernet
from server.settings import Settings
from tracking.space import Architecture


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

    def _checkpoints(self) -> list[str]:
        """The checkpoints that score: the supernet's, or an ensemble's members' (first: its own data's)."""
        if not self.supernet.members:
            return [self.supernet.checkpoint_path]
        with self.factory() as session:
            rows = {m.id: m for m in session.scalars(select(Supernet).where(Supernet.id.in_(self.supernet.members)))}
        missing = [i for i in self.supernet.members if i not in rows]
        if missing:
            raise ValueError(f"the ensemble's member supernet {missing[0]} was deleted")
        return [rows[i].checkpoint_path for i in self.supernet.members]

    def _base(self) -> Any:
        if self._scorer is None:
            from search.evaluators import supernet_accuracy

            s = self.settings
            kwargs = {"n_pairs": s.scorer_pairs, "bn_batches": s.scorer_bn_batches,
                      "bn_batch_size": s.scorer_bn_batch_size, "max_sequences": s.scorer_max_sequences,
                      "max_frames": s.scorer_max_frames, "runtime": s.scorer_runtime}
            device = "cpu" if s.scorer_runtime == "onnx" else s.device
            first, *rest = self._checkpoints()
            if s.ray_address or s.eval_workers > 1:  # actors score; this cache and the DB stay here
                from search.ray_pool import ScorerSpec, open_pool

                spec = ScorerSpec(first, self.supernet.data_path, self.mode, kwargs, tuple(rest))
                self._scorer = open_pool(spec, s.eval_workers, s.ray_address, threads=s.eval_threads, device=device)
            else:
                self._scorer = supernet_accuracy([first, *rest], self.supernet.data_path, mode=self.mode,
                                                 device=device, **kwargs)
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
