"""Search quality against the anchors, at equal evaluations, on this machine's latency table.

Objectives: accuracy (up) and latency on a real table made by ``lutnas profile`` (down). The
accuracy is either the fixed analytic surrogate (``--accuracy analytic``,
``search.evaluators.SurrogateAccuracy``) or a surrogate of a trained supernet's own landscape
(``--accuracy supernet``): ``--fit-archs`` seeded random architectures scored once by the supernet
(pairs mode, cached in ``--fit-scores``), then an RBF kernel ridge on one-hot genes fitted to them
(a different model family from the search's ridge/tree predictor, so the predictor cannot simply
be the objective). Every method sees the same objective function and the same table.

Methods, each for ``--seeds`` seeds:

* ``lutnas`` NSGA-II (``algorithm="pareto"``), with and without seeding the fastest/largest
  architectures, with and without the accuracy predictor (children screened before scoring: the
  default 1/8 of them scored, and 1/2 as an ablation);
* pymoo NSGA-II (integer genes, SBX + polynomial mutation with rounding, duplicates eliminated);
* Optuna's ``NSGAIISampler`` and ``TPESampler`` (multi-objective TPE), genes as categoricals;
* random search.

Evaluations count *distinct* networks (canonical id): a repeat is answered from a cache, as any
sane deployment would, so no method pays twice or gains from re-proposing. Each run is cut at the
largest budget; the hypervolume at a smaller budget is that of the run's first N distinct
evaluations (every method here is anytime: none is told its budget). Hypervolume is over every
evaluated point, with (1 - accuracy, latency / slowest) against the reference (1, 1). "Evaluations
to pymoo's final HV": the first N at which a run's hypervolume reaches pymoo's mean at the largest
budget (runs that never do are counted as not reaching it).

    python benchmarks/bench_search.py --table runs/lut-cpu.sqlite [--accuracy supernet --supernet CKPT --data DIR]

Prints a table and writes benchmarks/results/bench_search/DATE.{json,txt} (``--accuracy`` in its variant).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import harness  # same folder: where results are written
import numpy as np

from search.config import SearchConfig
from search.evaluators import LatencyEvaluator, SurrogateAccuracy, gene_cardinalities, genes_of
from search.pareto import hypervolume
from search.runner import run_search
from tracking.space import Architecture, SearchSpace, enumerate_genes, from_genes, sample_many


class Budget(Exception):
    """Raised inside an evaluator once a run has its distinct evaluations."""


class Archive:
    """The shared objective: scores genes, caches by canonical id, records distinct evaluations in
    order, and stops the run (``Budget``) when it has ``limit`` of them."""

    def __init__(self, score: Callable[[np.ndarray], np.ndarray], lat: LatencyEvaluator, space: SearchSpace,
                 limit: int) -> None:
        self.score, self.lat, self.space, self.limit = score, lat, space, limit
        self.cache: dict[str, tuple[float, float]] = {}
        self.order: list[tuple[float, float]] = []
        self.seconds = 0.0  # inside the accuracy function: the rest of a run's wall time is overhead

    def genes(self, genes: np.ndarray) -> list[tuple[float, float]]:
        genes = np.asarray(genes, dtype=np.int64).reshape(-1, len(gene_cardinalities(self.space)))
        ids = [from_genes(list(g), self.space).canonical_id() for g in genes]
        new = sorted({i: k for k, i in enumerate(ids) if i not in self.cache}.values())
        if new:
            t = time.perf_counter()
            acc = self.score(genes[new])
            self.seconds += time.perf_counter() - t
            lat = self.lat.genes(genes[new])
            for k, a, t in zip(new, acc, lat, strict=True):
                if len(self.order) >= self.limit:
                    raise Budget
                self.cache[ids[k]] = (float(a), float(t))
                self.order.append(self.cache[ids[k]])
        return [self.cache[i] for i in ids]

    def evaluate(self, archs: Sequence[Architecture]) -> list[float]:  # the search's AccuracyEvaluator
        return [a for a, _ in self.genes(genes_of(list(archs), self.space))]

    def full(self) -> bool:
        return len(self.order) >= self.limit


def hv_curve(order: list[tuple[float, float]], ref_ms: float, step: int) -> np.ndarray:
    """Hypervolume of the first N evaluations for N = step, 2 step, ..."""
    F = np.array([(1.0 - a, t / ref_ms) for a, t in order])
    return np.array([hypervolume(F[:n], [1.0, 1.0]) for n in range(step, len(F) + 1, step)])


# -- the methods ----------------------------------------------------------------------------------
def run_lutnas(ar: Archive, seed: int, pop: int, seed_extremes: bool, predictor: bool, **kw: Any) -> None:
    cfg = SearchConfig(algorithm="pareto", population=pop, generations=1000, seed=seed,
                       seed_extremes=seed_extremes, predictor=predictor, batch_size=pop, **kw)
    try:
        run_search(cfg, ar, {ar.lat.name: ar.lat.model}, flops=False)
    except Budget:
        pass


def run_random(ar: Archive, seed: int, pop: int) -> None:
    while not ar.full():
        try:
            ar.evaluate(sample_many(pop, 10_000 + seed * 1000 + len(ar.order), ar.space))
        except Budget:
            return


def run_pymoo(ar: Archive, seed: int, pop: int) -> None:
    from pymoo.algorithms.moo.nsga2 import NSGA2
    from pymoo.core.problem import Problem
    from pymoo.operators.crossover.sbx import SBX
    from pymoo.operators.mutation.pm import PM
    from pymoo.operators.repair.rounding import RoundingRepair
    from pymoo.operators.sampling.rnd import IntegerRandomSampling
    from pymoo.optimize import minimize

    card = gene_cardinalities(ar.space)
    ref = ar.lat.extreme(False)[0]

    class Tracker(Problem):
        def __init__(self) -> None:
            super().__init__(n_var=len(card), n_obj=2, xl=np.zeros(len(card)), xu=card - 1, vtype=int)

        def _evaluate(self, X, out, *args, **kwargs):
            vals = ar.genes(np.asarray(X).round().astype(np.int64))
            out["F"] = np.array([(1.0 - a, t / ref) for a, t in vals])

    algo = NSGA2(pop_size=pop, sampling=IntegerRandomSampling(),
                 crossover=SBX(prob=1.0, eta=3.0, vtype=float, repair=RoundingRepair()),
                 mutation=PM(prob=1.0, eta=3.0, vtype=float, repair=RoundingRepair()),
                 eliminate_duplicates=True)
    try:  # an evaluation cap well above the budget: repeats are free, so the archive decides
        minimize(Tracker(), algo, ("n_eval", 20 * ar.limit), seed=seed, verbose=False)
    except Budget:
        pass


def run_optuna(ar: Archive, seed: int, pop: int, kind: str) -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    names = list(enumerate_genes(ar.space))
    sampler = (optuna.samplers.NSGAIISampler(population_size=pop, seed=seed) if kind == "nsga2"
               else optuna.samplers.TPESampler(seed=seed, multivariate=True, n_startup_trials=pop // 2))
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)

    def objective(trial) -> tuple[float, float]:
        g = np.array([[trial.suggest_categorical(n, list(range(c))) for n, c in names]])
        try:
            return ar.genes(g)[0]
        except Budget:
            trial.study.stop()
            raise optuna.TrialPruned() from None

    study.optimize(objective, n_trials=20 * ar.limit,
                   callbacks=[lambda st, _t: st.stop() if ar.full() else None])


METHODS: dict[str, Callable[[Archive, int, int], None]] = {
    "lutnas": lambda ar, s, p: run_lutnas(ar, s, p, seed_extremes=True, predictor=False),
    "lutnas-noseed": lambda ar, s, p: run_lutnas(ar, s, p, seed_extremes=False, predictor=False),
    "lutnas+pred": lambda ar, s, p: run_lutnas(ar, s, p, seed_extremes=True, predictor=True),
    "lutnas+pred-noseed": lambda ar, s, p: run_lutnas(ar, s, p, seed_extremes=False, predictor=True),
    # the earlier default screen (half of the children scored), an ablation
    "lutnas+pred-noseed-1/2": lambda ar, s, p: run_lutnas(ar, s, p, seed_extremes=False, predictor=True,
                                                          screen_ratio=0.5),
    "pymoo-nsga2": run_pymoo,
    "optuna-nsga2": lambda ar, s, p: run_optuna(ar, s, p, "nsga2"),
    "optuna-tpe": lambda ar, s, p: run_optuna(ar, s, p, "tpe"),
    "random": run_random,
}
ANCHORS = ("pymoo-nsga2", "optuna-nsga2", "optuna-tpe")


def constrained(score: Callable[[np.ndarray], np.ndarray], lat: LatencyEvaluator, space: SearchSpace,
                args: argparse.Namespace, budget_ms: float, say: Callable[[str], None]) -> dict[str, Any]:
    """Constrained evolution (``algorithm="evolution"``) at a latency budget: the best feasible score
    within half the largest budget of distinct evaluations, with and without the predictor."""
    n = max(48, max(int(b) for b in args.budgets.split(",")) // 2)
    out: dict[str, Any] = {"budget_ms": budget_ms, "evaluations": n}
    for label, kw in (("no predictor", {"predictor": False}), ("predictor 1/2", {"predictor": True, "screen_ratio": 0.5}),
                      ("predictor 1/8", {"predictor": True})):
        best = []
        for seed in range(args.seeds):
            ar = Archive(score, lat, space, n)
            cfg = SearchConfig(algorithm="evolution", budget_ms=budget_ms, population=args.population,
                               generations=1000, seed=seed, batch_size=args.population, **kw)
            try:
                run_search(cfg, ar, {lat.name: lat.model}, flops=False)
            except Budget:
                pass
            best.append(max(a for a, t in ar.order if t <= budget_ms))
        out[label] = best
    say(f"constrained evolution, budget {budget_ms:.3f} ms, {n} distinct evaluations, best feasible score "
        f"(mean ± sd over {args.seeds} seeds): " + ", ".join(f"{k} {np.mean(v):.4f} ± {np.std(v):.4f}"
                                                          for k, v in out.items() if isinstance(v, list)))
    return out


# -- the supernet's landscape ------------------------------------------------------------------
def supernet_scores(args: argparse.Namespace, space: SearchSpace) -> dict[str, float]:
    """``--fit-archs`` seeded random architectures scored by the supernet (cached in a JSON)."""
    path = Path(args.fit_scores)
    if path.is_file():
        got = json.loads(path.read_text())
        if got.get("supernet") == str(args.supernet) and len(got["scores"]) >= args.fit_archs:
            return got["scores"]
    import torch
    from rich.progress import track

    from search.evaluators import SupernetAccuracy, as_score

    torch.set_num_threads(args.threads)
    acc = SupernetAccuracy.from_checkpoint(args.supernet, args.data, mode="pairs", n_pairs=args.pairs,
                                           bn_batches=args.bn_batches)
    archs = list({a.canonical_id(): a for a in sample_many(args.fit_archs, 777, space)}.values())
    scores: dict[str, float] = {}
    for i in track(range(0, len(archs), 8), description="supernet scores for the fit"):
        chunk = archs[i:i + 8]
        for a, s in zip(chunk, acc.evaluate(chunk), strict=True):
            scores[a.to_string()] = as_score(s).value
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"supernet": str(args.supernet), "data": str(args.data), "pairs": args.pairs,
                                "bn_batches": args.bn_batches, "scores": scores}, indent=1))
    return scores


def fitted_surrogate(scores: dict[str, float], space: SearchSpace) -> tuple[Callable[[np.ndarray], np.ndarray], str]:
    from sklearn.kernel_ridge import KernelRidge
    from sklearn.model_selection import GridSearchCV, KFold, cross_val_predict
    from sklearn.preprocessing import OneHotEncoder

    card = gene_cardinalities(space)
    enc = OneHotEncoder(categories=[list(range(c)) for c in card], sparse_output=False)
    G = genes_of([Architecture.from_string(a, space) for a in scores], space)
    X, y = enc.fit_transform(G), np.array(list(scores.values()))
    grid = GridSearchCV(KernelRidge(kernel="rbf"), {"alpha": [0.01, 0.1, 1.0], "gamma": [0.005, 0.02, 0.05]},
                        cv=KFold(5, shuffle=True, random_state=0)).fit(X, y)
    from scipy.stats import kendalltau

    cv = cross_val_predict(grid.best_estimator_, X, y, cv=KFold(5, shuffle=True, random_state=0))
    tau = kendalltau(cv, y).statistic
    model = grid.best_estimator_
    note = (f"RBF kernel ridge {grid.best_params_} on {len(y)} supernet scores (range {y.min():.3f}..{y.max():.3f}); "
            f"5-fold held-out Kendall tau of the fit vs the supernet {tau:+.2f}")
    return (lambda g: model.predict(enc.transform(np.asarray(g, dtype=np.int64)))), note


# -- the study ----------------------------------------------------------------------------------
def summarise(curves: dict[str, list[np.ndarray]], budgets: list[int], step: int) -> dict[str, Any]:
    hv = {m: {b: [float(c[b // step - 1]) for c in cs] for b in budgets} for m, cs in curves.items()}
    top = budgets[-1]
    target = float(np.mean(hv["pymoo-nsga2"][top]))
    reach = {}
    for m, cs in curves.items():
        ns = [int((np.argmax(c >= target) + 1) * step) if (c >= target).any() else None for c in cs]
        got = [n for n in ns if n is not None]
        reach[m] = {"per_seed": ns, "reached": len(got), "median": float(np.median(got)) if got else None}
    return {"hv": hv, "pymoo_final_hv": target, "evals_to_pymoo_final": reach}


def report(res: dict[str, Any], budgets: list[int], say: Callable[[str], None]) -> None:
    hv, seeds = res["hv"], res["seeds"]
    say(f"hypervolume (mean ± sd over {seeds} seeds; ratio = mean / the anchor's mean) at equal distinct evaluations:")
    head = f"  {'method':20s}" + "".join(f"  {'@' + str(b):>17s}" for b in budgets)
    anchors = [a for a in ANCHORS if a in hv]
    head += "".join(f"  {'/' + a + '@' + str(budgets[-1]):>20s}" for a in anchors)
    say(head)
    top = budgets[-1]
    for m in hv:
        row = f"  {m:20s}" + "".join(f"  {np.mean(hv[m][b]):.4f} ± {np.std(hv[m][b]):.4f}" for b in budgets)
        row += "".join(f"  {np.mean(hv[m][top]) / np.mean(hv[a][top]):20.4f}" for a in anchors)
        say(row)
    for b in budgets[:-1]:
        say(f"  at {b}: " + ", ".join(f"{m}/{a} {np.mean(hv[m][b]) / np.mean(hv[a][b]):.4f}"
                                       for m in ("lutnas-noseed", "lutnas+pred-noseed") if m in hv for a in anchors))
    say(f"distinct evaluations to reach pymoo NSGA-II's mean final hypervolume ({res['pymoo_final_hv']:.4f} at "
        f"{top}); per seed, '-' = not within {top}:")
    for m, r in res["evals_to_pymoo_final"].items():
        per = " ".join("-" if n is None else str(n) for n in r["per_seed"])
        med = "-" if r["median"] is None else f"{r['median']:.0f} ({r['median'] / top:.0%} of {top})"
        say(f"  {m:20s} reached {r['reached']}/{seeds}, median {med}; {per}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--table", default="runs/lut-cpu.sqlite",
                    help="latency table database made by `lutnas profile` (PATH or PATH#NAME)")
    ap.add_argument("--accuracy", choices=["analytic", "supernet"], default="analytic")
    ap.add_argument("--supernet", help="checkpoint whose landscape --accuracy supernet fits")
    ap.add_argument("--data", default="runs/synth-val", help="validation data for the supernet's scores")
    ap.add_argument("--fit-archs", type=int, default=120)
    ap.add_argument("--fit-scores", default="runs/bench_search-fit.json", help="cache of the supernet's scores")
    ap.add_argument("--pairs", type=int, default=64, help="validation pairs per supernet score")
    ap.add_argument("--bn-batches", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2, help="torch threads (supernet scores)")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--population", type=int, default=48)
    ap.add_argument("--budgets", default="240,960", help="distinct evaluations, comma-separated")
    ap.add_argument("--methods", default=",".join(METHODS))
    harness.add_arguments(ap)
    args = ap.parse_args(argv)

    location = args.table.partition("#")[0]
    if "://" not in location and not Path(location).is_file():
        print(f"no latency table at {location}. Measure this machine's first, e.g.\n"
              f"  lutnas profile --out {location} --name cpu-ort-1t --threads 1\n"
              f"(a few minutes on a quiet CPU), then rerun with --table {location}", file=sys.stderr)
        return 2
    if args.accuracy == "supernet" and not (args.supernet and Path(args.supernet).is_file()):
        print("--accuracy supernet needs --supernet CKPT (e.g. lutnas supernet train's output)", file=sys.stderr)
        return 2
    from search.cli import load_tables

    budgets = sorted(int(b) for b in args.budgets.split(","))
    step = int(np.gcd.reduce(budgets + [24]))
    methods = [m.strip() for m in args.methods.split(",")]
    space = SearchSpace.paper()
    (name, model), = load_tables([args.table], space).items()
    lat = LatencyEvaluator(name, model, space)
    fastest, slowest = lat.extreme(True)[0], lat.extreme(False)[0]
    if args.accuracy == "analytic":
        sur = SurrogateAccuracy(space)
        score, note = sur.score_genes, "the analytic surrogate (search.evaluators.SurrogateAccuracy)"
    else:
        score, note = fitted_surrogate(supernet_scores(args, space), space)
    lines: list[str] = []

    def say(s: str) -> None:
        print(s, flush=True)
        lines.append(s)

    say(f"# bench_search {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: table {name!r} (fastest {fastest:.3f} ms, "
        f"slowest {slowest:.3f} ms = the hypervolume reference); accuracy: {note}")
    say(f"# population {args.population} for every population method; budgets {budgets} distinct evaluations; "
        f"{args.seeds} seeds")
    curves: dict[str, list[np.ndarray]] = {m: [] for m in methods}
    walls: dict[str, list[float]] = {m: [] for m in methods}
    over: dict[str, list[float]] = {m: [] for m in methods}
    for seed in range(args.seeds):
        for m in methods:
            ar = Archive(score, lat, space, budgets[-1])
            t = time.perf_counter()
            METHODS[m](ar, seed, args.population)
            walls[m].append(time.perf_counter() - t)
            over[m].append((walls[m][-1] - ar.seconds) / len(ar.order) * 1e3)
            if len(ar.order) < budgets[-1]:
                raise SystemExit(f"{m} seed {seed} stopped at {len(ar.order)} distinct evaluations")
            curves[m].append(hv_curve(ar.order, slowest, step))
        print(f"seed {seed}: " + ", ".join(f"{m} {curves[m][-1][-1]:.4f}" for m in methods), flush=True)
    res = {"table": name, "accuracy": args.accuracy, "accuracy_note": note, "seeds": args.seeds,
           "population": args.population, "budgets": budgets, "step": step, **summarise(curves, budgets, step),
           "wall_s_mean": {m: float(np.mean(w)) for m, w in walls.items()},
           "overhead_ms_per_eval": {m: float(np.mean(o)) for m, o in over.items()},
           "curves": {m: [c.tolist() for c in cs] for m, cs in curves.items()}}
    report(res, budgets, say)
    res["constrained"] = constrained(score, lat, space, args, fastest + 0.35 * (slowest - fastest), say)
    say("wall time per run (s, mean): " + ", ".join(f"{m} {w:.1f}" for m, w in res["wall_s_mean"].items()))
    say("overhead per distinct evaluation, the accuracy function excluded (ms, mean; the method's own loop, "
        "proposals, latency prediction, predictor fits): "
        + ", ".join(f"{m} {o:.2f}" for m, o in res["overhead_ms_per_eval"].items()))
    path = harness.write_result("bench_search", res, "\n".join(lines), harness.variant(ap, args, "accuracy"),
                                args.results_dir)
    print(f"wrote {path.with_suffix('.txt')} and .json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
