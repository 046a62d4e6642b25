"""Multi-objective search: NSGA-II over accuracy (up) and latency on one or several targets
(down), optionally MACs/params, with the same constrained proposals, cache and predictor
screening as the evolution.

Our own loop around pymoo's compiled non-dominated sorting rather than ``pymoo.algorithms.moo.
nsga2.NSGA2``: the state must be a JSON document that resumes bit for bit after any generation
(pymoo's algorithm object holds numpy generators and operator objects that do not serialise),
children must be deduplicated by canonical network id against a persistent evaluation cache,
the latency constraint must be honoured by repair, and evaluation must go through the executor
in cancellable batches. Variation uses the space's own operators (stage-wise crossover, per-gene
mutation) instead of SBX/polynomial mutation on rounded integers, which treat categorical choices
as ordered numbers.
"""

from __future__ import annotations

import numpy as np

from search.engine import Candidate, Engine
from search.pareto import crowding_distance, non_dominated_ranks, rank_and_crowding_order
from tracking.space import Architecture, crossover, mutate, sample


def _rank_crowd(F: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ranks = non_dominated_ranks(F)
    crowd = np.zeros(len(F))
    for r in np.unique(ranks):
        idx = np.nonzero(ranks == r)[0]
        crowd[idx] = crowding_distance(F[idx])
    return ranks, crowd


def generation(engine: Engine) -> int:
    cfg, rng, space = engine.cfg, engine.rng, engine.space
    pop = [Architecture.from_string(s, space) for s in engine.population]
    pop_ids = [a.canonical_id() for a in pop]
    taken: set[str] = set(pop_ids)
    cands: list[Candidate] = []
    if engine.generation > 0 and len(pop) >= 2:
        ranks, crowd = _rank_crowd(engine.objectives(pop_ids))

        def tournament() -> Architecture:
            i, j = rng.randrange(len(pop)), rng.randrange(len(pop))
            better_i = (ranks[i], -crowd[i], i) <= (ranks[j], -crowd[j], j)
            return pop[i] if better_i else pop[j]

        def child() -> Architecture:
            return mutate(crossover(tournament(), tournament(), rng), rng, cfg.mutation_prob, space)

        cands += engine.propose(child, cfg.population, taken)
    elif engine.generation == 0 and cfg.seed_extremes:
        cands += engine.extremes(taken)
    cands += engine.propose(lambda: sample(rng, space), cfg.population - len(cands), taken)

    def by_predicted_front(cs: list[Candidate], pred: np.ndarray) -> np.ndarray:
        # rank predicted children together with the (truly scored) population
        F = engine.candidate_objectives(cs, pred)
        if pop_ids:
            F = np.concatenate([F, engine.objectives(pop_ids)])
        order = rank_and_crowding_order(F)
        return order[order < len(cs)]

    kept, pred = engine.screen(cands, by_predicted_front)
    engine.evaluate(kept, pred)
    # survival: best `population` of parents + children by front, then crowding
    pool = pop_ids + [c.cid for c in kept]
    pool_arch = [a.to_string() for a in pop] + [c.arch.to_string() for c in kept]
    order = rank_and_crowding_order(engine.objectives(pool))[: cfg.population]
    engine.population = [pool_arch[i] for i in order]
    return len(kept)


def ranked(engine: Engine) -> list[str]:
    """Every evaluated architecture by front over the whole archive, then score."""
    cids = list(engine.records)
    if not cids:
        return []
    ranks = non_dominated_ranks(engine.objectives(cids))
    return [cids[i] for i in sorted(range(len(cids)),
                                    key=lambda i: (ranks[i], -engine.records[cids[i]]["accuracy"], cids[i]))]
