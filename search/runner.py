"""``run_search``: the one entry point the CLI and the service's worker call.

The worker persists ``on_generation``'s state after every generation and passes it back as
``state`` to resume; ``should_stop`` is polled between evaluation batches (cancellation), and a
stopped run returns the last complete generation's state, so nothing half-done is ever saved.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel, Field

from latency_tables.predict import frame_figures
from search import evolution, nsga
from search.config import SearchConfig
from search.engine import Engine
from search.evaluators import (
    AccuracyEvaluator,
    FlopsEvaluator,
    LatencyEvaluator,
    LatencyModel,
    latency_evaluators,
)
from search.executor import Executor, InProcessExecutor, SearchStopped
from search.pareto import front_2d, target_hypervolume

ALGORITHMS = {"evolution": evolution, "pareto": nsga}


class RankedArch(BaseModel):
    rank: int
    arch: str = Field(description="LightTrack string")
    canonical_id: str
    score: float
    score_se: float | None = Field(None, description="standard error of the score (over validation "
                                   "pairs or sequences); None where the evaluator gives none")
    latency_ms: dict[str, float]
    frame_ms: dict[str, float] = Field(default_factory=dict, description="the tracker's whole frame per target "
                                       "(latency_ms + the table's pre/post-processing; latency_tables.frame); "
                                       "targets whose table has no pre/post record are absent")
    fps: dict[str, float] = Field(default_factory=dict, description="1000 / frame_ms per target")
    macs: int | None = None
    params: int | None = None
    feasible: bool = True
    on_front: bool = False
    generation: int


class ReferenceArch(BaseModel):
    """LightTrack-Mobile's own point: what the search is measured against."""

    name: str = "LightTrack-Mobile"
    arch: str = Field(description="LightTrack string")
    canonical_id: str
    score: float = Field(description="its supernet validation score, as every candidate's")
    score_se: float | None = None
    latency_ms: dict[str, float] = Field(description="predicted latency per target (ms)")
    frame_ms: dict[str, float] = Field(default_factory=dict, description="as RankedArch.frame_ms")
    fps: dict[str, float] = Field(default_factory=dict, description="1000 / frame_ms per target")
    feasible: bool = Field(description="within the search's constraints")
    evaluated_for_reference: bool = Field(description="scored for the reference (the search itself "
                                          "never proposed it)")


class SearchResult(BaseModel):
    algorithm: str
    completed: bool = Field(description="False when should_stop ended the run early")
    generations_done: int
    evaluated: int = Field(description="architectures scored by the accuracy evaluator")
    cache_hits: int
    stats: dict[str, int]
    ranked: list[RankedArch]
    front: list[RankedArch] = Field(description="the non-dominated architectures over every objective at "
                                    "once (score and all targets' latencies; RankedArch.on_front)")
    hypervolume: float = Field(description="the front's normalised hypervolume: objectives 1 - score and "
                               "latency / reference latency per target (and extras), reference point "
                               "(1, 1, ...), a fraction of the unit box (docs/search.md)")
    fronts: dict[str, list[str]] = Field(default_factory=dict, description="per target, the 2-D front of "
                                         "score vs that target's latency (search.pareto.front_2d): candidate "
                                         "ids, fastest first")
    hypervolumes: dict[str, float] = Field(default_factory=dict, description="per target, that front's "
                                           "normalised hypervolume (search.pareto.target_hypervolume: 1 - "
                                           "score, latency / the target's reference latency, reference "
                                           "point (1, 1)); equals hypervolume for a single-target search "
                                           "without extra objectives")
    reference: dict[str, Any] = Field(description="hypervolume reference point (see docs/search.md)")
    reference_arch: ReferenceArch | None = Field(None, description="LightTrack-Mobile's point (None when "
                                                 "its path is not in the search space, or the run stopped early)")
    spearman: list[float | None]
    history: list[dict[str, Any]]
    state: dict[str, Any]

    @property
    def best(self) -> RankedArch | None:
        return self.ranked[0] if self.ranked else None


ProgressCallback = Callable[[dict[str, Any], dict[str, Any]], None]


def run_search(config: SearchConfig, accuracy: AccuracyEvaluator,
               latencies: Mapping[str, LatencyModel | LatencyEvaluator], state: dict[str, Any] | None = None,
               on_generation: ProgressCallback | None = None, should_stop: Callable[[], bool] | None = None,
               executor: Executor | None = None, flops: FlopsEvaluator | None | bool = True) -> SearchResult:
    """Run (or resume) a search.

    ``latencies``: ``{target name: LatencyPredictor}``. ``on_generation(progress, state)`` is
    called after every generation with a progress dict (generation, evaluated, cache_hits,
    best_score/arch/latency, front_size, hypervolume, spearman) and the JSON-serialisable state.
    ``flops``: True builds a :class:`FlopsEvaluator` (MACs and params in the results), False/None
    leaves them out.
    """
    space = config.search_space()
    lat = latency_evaluators(latencies, space)
    fl = FlopsEvaluator(space) if flops is True else (flops or None)
    engine = Engine(config, accuracy, lat, executor or InProcessExecutor(config.batch_size), fl,
                    should_stop, state)
    algo = ALGORITHMS[config.algorithm]
    completed = True
    # the last complete generation's state, to fall back to if a stop lands mid-generation
    snapshot = engine.state_dict() if should_stop is not None else None
    while engine.generation < config.generations:
        if should_stop is not None and should_stop():
            completed = False
            break
        try:
            n_new = algo.generation(engine)
        except SearchStopped:
            engine = Engine(config, accuracy, lat, engine.executor, fl, should_stop, snapshot)
            completed = False
            break
        progress = engine.progress(n_new)
        engine.history.append(progress)
        engine.generation += 1
        if on_generation is not None or should_stop is not None:
            snapshot = engine.state_dict()
            if on_generation is not None:
                on_generation(progress, snapshot)
    if completed:
        try:
            engine.score_reference_arch()  # after the search: free when it evaluated Mobile itself
        except SearchStopped:
            completed = False
    return _result(engine, algo, completed, {t: getattr(m, "frame", None) for t, m in latencies.items()})


def check_config(config: SearchConfig, latencies: Mapping[str, LatencyModel | LatencyEvaluator],
                 flops: FlopsEvaluator | None | bool = True) -> None:
    """Raise ValueError (e.g. :class:`InfeasibleBudgetError` naming the fastest latency reachable,
    or ``MissingUnitsError``) for a search that cannot run, without evaluating anything."""
    space = config.search_space()
    fl = FlopsEvaluator(space) if flops is True else (flops or None)
    Engine(config, _NoAccuracy(), latency_evaluators(latencies, space), InProcessExecutor(), fl)


class _NoAccuracy:
    def evaluate(self, archs: Any) -> list[float]:
        raise RuntimeError("check_config evaluates nothing")


def _frame(latency_ms: Mapping[str, float], frames: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    """``frame_ms`` and ``fps`` per target whose table has a pre/post-processing record."""
    out: dict[str, dict[str, float]] = {"frame_ms": {}, "fps": {}}
    for t, ms in latency_ms.items():
        fig = frame_figures(ms, frames.get(t))
        if fig["frame_ms"] is not None and fig["fps"] is not None:
            out["frame_ms"][t], out["fps"][t] = fig["frame_ms"], fig["fps"]
    return out


def _result(engine: Engine, algo: Any, completed: bool, frames: Mapping[str, Any] | None = None) -> SearchResult:
    front_ids, hv = engine.front()
    on_front = set(front_ids)
    frames = frames or {}

    def row(rank: int, cid: str) -> RankedArch:
        r = engine.records[cid]
        return RankedArch(rank=rank, arch=r["arch"], canonical_id=cid, score=r["accuracy"],
                          score_se=r.get("accuracy_se"), latency_ms=r["latency"], **_frame(r["latency"], frames),
                          macs=r.get("macs"), params=r.get("params"),
                          on_front=cid in on_front, generation=r["generation"])

    ranked = [row(i + 1, c) for i, c in enumerate(algo.ranked(engine))]
    by_id = {r.canonical_id: r for r in ranked}
    reference = {"accuracy": 0.0, "latency_ms": {t: engine.reference[t] for t in engine.targets},
                 "normalised_point": [1.0] * (1 + len(engine.targets) + len(engine.cfg.extra_objectives)),
                 "objectives": ["1 - score"] + [f"latency[{t}] / {engine.reference[t]:.6g} ms"
                                                for t in engine.targets]
                 + [f"{o} / {engine.reference[o]:.6g}" for o in engine.cfg.extra_objectives]}
    ra = engine.reference_arch
    fronts: dict[str, list[str]] = {}
    hypervolumes: dict[str, float] = {}
    for t in engine.targets:
        front = front_2d((r.canonical_id, r.score, r.latency_ms[t]) for r in ranked)
        fronts[t] = [c for c, _, _ in front]
        hypervolumes[t] = target_hypervolume(front, engine.reference[t])
    reference_arch = None if ra is None else ReferenceArch(
        name=ra["name"], arch=ra["arch"], canonical_id=ra["canonical_id"], score=ra["accuracy"],
        score_se=ra.get("accuracy_se"), latency_ms=ra["latency"], **_frame(ra["latency"], frames),
        feasible=ra["feasible"],
        evaluated_for_reference=ra["evaluated_for_reference"])
    return SearchResult(
        algorithm=engine.cfg.algorithm, completed=completed, generations_done=engine.generation,
        evaluated=engine.stats["evaluated"], cache_hits=engine.stats["cache_hits"], stats=dict(engine.stats),
        ranked=ranked, front=[by_id[c] for c in front_ids], hypervolume=hv, fronts=fronts,
        hypervolumes=hypervolumes, reference=reference, reference_arch=reference_arch,
        spearman=list(engine.spearman), history=list(engine.history), state=engine.state_dict())
