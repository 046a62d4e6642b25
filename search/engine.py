"""Machinery shared by both algorithms: constrained proposals, the evaluation cache, predictor
screening, objectives, and the state that makes a run resumable.

An algorithm (``evolution.py``, ``nsga.py``) only says how children are made and who survives;
everything that touches the evaluators, the constraint, the cache or the RNG lives here so both
algorithms honour the budget, count cache hits and resume the same way.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from search import state as st
from search.config import SearchConfig
from search.evaluators import (
    AccuracyEvaluator,
    FlopsEvaluator,
    LatencyEvaluator,
    as_score,
    fastest_latency,
    genes_of,
    largest_genes,
    smallest_genes,
)
from search.executor import Executor
from search.pareto import hypervolume, non_dominated_ranks
from search.predictor import AccuracyPredictor, spearman
from tracking.space import Architecture, ArchitectureError, from_genes, lighttrack_mobile


class InfeasibleBudgetError(ValueError):
    """No architecture of the space meets the requested constraint."""


@dataclass
class Candidate:
    arch: Architecture
    cid: str
    genes: np.ndarray
    latency: np.ndarray  # [n_targets] ms
    macs: float | None = None
    params: float | None = None


class Engine:
    def __init__(self, config: SearchConfig, accuracy: AccuracyEvaluator,
                 latencies: dict[str, LatencyEvaluator], executor: Executor,
                 flops: FlopsEvaluator | None = None, should_stop: Callable[[], bool] | None = None,
                 state: dict[str, Any] | None = None) -> None:
        if not latencies:
            raise ValueError("at least one latency target is needed")
        self.cfg = config
        self.space = config.search_space()
        self.accuracy = accuracy
        self.targets = list(latencies)
        self.lat = [latencies[t] for t in self.targets]
        self.executor = executor
        self.flops = flops
        self.should_stop = should_stop
        if config.budget_ms is not None:
            target = config.target or self.targets[0]
            if target not in latencies:
                raise ValueError(f"budget target {target!r} is not one of the tables: {', '.join(self.targets)}")
            self.budget_idx: int | None = self.targets.index(target)
        else:
            self.budget_idx = None
        if (config.max_mflops or config.max_mparams or config.extra_objectives) and flops is None:
            raise ValueError("FLOPs/params constraints or objectives need a FLOPs evaluator")
        self._check_budget()
        self.reference = self._reference()
        self.predictor = AccuracyPredictor(self.space, seed=config.seed, kind=config.predictor_kind)
        # mutable state (all of it goes into state_dict)
        self.rng = random.Random(config.seed)  # seeded for reproducible search, not a secret  # nosec B311
        self.generation = 0
        self.population: list[str] = []
        self.records: dict[str, dict[str, Any]] = {}
        self.stats = {k: 0 for k in ("proposed", "evaluated", "cache_hits", "duplicates", "infeasible",
                                     "repaired", "screened_out")}
        self.train_ids: list[str] = []
        self.spearman: list[float | None] = []
        self.history: list[dict[str, Any]] = []
        self.reference_arch: dict[str, Any] | None = None  # LightTrack-Mobile's point (score_reference_arch)
        # derived from records, not part of the state
        self._genes: dict[str, np.ndarray] = {}
        self._F: dict[str, np.ndarray] = {}
        if state is not None:
            self.load_state(state)

    # -- constraint ---------------------------------------------------------------------------
    def _check_budget(self) -> None:
        cfg = self.cfg
        if self.budget_idx is not None:
            ev = self.lat[self.budget_idx]
            fastest = fastest_latency(ev)
            _, self.anchor = ev.extreme(fastest=True)
            if cfg.budget_ms is not None and cfg.budget_ms < fastest:
                raise InfeasibleBudgetError(
                    f"latency budget {cfg.budget_ms:g} ms on target {ev.name!r} cannot be met: the fastest "
                    f"architecture of the space takes {fastest:.4g} ms there")
        else:
            self.anchor = smallest_genes(self.space)
        if cfg.max_mflops or cfg.max_mparams:
            assert self.flops is not None  # type narrowing: set whenever FLOPs limits are  # nosec B101
            macs, params = self.flops.evaluate([from_genes(list(smallest_genes(self.space)), self.space)])[0]
            if cfg.max_mflops and cfg.max_mflops * 1e6 < macs:
                raise InfeasibleBudgetError(
                    f"FLOPs budget {cfg.max_mflops:g} M cannot be met: the smallest architecture of the "
                    f"space has {macs / 1e6:.4g} M MACs")
            if cfg.max_mparams and cfg.max_mparams * 1e6 < params:
                raise InfeasibleBudgetError(
                    f"params budget {cfg.max_mparams:g} M cannot be met: the smallest architecture of the "
                    f"space has {params / 1e6:.4g} M params")

    def latency_matrix(self, genes: np.ndarray) -> np.ndarray:
        return np.stack([ev.genes(genes) for ev in self.lat], axis=1) if len(genes) else \
            np.zeros((0, len(self.lat)))

    def _flops_of(self, genes: np.ndarray) -> np.ndarray:
        assert self.flops is not None  # type narrowing: only called with FLOPs limits  # nosec B101
        return self.flops.evaluate([from_genes(list(g), self.space) for g in genes])

    def feasible(self, genes: np.ndarray, lat: np.ndarray) -> np.ndarray:
        ok = np.ones(len(genes), dtype=bool)
        if self.budget_idx is not None:
            ok &= lat[:, self.budget_idx] <= self.cfg.budget_ms
        if (self.cfg.max_mflops or self.cfg.max_mparams) and ok.any():
            idx = np.nonzero(ok)[0]
            fp = self._flops_of(genes[idx])
            if self.cfg.max_mflops:
                ok[idx[fp[:, 0] > self.cfg.max_mflops * 1e6]] = False
            if self.cfg.max_mparams:
                ok[idx[fp[:, 1] > self.cfg.max_mparams * 1e6]] = False
        return ok

    def repair(self, genes: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """Move genes one at a time (seeded random order) to the fastest architecture's values and
        keep the first variant that is feasible; bounded by the number of genes."""
        diff = [int(i) for i in np.nonzero(genes != self.anchor)[0]]
        if not diff:
            return None
        self.rng.shuffle(diff)
        seq = np.repeat(genes[None], len(diff), 0)
        for j, i in enumerate(diff):
            seq[j:, i] = self.anchor[i]
        lat = self.latency_matrix(seq)
        ok = self.feasible(seq, lat)
        if not ok.any():
            return None
        j = int(np.argmax(ok))
        return seq[j], lat[j]

    # -- proposals ----------------------------------------------------------------------------
    def propose(self, make_child: Callable[[], Architecture], n: int, taken: set[str]) -> list[Candidate]:
        """Up to ``n`` new feasible candidates from ``make_child``; at most ``n * max_tries``
        proposals, so an over-tight budget ends the loop instead of spinning forever."""
        out: list[Candidate] = []
        tries, limit = 0, n * self.cfg.max_tries
        while len(out) < n and tries < limit:
            k = min(max(2 * (n - len(out)), 4), limit - tries)
            tries += k
            self.stats["proposed"] += k
            fresh: list[tuple[Architecture, str]] = []
            for a in (make_child() for _ in range(k)):
                cid = a.canonical_id()
                if cid in self.records:
                    self.stats["cache_hits"] += 1
                elif cid in taken:
                    self.stats["duplicates"] += 1
                else:
                    fresh.append((a, cid))
            if not fresh:
                continue
            genes = genes_of([a for a, _ in fresh], self.space)
            lat = self.latency_matrix(genes)
            ok = self.feasible(genes, lat)
            for i, (a, cid) in enumerate(fresh):
                if len(out) >= n:
                    break
                g, lt = genes[i], lat[i]
                if not ok[i]:
                    self.stats["infeasible"] += 1
                    fixed = self.repair(g) if self.cfg.repair else None
                    if fixed is None:
                        continue
                    g, lt = fixed
                    a = _with_extra(from_genes(list(g), self.space), a.extra)
                    cid = a.canonical_id()
                    if cid in self.records:
                        self.stats["cache_hits"] += 1
                        continue
                    self.stats["repaired"] += 1
                if cid in taken:
                    self.stats["duplicates"] += 1
                    continue
                taken.add(cid)
                out.append(Candidate(a, cid, g, lt))
        return out

    def extremes(self, taken: set[str]) -> list[Candidate]:
        """The fastest architecture of every target and the largest one, where feasible: seeds that
        anchor both ends of a Pareto front (deterministic, no RNG)."""
        rows = [ev.extreme(fastest=True)[1] for ev in self.lat] + [largest_genes(self.space)]
        genes = np.stack(rows)
        lat = self.latency_matrix(genes)
        ok = self.feasible(genes, lat)
        out = []
        for g, lt, good in zip(genes, lat, ok, strict=True):
            a = from_genes(list(g), self.space)
            cid = a.canonical_id()
            if good and cid not in taken and cid not in self.records:
                taken.add(cid)
                out.append(Candidate(a, cid, g, lt))
        return out

    # -- predictor screening ------------------------------------------------------------------
    def screen(self, cands: list[Candidate],
               order: Callable[[list[Candidate], np.ndarray], np.ndarray]) -> tuple[list[Candidate], np.ndarray | None]:
        """Keep the ``screen_ratio`` best candidates by ``order(cands, predicted_accuracy)``."""
        if not (self.cfg.predictor and self.predictor.trained) or len(cands) < 2:
            return cands, None
        pred = self.predictor.predict(np.stack([c.genes for c in cands]))
        keep = max(1, math.ceil(self.cfg.screen_ratio * len(cands)))
        idx = np.sort(order(cands, pred)[:keep])
        self.stats["screened_out"] += len(cands) - keep
        return [cands[i] for i in idx], pred[idx]

    # -- evaluation ---------------------------------------------------------------------------
    def evaluate(self, cands: list[Candidate], predicted: np.ndarray | None = None) -> None:
        """Score new candidates with the expensive evaluator (in executor batches) and record them."""
        if not cands:
            return
        scored = [as_score(x) for x in
                  self.executor.map_batches(self.accuracy.evaluate, [c.arch for c in cands], self.should_stop)]
        scores = [x.value for x in scored]
        fp = self._flops_of(np.stack([c.genes for c in cands])) if self.flops is not None else None
        for i, (c, sc) in enumerate(zip(cands, scored, strict=True)):
            rec: dict[str, Any] = {"arch": c.arch.to_string(), "accuracy": sc.value, "accuracy_se": sc.se,
                                   "latency": {t: float(v) for t, v in zip(self.targets, c.latency, strict=True)},
                                   "generation": self.generation}
            if fp is not None:
                rec["macs"], rec["params"] = int(fp[i, 0]), int(fp[i, 1])
            self.records[c.cid] = rec
            self._genes[c.cid] = c.genes
        self.stats["evaluated"] += len(cands)
        if predicted is not None:
            self.spearman.append(spearman(predicted, np.asarray(scores, float)))
        if self.cfg.predictor:
            self.train_ids.extend(c.cid for c in cands)
            self._fit_predictor()

    def score_reference_arch(self) -> dict[str, Any] | None:
        """LightTrack-Mobile's own point: its supernet score (and standard error) and its predicted
        latency on every target, so fronts can show what the search bought over the published
        network. Taken from the records when the search evaluated it, otherwise scored once by
        the accuracy evaluator (cached evaluators answer from their cache) and kept in the state.
        None when Mobile's path is not in this search space. May raise ``SearchStopped``."""
        if self.reference_arch is not None:
            return self.reference_arch
        mobile = lighttrack_mobile()
        try:
            mobile.validate(self.space)
        except ArchitectureError:
            return None
        cid = mobile.canonical_id()
        genes = genes_of([mobile], self.space)
        lat = self.latency_matrix(genes)
        if cid in self.records:
            r = self.records[cid]
            sc, evaluated = as_score((r["accuracy"], r.get("accuracy_se"))), False
        else:
            out = self.executor.map_batches(self.accuracy.evaluate, [mobile], self.should_stop)
            sc, evaluated = as_score(out[0]), True
        self.reference_arch = {
            "name": "LightTrack-Mobile", "arch": mobile.to_string(), "canonical_id": cid,
            "accuracy": sc.value, "accuracy_se": sc.se,
            "latency": {t: float(v) for t, v in zip(self.targets, lat[0], strict=True)},
            "feasible": bool(self.feasible(genes, lat)[0]), "evaluated_for_reference": evaluated}
        return self.reference_arch

    def _fit_predictor(self) -> None:
        if len(self.train_ids) < self.cfg.predictor_min_samples:
            return
        genes = np.stack([self.genes_of_record(c) for c in self.train_ids])
        self.predictor.fit(genes, np.array([self.records[c]["accuracy"] for c in self.train_ids]))

    def genes_of_record(self, cid: str) -> np.ndarray:
        g = self._genes.get(cid)
        if g is None:
            arch = Architecture.from_string(self.records[cid]["arch"], self.space)
            g = self._genes[cid] = genes_of([arch], self.space)[0]
        return g

    # -- objectives ---------------------------------------------------------------------------
    def _reference(self) -> dict[str, float]:
        """Hypervolume reference: accuracy 0 and, per target, the slowest architecture's latency
        (or the user's ``reference_ms``); MACs/params: the largest architecture's."""
        ref: dict[str, float] = {}
        given = self.cfg.reference_ms or {}
        for ev in self.lat:
            ref[ev.name] = float(given[ev.name]) if ev.name in given else ev.extreme(fastest=False)[0]
        if self.cfg.extra_objectives:
            assert self.flops is not None  # type narrowing: set whenever FLOPs limits are  # nosec B101
            macs, params = self.flops.evaluate([from_genes(list(largest_genes(self.space)), self.space)])[0]
            ref["flops"], ref["params"] = float(macs), float(params)
        return ref

    def objectives(self, cids: list[str]) -> np.ndarray:
        """Minimisation matrix: 1 - accuracy, latency / reference per target, then extras."""
        n_obj = 1 + len(self.targets) + len(self.cfg.extra_objectives)
        if not cids:
            return np.zeros((0, n_obj))
        return np.stack([self._objective_row(c) for c in cids])

    def _objective_row(self, cid: str) -> np.ndarray:
        row = self._F.get(cid)
        if row is None:  # records never change once written, so rows are cached
            r = self.records[cid]
            vals = [1.0 - r["accuracy"]] + [r["latency"][t] / self.reference[t] for t in self.targets]
            for o in self.cfg.extra_objectives:
                vals.append((r["macs"] if o == "flops" else r["params"]) / self.reference[o])
            row = self._F[cid] = np.array(vals, dtype=float)
        return row

    def candidate_objectives(self, cands: list[Candidate], accuracy: np.ndarray) -> np.ndarray:
        lat = np.stack([c.latency for c in cands]) / np.array([self.reference[t] for t in self.targets])
        cols = [1.0 - accuracy[:, None], lat]
        if self.cfg.extra_objectives:
            fp = self._flops_of(np.stack([c.genes for c in cands]))
            for o in self.cfg.extra_objectives:
                cols.append((fp[:, 0] if o == "flops" else fp[:, 1])[:, None] / self.reference[o])
        return np.concatenate(cols, axis=1)

    def front(self) -> tuple[list[str], float]:
        """Non-dominated evaluated architectures (by objectives) and their hypervolume against the
        reference point (1, 1, ...) of the normalised objectives."""
        cids = list(self.records)
        if not cids:
            return [], 0.0
        F = self.objectives(cids)
        first = non_dominated_ranks(F) == 0
        front = [c for c, f in zip(cids, first, strict=True) if f]
        front.sort(key=lambda c: (-self.records[c]["accuracy"], c))
        return front, hypervolume(F[first], np.ones(F.shape[1]))

    def best(self) -> str | None:
        if not self.records:
            return None
        return max(self.records, key=lambda c: (self.records[c]["accuracy"], c))

    def progress(self, n_new: int) -> dict[str, Any]:
        front, hv = self.front()
        best = self.best()
        rec = self.records[best] if best else None
        return {
            "generation": self.generation, "generations": self.cfg.generations,
            "new": n_new, "evaluated": self.stats["evaluated"], "cache_hits": self.stats["cache_hits"],
            "best_score": rec["accuracy"] if rec else None, "best_arch": rec["arch"] if rec else None,
            "best_latency": rec["latency"] if rec else None,
            "front_size": len(front), "hypervolume": hv,
            "spearman": self.spearman[-1] if self.spearman else None,
        }

    # -- state --------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "version": st.STATE_VERSION, "config": self.cfg.model_dump(mode="json"),
            "targets": list(self.targets), "reference": dict(self.reference), "generation": self.generation,
            "population": list(self.population), "records": {k: dict(v) for k, v in self.records.items()},
            "rng": st.rng_to_json(self.rng), "stats": dict(self.stats),
            "predictor": {"train_ids": list(self.train_ids), "spearman": list(self.spearman)},
            "history": [dict(h) for h in self.history],
            "reference_arch": dict(self.reference_arch) if self.reference_arch is not None else None,
        }

    def load_state(self, state: dict[str, Any]) -> None:
        st.check(state)
        saved = SearchConfig.model_validate(state["config"])
        mine = self.cfg.model_dump(exclude={"generations"})
        theirs = saved.model_dump(exclude={"generations"})
        if mine != theirs:
            diff = sorted(k for k in mine if mine[k] != theirs.get(k))
            raise ValueError(f"search state was made with a different configuration ({', '.join(diff)})")
        if state.get("targets") != self.targets:
            raise ValueError(f"search state targets {state.get('targets')} differ from {self.targets}")
        saved_ref = state.get("reference", {})
        changed = [t for t in self.targets
                   if t in saved_ref and not math.isclose(saved_ref[t], self.reference[t], rel_tol=1e-9)]
        if changed:
            raise ValueError(f"latency table(s) {', '.join(changed)} changed since the search state was saved "
                             "(the slowest architecture's latency differs); start a new search")
        self.generation = int(state["generation"])
        self.population = list(state["population"])
        self.records = {k: dict(v) for k, v in state["records"].items()}
        self.rng = st.rng_from_json(state["rng"])
        self.stats = {k: int(v) for k, v in state["stats"].items()}
        pred = state.get("predictor", {})
        self.train_ids = list(pred.get("train_ids", []))
        self.spearman = list(pred.get("spearman", []))
        self.history = list(state.get("history", []))
        ref = state.get("reference_arch")  # absent in states saved before it existed
        self.reference_arch = dict(ref) if isinstance(ref, dict) else None
        if self.cfg.predictor:
            self._fit_predictor()


def _with_extra(arch: Architecture, extra: str) -> Architecture:
    """Keep the parent's unused published digits on a repaired child (they never change the net)."""
    from dataclasses import replace

    return replace(arch, extra=extra)
