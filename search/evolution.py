"""Constrained evolution as in LightTrack (after SPOS): each generation keeps the top-k of every
architecture evaluated so far as parents, makes mutants (per-gene probability p) and crossovers
(whole backbone stages) from them, and refills the population with random samples. Every child
must meet the constraint (repaired or resampled, boundedly, in :meth:`Engine.propose`), and
children already evaluated are skipped (a counted cache hit), as SPOS's visited set does.
"""

from __future__ import annotations

import numpy as np

from search.engine import Candidate, Engine
from tracking.space import Architecture, crossover, mutate, sample


def _by_prediction(cands: list[Candidate], pred: np.ndarray) -> np.ndarray:
    return np.argsort(-pred, kind="stable")


def parents(engine: Engine) -> list[Architecture]:
    ids = sorted(engine.records, key=lambda c: (-engine.records[c]["accuracy"], c))[: engine.cfg.parents]
    return [Architecture.from_string(engine.records[c]["arch"], engine.space) for c in ids]


def generation(engine: Engine) -> int:
    """Run one generation (the first is random); returns how many new architectures were scored."""
    cfg, rng, space = engine.cfg, engine.rng, engine.space
    taken: set[str] = set()
    cands: list[Candidate] = []
    if engine.generation > 0 and engine.records:
        top = parents(engine)
        cands += engine.propose(lambda: mutate(rng.choice(top), rng, cfg.mutation_prob, space),
                                cfg.n_mutations, taken)
        if len(top) >= 2:
            cands += engine.propose(lambda: crossover(*rng.sample(top, 2), rng), cfg.n_crossovers, taken)
    cands += engine.propose(lambda: sample(rng, space), cfg.population - len(cands), taken)
    kept, pred = engine.screen(cands, _by_prediction)
    engine.evaluate(kept, pred)
    engine.population = [c.arch.to_string() for c in kept]
    return len(kept)


def ranked(engine: Engine) -> list[str]:
    """Every evaluated (hence feasible) architecture, best score first."""
    return sorted(engine.records, key=lambda c: (-engine.records[c]["accuracy"], c))
