"""The search job's settings (pydantic: validated at the edge, serialised into the state)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tracking.space import SearchSpace


class SearchConfig(BaseModel):
    """What to search for and how. Defaults follow LightTrack's evolution (48 x 20, top-10
    parents, 24 mutations + 24 crossovers, per-gene mutation probability 0.1)."""

    model_config = ConfigDict(extra="forbid")

    algorithm: Literal["evolution", "pareto"] = "evolution"
    budget_ms: float | None = Field(None, gt=0, le=1e6, description="latency budget on `target` (ms)")
    target: str | None = Field(None, description="hardware target the budget applies to (default: first)")
    max_mflops: float | None = Field(None, gt=0, description="MACs budget, millions (search branch)")
    max_mparams: float | None = Field(None, gt=0, description="parameter budget, millions")
    extra_objectives: list[Literal["flops", "params"]] = Field(
        default_factory=list, description="pareto only: also minimise MACs and/or params")
    population: int = Field(48, ge=4, le=1000)
    generations: int = Field(20, ge=1, le=1000)
    parents: int = Field(10, ge=2, le=1000, description="evolution: top-k parents")
    mutations: int | None = Field(None, ge=0, le=1000, description="evolution: mutants per generation "
                                  "(default population/2)")
    crossovers: int | None = Field(None, ge=0, le=1000, description="evolution: crossovers per generation "
                                   "(default population/2)")
    mutation_prob: float = Field(0.1, gt=0, le=1)
    seed: int = Field(0, ge=0, le=2**32 - 1)
    predictor: bool = Field(False, description="pre-screen children with an accuracy predictor")
    predictor_kind: Literal["ridge", "trees"] = "ridge"
    predictor_min_samples: int = Field(32, ge=4, le=100000)
    # 1/8: with latency free (the table) and accuracy the expensive call, screening hard pays
    # (benchmarks/bench_search.py: hypervolume at 960 evaluations 0.4423 at 1/2, 0.4548 at 1/8).
    screen_ratio: float = Field(0.125, gt=0, le=1, description="fraction of screened children evaluated")
    max_tries: int = Field(20, ge=1, le=1000, description="proposals allowed per wanted child")
    seed_extremes: bool = Field(True, description="pareto: start from the fastest and the largest "
                                "architectures besides random ones")
    repair: bool = Field(True, description="repair infeasible children towards the fastest architecture")
    reference_ms: dict[str, float] | None = Field(
        None, description="hypervolume reference latency per target (default: slowest architecture)")
    batch_size: int = Field(16, ge=1, le=4096, description="architectures per evaluation batch")
    space: Literal["paper", "code"] = "paper"

    @model_validator(mode="after")
    def _check(self) -> SearchConfig:
        if self.parents > self.population:
            raise ValueError(f"parents ({self.parents}) must not exceed population ({self.population})")
        n_mut, n_cross = self.n_mutations, self.n_crossovers
        if n_mut + n_cross > self.population:
            raise ValueError(f"mutations + crossovers ({n_mut} + {n_cross}) exceed population "
                             f"({self.population})")
        if self.extra_objectives and self.algorithm != "pareto":
            raise ValueError("extra_objectives apply to algorithm 'pareto' only")
        if self.reference_ms and any(v <= 0 for v in self.reference_ms.values()):
            raise ValueError("reference_ms values must be > 0")
        return self

    @property
    def n_mutations(self) -> int:
        return self.population // 2 if self.mutations is None else self.mutations

    @property
    def n_crossovers(self) -> int:
        return self.population // 2 if self.crossovers is None else self.crossovers

    def search_space(self) -> SearchSpace:
        return SearchSpace.named(self.space)
