"""Search quality and overhead on this machine's measured latency table.

Accuracy is the fixed analytic surrogate (``search.evaluators.SurrogateAccuracy``), latency the
real table made by ``lutnas profile``. Over 5 seeds and at equal numbers of accuracy
evaluations it prints the hypervolume (accuracy vs latency, reference point: accuracy 0 and the
slowest architecture's latency, objectives normalised so the reference is (1, 1)) of:

* lutnas' NSGA-II (``algorithm="pareto"``), with and without the accuracy predictor, and
  without seeding the fastest/largest architectures (an ablation);
* random search (uniform samples of the space);
* plain pymoo NSGA-II (integer genes, SBX + polynomial mutation with rounding, duplicates
  eliminated), the textbook way to run pymoo on an integer problem;

and the search's own overhead per candidate: wall time minus time inside the accuracy
evaluator, divided by the number of candidates evaluated (latency prediction, FLOPs counting,
constraint repair, predictor training and the state snapshot all count as overhead).

    python benchmarks/bench_search.py [--table runs/lut-cpu.sqlite[#NAME]] [--seeds 5]

With ``--supernet CKPT --data DIR`` it instead runs one real search end to end on that supernet
(NSGA-II, pairs mode; population 16 x 4 generations by default) and prints its wall time, how
many candidates the supernet scored, and the front it found.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from search.config import SearchConfig
from search.evaluators import LatencyEvaluator, SurrogateAccuracy, gene_cardinalities, genes_of
from search.pareto import hypervolume
from search.runner import run_search
from tracking.space import SearchSpace, sample_many


class TimedSurrogate:
    """The surrogate, timing its own calls (so the search overhead can be separated)."""

    def __init__(self, space: SearchSpace) -> None:
        self.inner = SurrogateAccuracy(space)
        self.seconds = 0.0

    def evaluate(self, archs):
        t = time.perf_counter()
        out = self.inner.evaluate(archs)
        self.seconds += time.perf_counter() - t
        return out


def normalised_hv(acc: np.ndarray, lat: np.ndarray, ref_ms: float) -> float:
    return hypervolume(np.stack([1.0 - acc, lat / ref_ms], 1), [1.0, 1.0])


def random_hv(n: int, seed: int, space: SearchSpace, acc: SurrogateAccuracy, lat: LatencyEvaluator,
              ref_ms: float) -> float:
    genes = genes_of(sample_many(n, 10_000 + seed, space), space)
    return normalised_hv(acc.score_genes(genes), lat.genes(genes), ref_ms)


def pymoo_hv(n: int, seed: int, space: SearchSpace, acc: SurrogateAccuracy, lat: LatencyEvaluator,
             ref_ms: float, pop: int) -> float:
    from pymoo.algorithms.moo.nsga2 import NSGA2
    from pymoo.core.problem import Problem
    from pymoo.operators.crossover.sbx import SBX
    from pymoo.operators.mutation.pm import PM
    from pymoo.operators.repair.rounding import RoundingRepair
    from pymoo.operators.sampling.rnd import IntegerRandomSampling
    from pymoo.optimize import minimize

    card = gene_cardinalities(space)
    seen: list[np.ndarray] = []

    class Tracker(Problem):
        def __init__(self) -> None:
            super().__init__(n_var=len(card), n_obj=2, xl=np.zeros(len(card)), xu=card - 1, vtype=int)

        def _evaluate(self, X, out, *args, **kwargs):
            g = np.asarray(X).round().astype(np.int64)
            F = np.stack([1.0 - acc.score_genes(g), lat.genes(g) / ref_ms], 1)
            seen.append(F)
            out["F"] = F

    algo = NSGA2(pop_size=pop, sampling=IntegerRandomSampling(),
                 crossover=SBX(prob=1.0, eta=3.0, vtype=float, repair=RoundingRepair()),
                 mutation=PM(prob=1.0, eta=3.0, vtype=float, repair=RoundingRepair()),
                 eliminate_duplicates=True)
    minimize(Tracker(), algo, ("n_eval", n), seed=seed, verbose=False)
    F = np.concatenate(seen)[:n]
    return hypervolume(F, [1.0, 1.0])


def lutnas_run(cfg: SearchConfig, space: SearchSpace, lat: LatencyEvaluator) -> tuple[float, int, float, float]:
    acc = TimedSurrogate(space)
    t = time.perf_counter()
    r = run_search(cfg, acc, {lat.name: lat.model})
    wall = time.perf_counter() - t
    overhead_ms = (wall - acc.seconds) / max(1, r.evaluated) * 1e3
    return r.hypervolume, r.evaluated, overhead_ms, (r.best.score if r.best else float("nan"))


def real_search(args: argparse.Namespace, name: str, model) -> int:
    import torch

    from search.evaluators import SupernetAccuracy

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    acc = SupernetAccuracy.from_checkpoint(args.supernet, args.data, mode="pairs", n_pairs=args.pairs,
                                           bn_batches=args.bn_batches)
    setup = time.perf_counter() - t0
    timed = {"s": 0.0}

    class Timed:
        def evaluate(self, archs):
            t = time.perf_counter()
            out = acc.evaluate(archs)
            timed["s"] += time.perf_counter() - t
            return out

    def progress(p, _state):
        print(f"  generation {p['generation']}: evaluated {p['evaluated']}, cache hits {p['cache_hits']}, "
              f"best {p['best_score']:.4f}, front {p['front_size']}, HV {p['hypervolume']:.4f} "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)

    cfg = SearchConfig(algorithm="pareto", population=args.e2e_population, generations=args.e2e_generations,
                       parents=min(10, args.e2e_population), seed=0, batch_size=8)
    r = run_search(cfg, Timed(), {name: model}, on_generation=progress)
    wall = time.perf_counter() - t0
    print(f"real search on {args.supernet} ({args.data}, pairs mode, {args.pairs} pairs, "
          f"{args.bn_batches} BN batches, {args.threads} torch threads), table {name!r}:")
    print(f"  wall {wall:.1f} s (scorer setup {setup:.1f} s, supernet scoring {timed['s']:.1f} s, "
          f"{timed['s'] / max(1, r.evaluated):.2f} s per candidate); the supernet scored {r.evaluated} "
          f"candidates, cache hits {r.cache_hits}; hypervolume {r.hypervolume:.4f}")
    print("  front (score, latency ms, MACs M, params M, architecture):")
    for x in r.front:
        print(f"    {x.score:.4f}  {x.latency_ms[name]:7.3f}  {x.macs / 1e6:6.1f}  {x.params / 1e6:5.2f}  {x.arch}")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--table", default="runs/lut-cpu.sqlite",
                    help="latency table database made by `lutnas profile` (PATH or PATH#NAME)")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--population", type=int, default=48)
    ap.add_argument("--generations", type=int, default=20)
    ap.add_argument("--supernet", help="run one real search end to end on this checkpoint instead")
    ap.add_argument("--data", default="runs/synth-val", help="validation data for --supernet")
    ap.add_argument("--e2e-population", type=int, default=16)
    ap.add_argument("--e2e-generations", type=int, default=4)
    ap.add_argument("--pairs", type=int, default=64, help="validation pairs per candidate (--supernet)")
    ap.add_argument("--bn-batches", type=int, default=1, help="BN recalibration batches (--supernet)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (--supernet)")
    args = ap.parse_args(argv)

    location = args.table.partition("#")[0]
    if "://" not in location and not Path(location).is_file():
        print(f"no latency table at {location}. Measure this machine's first, e.g.\n"
              f"  lutnas profile --out {location} --name cpu-ort-1t\n"
              f"(a few minutes on a quiet CPU), then rerun with --table {location}", file=sys.stderr)
        return 2
    from search.cli import load_tables

    space = SearchSpace.paper()
    (name, model), = load_tables([args.table], space).items()
    if args.supernet:
        return real_search(args, name, model)
    lat = LatencyEvaluator(name, model, space)
    fastest, slowest = lat.extreme(True)[0], lat.extreme(False)[0]
    acc = SurrogateAccuracy(space)
    print(f"table {name!r} ({location}): fastest {fastest:.3f} ms, slowest {slowest:.3f} ms "
          f"(hypervolume reference: accuracy 0, {slowest:.3f} ms)")
    P, G = args.population, args.generations
    rows = {k: [] for k in ("lutnas", "lutnas-noseed", "random", "pymoo", "lutnas+pred", "random@pred",
                            "pymoo@pred")}
    over = {"pareto": [], "pareto+pred": [], "evolution": []}
    evo_rows = []
    budget = fastest + 0.35 * (slowest - fastest)
    for seed in range(args.seeds):
        hv, n, oh, _ = lutnas_run(SearchConfig(algorithm="pareto", population=P, generations=G, seed=seed),
                                  space, lat)
        rows["lutnas"].append(hv)
        over["pareto"].append(oh)
        rows["lutnas-noseed"].append(lutnas_run(SearchConfig(algorithm="pareto", population=P, generations=G,
                                                             seed=seed, seed_extremes=False), space, lat)[0])
        rows["random"].append(random_hv(n, seed, space, acc, lat, slowest))
        rows["pymoo"].append(pymoo_hv(n, seed, space, acc, lat, slowest, P))
        # with the predictor half of each generation's children are screened out: run longer
        hv, n2, oh, _ = lutnas_run(SearchConfig(algorithm="pareto", population=P, generations=2 * G - 2, seed=seed,
                                                predictor=True), space, lat)
        rows["lutnas+pred"].append(hv)
        over["pareto+pred"].append(oh)
        rows["random@pred"].append(random_hv(n2, seed, space, acc, lat, slowest))
        rows["pymoo@pred"].append(pymoo_hv(n2, seed, space, acc, lat, slowest, P))
        _, n3, oh, best = lutnas_run(SearchConfig(algorithm="evolution", budget_ms=budget, population=P,
                                                  generations=G, seed=seed), space, lat)
        over["evolution"].append(oh)
        genes = genes_of(sample_many(n3, 20_000 + seed, space), space)
        ok = lat.genes(genes) <= budget
        evo_rows.append((best, float(acc.score_genes(genes[ok]).max()), n3))
        print(f"seed {seed}: evaluations {n} (pred {n2}); HV lutnas {rows['lutnas'][-1]:.4f} "
              f"random {rows['random'][-1]:.4f} pymoo {rows['pymoo'][-1]:.4f}; "
              f"with predictor {rows['lutnas+pred'][-1]:.4f}", flush=True)

    m = {k: float(np.mean(v)) for k, v in rows.items()}
    s = {k: float(np.std(v)) for k, v in rows.items()}
    print(f"\nhypervolume, mean +- std over {args.seeds} seeds (population {P}, {G} generations):")
    for k in ("lutnas", "random", "pymoo", "lutnas-noseed"):
        print(f"  {k:13s} {m[k]:.4f} +- {s[k]:.4f}")
    print(f"  ratio lutnas/random {m['lutnas'] / m['random']:.4f}   lutnas/pymoo {m['lutnas'] / m['pymoo']:.4f}"
          f"   (without the fastest/largest seeds: lutnas/pymoo {m['lutnas-noseed'] / m['pymoo']:.4f})")
    print("with the accuracy predictor (baselines at the same evaluation count):")
    for k in ("lutnas+pred", "random@pred", "pymoo@pred"):
        print(f"  {k:13s} {m[k]:.4f} +- {s[k]:.4f}")
    print(f"  ratio lutnas+pred/random {m['lutnas+pred'] / m['random@pred']:.4f}   "
          f"lutnas+pred/pymoo {m['lutnas+pred'] / m['pymoo@pred']:.4f}")
    b = np.array(evo_rows)
    print(f"constrained evolution, budget {budget:.3f} ms: best score {b[:, 0].mean():.4f} vs random search "
          f"{b[:, 1].mean():.4f} at {int(b[:, 2].mean())} evaluations")
    print("search overhead per candidate, excluding the accuracy evaluator (ms, mean over seeds):")
    for k, v in over.items():
        print(f"  {k:12s} {np.mean(v):.3f} ms (max {np.max(v):.3f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
