import json

import numpy as np
import pytest

from search.config import SearchConfig
from search.engine import InfeasibleBudgetError
from search.evaluators import LatencyEvaluator, genes_of
from search.pareto import hypervolume, pareto_mask, target_hypervolume
from search.report import write_ranked
from search.runner import check_config, run_search
from tracking.flops import count_flops_params
from tracking.space import Architecture, sample_many


def small(**kw) -> SearchConfig:
    base = dict(population=12, generations=5, parents=4, seed=0)
    base.update(kw)
    return SearchConfig(**base)


def test_config_limits():
    for bad in (dict(population=3), dict(population=1001), dict(generations=0), dict(generations=1001),
                dict(mutation_prob=0), dict(parents=20, population=10), dict(budget_ms=-1)):
        with pytest.raises(ValueError):
            SearchConfig(**bad)


@pytest.mark.parametrize("algorithm", ["evolution", "pareto"])
def test_constraint_always_honoured(space, surrogate, cpu_table, gpu_table, algorithm):
    fastest = LatencyEvaluator("cpu", cpu_table, space).extreme(True)[0]
    for budget in (fastest * 1.05, fastest * 1.6, fastest * 3):
        r = run_search(small(algorithm=algorithm, budget_ms=budget, target="cpu"), surrogate,
                       {"gpu": gpu_table, "cpu": cpu_table})
        assert r.evaluated > 0
        archs = [Architecture.from_string(x.arch, space) for x in r.ranked]
        lat = cpu_table.predict_batch(archs)  # recomputed independently of the search
        assert (lat <= budget + 1e-9).all(), (budget, lat.max())


def test_flops_and_params_caps_honoured(space, surrogate, cpu_table):
    r = run_search(small(max_mflops=450, max_mparams=1.5), surrogate, {"cpu": cpu_table})
    assert r.evaluated > 0
    for x in r.ranked:
        macs, params = count_flops_params(Architecture.from_string(x.arch, space), space)
        assert macs <= 450e6 and params <= 1.5e6 and (x.macs, x.params) == (macs, params)


def test_infeasible_budget_rejected_up_front(space, surrogate, cpu_table):
    fastest = LatencyEvaluator("cpu", cpu_table, space).extreme(True)[0]
    with pytest.raises(InfeasibleBudgetError, match=rf"fastest architecture .* takes {fastest:.4g} ms"):
        check_config(small(budget_ms=fastest * 0.9), {"cpu": cpu_table})
    with pytest.raises(InfeasibleBudgetError, match="cannot be met"):
        run_search(small(budget_ms=fastest * 0.9), surrogate, {"cpu": cpu_table})
    with pytest.raises(ValueError, match="not one of the tables"):
        check_config(small(budget_ms=5, target="npu"), {"cpu": cpu_table})


def test_budget_just_above_fastest_ends(space, surrogate, cpu_table):
    # almost nothing is feasible: proposals are bounded, the run ends with what it found
    fastest = LatencyEvaluator("cpu", cpu_table, space).extreme(True)[0]
    r = run_search(small(budget_ms=fastest + 1e-9, max_tries=3), surrogate, {"cpu": cpu_table})
    assert r.completed and r.evaluated >= 1
    assert all(x.latency_ms["cpu"] <= fastest + 1e-9 for x in r.ranked)


@pytest.mark.parametrize("cfg", [
    dict(algorithm="evolution", budget_ms=4.0),
    dict(algorithm="evolution", budget_ms=4.0, predictor=True, predictor_min_samples=12),
    dict(algorithm="pareto"),
    dict(algorithm="pareto", budget_ms=4.0, predictor=True, predictor_min_samples=12),
], ids=["evolution", "evolution+predictor", "pareto", "pareto+predictor+budget"])
def test_resume_from_any_generation_equals_uninterrupted(surrogate, cpu_table, gpu_table, cfg):
    config = small(**cfg)
    tables = {"cpu": cpu_table, "gpu": gpu_table}
    states: list[str] = []
    full = run_search(config, surrogate, tables, on_generation=lambda p, s: states.append(json.dumps(s)))
    assert len(states) == config.generations
    for saved in states[:-1]:
        resumed = run_search(config, surrogate, tables, state=json.loads(saved))
        assert resumed.model_dump(exclude={"state"}) == full.model_dump(exclude={"state"})
        assert json.dumps(resumed.state) == json.dumps(full.state)
    again = run_search(config, surrogate, tables)
    assert again.model_dump() == full.model_dump()
    other = run_search(small(**cfg, seed=1), surrogate, tables)
    assert [r.arch for r in other.ranked] != [r.arch for r in full.ranked]


def test_resume_rejects_a_different_configuration(surrogate, cpu_table):
    states = []
    run_search(small(generations=2), surrogate, {"cpu": cpu_table}, on_generation=lambda p, s: states.append(s))
    with pytest.raises(ValueError, match="different configuration .*seed"):
        run_search(small(generations=2, seed=5), surrogate, {"cpu": cpu_table}, state=states[0])


def test_should_stop_between_batches_then_resume(surrogate, cpu_table):
    config = small(generations=4, batch_size=4)
    full = run_search(config, surrogate, {"cpu": cpu_table})
    states, calls = [], []

    def stop() -> bool:  # stop after the first evaluation batch of the third generation
        if len(states) == 2:
            calls.append(1)
        return len(calls) > 2

    part = run_search(config, surrogate, {"cpu": cpu_table}, should_stop=stop,
                      on_generation=lambda p, s: states.append(s))
    assert not part.completed and part.generations_done == 2
    assert part.state == states[-1]  # nothing half-done in the returned state
    resumed = run_search(config, surrogate, {"cpu": cpu_table}, state=part.state)
    assert resumed.model_dump(exclude={"state"}) == full.model_dump(exclude={"state"})


def test_progress_callback_reports(surrogate, cpu_table):
    seen = []
    run_search(small(budget_ms=4.0), surrogate, {"cpu": cpu_table}, on_generation=lambda p, s: seen.append(p))
    assert [p["generation"] for p in seen] == list(range(5))
    evaluated = [p["evaluated"] for p in seen]
    assert evaluated == sorted(evaluated) and evaluated[-1] > evaluated[0]
    for p in seen:
        assert p["best_latency"]["cpu"] <= 4.0 and p["front_size"] >= 1 and 0 < p["hypervolume"] < 1
        assert {"cache_hits", "best_score", "best_arch"} <= set(p)


def test_pareto_front_is_non_dominated_over_all_evaluated(surrogate, cpu_table):
    r = run_search(small(algorithm="pareto", population=16, generations=6), surrogate, {"cpu": cpu_table})
    F = np.array([[1 - x.score, x.latency_ms["cpu"]] for x in r.ranked])
    on_front = np.array([x.on_front for x in r.ranked])
    assert (pareto_mask(F) == on_front).all()
    assert {x.canonical_id for x in r.front} == {x.canonical_id for x in r.ranked if x.on_front}
    ref = np.array([1.0, r.reference["latency_ms"]["cpu"]])
    assert r.hypervolume == pytest.approx(hypervolume(F / ref, [1, 1]))
    ranks_front_first = [x.on_front for x in r.ranked]
    assert ranks_front_first == sorted(ranks_front_first, reverse=True)


def test_multi_target_front(space, surrogate, cpu_table, gpu_table):
    r = run_search(small(algorithm="pareto", population=16, generations=6), surrogate,
                   {"cpu": cpu_table, "gpu": gpu_table})
    assert len(r.reference["normalised_point"]) == 3
    F = np.array([[1 - x.score, x.latency_ms["cpu"], x.latency_ms["gpu"]] for x in r.ranked])
    on_front = np.array([x.on_front for x in r.ranked])
    assert (pareto_mask(F) == on_front).all()
    # the joint front contains every single-target front
    assert on_front[pareto_mask(F[:, [0, 1]])].all() and on_front[pareto_mask(F[:, [0, 2]])].all()


@pytest.mark.parametrize("algorithm", ["evolution", "pareto"])
def test_per_target_front_and_hypervolume_are_the_engines(surrogate, cpu_table, tmp_path, algorithm):
    seen = []
    r = run_search(small(algorithm=algorithm, population=16, generations=6), surrogate, {"cpu": cpu_table},
                   on_generation=lambda p, s: seen.append(p))
    # one target: the 2-D front is the engine's front, and its normalised hypervolume the engine's
    assert set(r.fronts) == {"cpu"} and sorted(r.fronts["cpu"]) == sorted(x.canonical_id for x in r.front)
    assert r.hypervolumes["cpu"] == r.hypervolume == seen[-1]["hypervolume"]
    by_id = {x.canonical_id: x for x in r.ranked}
    lats = [by_id[c].latency_ms["cpu"] for c in r.fronts["cpu"]]
    assert lats == sorted(lats)  # fastest first
    assert r.hypervolumes["cpu"] == pytest.approx(target_hypervolume(
        [(x.canonical_id, x.score, x.latency_ms["cpu"]) for x in r.ranked], r.reference["latency_ms"]["cpu"]))
    _, json_path = write_ranked(r, tmp_path)
    doc = json.loads(json_path.read_text())
    assert doc["fronts"] == r.fronts and doc["hypervolumes"]["cpu"] == doc["hypervolume"] == r.hypervolume


def test_multi_target_search_has_a_2d_front_per_target(surrogate, cpu_table, gpu_table):
    r = run_search(small(algorithm="pareto", population=16, generations=6), surrogate,
                   {"cpu": cpu_table, "gpu": gpu_table})
    assert set(r.fronts) == set(r.hypervolumes) == {"cpu", "gpu"}
    for t in ("cpu", "gpu"):
        F = np.array([[1 - x.score, x.latency_ms[t] / r.reference["latency_ms"][t]] for x in r.ranked])
        mask = pareto_mask(F)
        assert sorted(r.fronts[t]) == sorted(x.canonical_id for x, keep in zip(r.ranked, mask, strict=True) if keep)
        assert r.hypervolumes[t] == pytest.approx(hypervolume(F, [1, 1]))
        assert set(r.fronts[t]) <= {x.canonical_id for x in r.front}  # within the joint front


def test_pareto_search_beats_random_search_at_equal_evaluations(space, surrogate, cpu_table):
    r = run_search(small(algorithm="pareto", population=24, generations=8), surrogate, {"cpu": cpu_table})
    archs = sample_many(r.evaluated, 0, space)
    ref = np.array([1.0, r.reference["latency_ms"]["cpu"]])
    F = np.stack([1 - np.array(surrogate.evaluate(archs)), cpu_table.predict_genes(genes_of(archs, space))], 1)
    assert r.hypervolume > hypervolume(F / ref, [1, 1])


def test_predictor_prescreening_saves_expensive_evaluations(surrogate, cpu_table):
    base = dict(budget_ms=4.0, population=24, generations=8, parents=6)
    off = run_search(SearchConfig(**base), surrogate, {"cpu": cpu_table})
    on = run_search(SearchConfig(**base, predictor=True, predictor_min_samples=24), surrogate, {"cpu": cpu_table})
    assert on.evaluated < off.evaluated and on.stats["screened_out"] > 0
    # per evaluation spent, the screened search is at least as good
    off_first = sorted(off.ranked, key=lambda x: x.generation)[: on.evaluated]
    assert on.best.score >= max(x.score for x in off_first)
    rho = [s for s in on.spearman if s is not None]
    assert len(rho) >= 5 and np.mean(rho) > 0.2


def test_flops_and_params_as_extra_objectives(surrogate, cpu_table):
    r = run_search(small(algorithm="pareto", extra_objectives=["flops", "params"]), surrogate, {"cpu": cpu_table})
    assert len(r.reference["normalised_point"]) == 4
    F = np.array([[1 - x.score, x.latency_ms["cpu"], x.macs, x.params] for x in r.ranked], dtype=float)
    assert (pareto_mask(F) == np.array([x.on_front for x in r.ranked])).all()
    with pytest.raises(ValueError, match="algorithm .pareto. only"):
        SearchConfig(extra_objectives=["flops"])


def test_resume_rejects_a_changed_latency_table(space, surrogate, cpu_table):
    from latency_tables.predict import LatencyPredictor

    from .conftest import synthetic_unit_ms

    states = []
    run_search(small(generations=2), surrogate, {"cpu": cpu_table}, on_generation=lambda p, s: states.append(s))
    remeasured = LatencyPredictor(synthetic_unit_ms(space, 1.2, 1), space)
    with pytest.raises(ValueError, match="changed since the search state was saved"):
        run_search(small(generations=2), surrogate, {"cpu": remeasured}, state=states[0])


def test_defaults_are_lighttracks_evolution():
    c = SearchConfig()
    assert (c.population, c.generations, c.parents, c.n_mutations, c.n_crossovers, c.mutation_prob) == \
        (48, 20, 10, 24, 24, 0.1)


def test_evolution_improves_on_its_random_first_generation(surrogate, cpu_table):
    seen = []
    run_search(small(budget_ms=4.0, generations=6), surrogate, {"cpu": cpu_table},
               on_generation=lambda p, s: seen.append(p["best_score"]))
    assert seen[-1] > seen[0] and seen == sorted(seen)
