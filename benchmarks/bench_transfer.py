"""Transfer accuracy: a target's table from a source target's full table plus K measured subnets
(``latency_tables.transfer``), on pairs of genuinely different targets of this machine.

Source: onnxruntime CPU EP, fp32, 1 thread, optimisation level ``all``, profiled in full (timed).
Targets: 2 threads; optimisation level ``basic`` (no blocked-layout convolutions); PyTorch eager
(same modules); int8 (static QDQ quantization). For each target, ``--pool`` + ``--held-out``
seeded subnets are measured on it in ``--rounds`` rounds (each in its own shuffled order: the
held-out truth is a subnet's fastest round), and once more with the protocol a transfer measures
with (``subnet_protocol``: fewer runs). The first K of the pool fit the transfer, for K in
``--ks``, from that one round (one measurement each, as ``lutnas latency transfer`` takes them),
and the held-out subnets score it, next to two baselines fitted on the same K measurements: one common
scale of the source table, and latency ~ FLOPs (least squares); and, for onnxruntime targets,
next to the target's own full profile (``--profile-targets``: its table's accuracy is what a
transfer aims at, its timing what a transfer saves). Cost of a transfer: measuring K subnets once
with its protocol (their export/quantization is host work, in brackets) vs that full profile's timing.

Intermediate results (the source table, each target's measurements) are kept under ``--workdir``,
so a rerun resumes. Writes benchmarks/results/bench_transfer/DATE.{json,txt}.

    python benchmarks/bench_transfer.py                              # all targets
    python benchmarks/bench_transfer.py --targets t2,basic --pool 20 --held-out 10   # quick look
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import harness  # same folder: where results are written
import numpy as np

from latency_tables.fidelity import agreement, export_search_graphs, measure_models
from latency_tables.predict import LatencyPredictor
from latency_tables.profile import profile_units
from latency_tables.store import LatencyStore
from latency_tables.transfer import _measure_torch, fit_transfer, subnet_protocol, transferred_entries
from latency_tables.units import all_units
from profilers import Protocol, get_backend
from profilers.measure import measure_overhead
from tracking.flops import count_flops_params
from tracking.space import SearchSpace, sample_many

TARGETS = {
    "t2": ("onnxruntime fp32, 2 threads", {"threads": 2}),
    "basic": ("onnxruntime fp32, 1 thread, optimisation basic", {"graph_optimization": "basic"}),
    "torch": ("PyTorch eager fp32, 1 thread", None),
    "int8": ("onnxruntime int8 (QDQ), 1 thread", {"precision": "int8"}),
}


def _export(archs: list, space: SearchSpace, work: Path, precision: str, seed: int) -> tuple[list[Path], float]:
    """Each subnet's search graph (quantized for int8), exported once per precision and kept
    under ``work`` (resumable), and the export time."""
    graphs = work / f"graphs-{precision}"
    done = graphs / "export.json"
    t0 = time.perf_counter()
    paths = [graphs / f"{i:04d}-{a.canonical_id()}" / "search.onnx" for i, a in enumerate(archs)]
    todo = [i for i, p in enumerate(paths) if not p.exists()]
    if todo:  # graphs exported by an interrupted run are kept
        staged = graphs / "staging"
        for j, p in zip(todo, export_search_graphs([archs[i] for i in todo], staged, space, seed,
                                                   precision=precision), strict=True):
            paths[j].parent.mkdir(parents=True, exist_ok=True)
            p.replace(paths[j])
        prev = json.loads(done.read_text())["export_s"] if done.exists() else 0.0
        done.write_text(json.dumps({"export_s": prev + time.perf_counter() - t0, "n": len(paths)}))
    return paths, json.loads(done.read_text())["export_s"] if done.exists() else 0.0


def measure_target(target: str, archs: list, space: SearchSpace, protocol: Protocol, rounds: int, work: Path,
                   seed: int) -> dict:
    """Every subnet measured on the target in ``rounds`` rounds, each in its own seeded order and
    kept apart (a transfer measures its K subnets once: round 0; the held-out truth is the
    fastest round), with each round's measurement time (export excluded)."""
    cache = work / f"target-{target}.json"
    if cache.exists():
        return json.loads(cache.read_text())
    if target == "torch":
        backend, export_s, overhead = get_backend("torch", threads=1), 0.0, 0.0

        def one_round(order: np.ndarray, r: int) -> np.ndarray:
            return _measure_torch([archs[i] for i in order], backend, protocol, space, 1, seed, "min", None)
    else:
        cfg = TARGETS[target][1]
        backend = get_backend("onnxruntime", **cfg)
        paths, export_s = _export(archs, space, work, cfg.get("precision", "fp32"), seed)
        overhead = measure_overhead(backend, protocol).median_ms

        def one_round(order: np.ndarray, r: int) -> np.ndarray:
            return measure_models(backend, [paths[i] for i in order], protocol, 1, seed, None, "min")
    rounds_ms, round_s = [], []
    for r in range(rounds):
        order = np.random.default_rng([seed, r]).permutation(len(archs))
        t0 = time.perf_counter()
        ms = np.empty(len(archs))
        ms[order] = one_round(order, r)
        round_s.append(time.perf_counter() - t0)
        rounds_ms.append([float(v) for v in ms])
    out = {"target": target, "rounds_ms": rounds_ms, "round_s": round_s, "overhead_ms": float(overhead),
           "export_s": export_s, "rounds": rounds,
           "measured_ms": [float(v) for v in np.min(rounds_ms, axis=0)],  # held-out truth: fastest round
           "export_s_per_subnet": export_s / len(archs)}
    cache.write_text(json.dumps(out))
    return out


def measure_fit_round(target: str, archs: list, space: SearchSpace, protocol: Protocol, work: Path,
                      seed: int) -> dict:
    """One more round over every subnet with the protocol a transfer measures with
    (``latency_tables.transfer.subnet_protocol``: fewer runs), in its own shuffled order: the K
    measurements a transfer fits on, and their time (what a transfer costs the device)."""
    cache = work / f"fit-{target}.json"
    if cache.exists():
        return json.loads(cache.read_text())
    light = subnet_protocol(protocol)
    order = np.random.default_rng([seed, 99]).permutation(len(archs))
    ms = np.empty(len(archs))
    t0 = time.perf_counter()
    if target == "torch":
        ms[order] = _measure_torch([archs[i] for i in order], get_backend("torch", threads=1), light, space, 1,
                                   seed, "min", None)
    else:
        cfg = TARGETS[target][1]
        paths, _ = _export(archs, space, work, cfg.get("precision", "fp32"), seed)
        ms[order] = measure_models(get_backend("onnxruntime", **cfg), [paths[i] for i in order], light, 1, seed,
                                   None, "min")
    out = {"fit_ms": [float(v) for v in ms], "fit_s_per_subnet": (time.perf_counter() - t0) / len(archs)}
    cache.write_text(json.dumps(out))
    return out


def profile_target(target: str, space: SearchSpace, protocol: Protocol, rounds: int, work: Path,
                   seed: int) -> dict | None:
    """The target profiled in full like the source (onnxruntime targets): its time is what a
    transfer saves, its table the accuracy a transfer aims at. None for PyTorch (units are ONNX)."""
    if target == "torch":
        return None
    cache = work / f"profile-{target}.json"
    if not cache.exists():
        store = LatencyStore(work / f"profile-{target}.db")
        rep = profile_units(store, get_backend("onnxruntime", **TARGETS[target][1]), all_units(space),
                            name=target, protocol=protocol, rounds=rounds, seed=seed)
        cache.write_text(json.dumps({"measure_s": rep.measure_s, "export_s": rep.export_s}))
    return {**json.loads(cache.read_text()),
            "predictor": LatencyPredictor.from_store(LatencyStore(work / f"profile-{target}.db"), target, space)}


def evaluate(source: LatencyPredictor, archs: list, flops: np.ndarray, meas: dict, k: int, pool: int,
             full: LatencyPredictor | None = None) -> dict:
    """Fit on the first ``k`` pool subnets' transfer round (one measurement each with the
    transfer's protocol, as ``lutnas latency transfer`` takes them), score on the held-out
    subnets' fastest round."""
    y_fit = np.array(meas["fit_ms"])[:k]
    y = np.array(meas["measured_ms"])
    test = np.arange(pool, len(archs))
    fit_archs, test_archs = archs[:k], [archs[i] for i in test]
    fit = fit_transfer(source, fit_archs, y_fit, meas["overhead_ms"])
    entries = transferred_entries(source, {}, fit, "source")
    new = LatencyPredictor({key: e["median_ms"] for key, e in entries.items()}, source.space,
                           overhead_ms=meas["overhead_ms"])
    common = source.predict_batch(test_archs) * float(np.median(y_fit / source.predict_batch(fit_archs)))
    a, b = np.polyfit(flops[:k], y_fit, 1)
    out = {"k": k, "transfer": agreement(new.predict_batch(test_archs), y[test]),
           "common_scale": agreement(common, y[test]), "flops": agreement(a * flops[test] + b, y[test]),
           "scales": fit.scales, "ridge": fit.ridge, "grouping": fit.grouping}
    if full is not None:
        out["full_profile"] = agreement(full.predict_batch(test_archs), y[test])
    return out


def fmt_target(name: str, res: dict, source_s: float) -> str:
    own = res.get("profile_measure_s")
    base = own or source_s  # the full profile a transfer replaces: the target's own where measured
    lines = [f"{name}: {TARGETS[name][0]}; held-out {res['held_out']} subnets (fastest of {res['rounds']} rounds), "
             f"mean {res['mean_ms']:.2f} ms (source predicts {res['source_mean_ms']:.2f} ms); full profile of the "
             + (f"target {own:.0f} s" if own else f"source {source_s:.0f} s (none of the target: units are ONNX)"),
             f"{'K':>4} {'method':<13}{'within 5%':>10}{'within 10%':>11}{'RMSPE':>8}{'Spearman':>9}"
             f"{'mean err':>9}  cost vs that profile (K subnets, 1 round each)"]
    rows = (("transfer", "transfer"), ("common scale", "common_scale"), ("FLOPs fit", "flops"),
            ("full profile", "full_profile"))
    for r in res["by_k"]:
        cost = r["k"] * res["fit_s_per_subnet"]  # a transfer's device time: its own round, export excluded
        cost_all = r["k"] * (res["fit_s_per_subnet"] + res["export_s_per_subnet"])
        for label, key in rows:
            if key not in r or (key == "full_profile" and r is not res["by_k"][-1]):
                continue  # the full profile's row once, under the last K
            a = r[key]
            tail = (f"  {cost:.1f} s = {cost / base:.1%} (+export {cost_all / base:.1%}); groups by {r['grouping']}"
                    if key == "transfer" else "")
            lines.append(f"{r['k']:>4} {label:<13}{a['within_5']:>10.0%}{a['within_10']:>11.0%}{a['rmspe']:>8.1%}"
                         f"{a['spearman']:>9.3f}{a['mean_error']:>+9.1%}{tail}")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--targets", default="t2,basic,torch,int8")
    ap.add_argument("--ks", default="5,10,20,40")
    ap.add_argument("--pool", type=int, default=40)
    ap.add_argument("--held-out", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3, help="Rounds over every subnet (held-out truth: fastest)")
    ap.add_argument("--profile-targets", action=argparse.BooleanOptionalAction, default=True,
                    help="Profile each onnxruntime target in full too (its time and its table's accuracy)")
    ap.add_argument("--profile-rounds", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--clock", default="wall", choices=["wall", "cpu"],
                    help="cpu: process CPU time, immune to other tenants' preemption on a loaded host (1 thread only)")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/bench_transfer"))
    harness.add_arguments(ap)
    args = ap.parse_args()
    work = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    space = SearchSpace.paper()
    protocol = Protocol(clock=args.clock)
    # Source: full table (resumable), its profiling time recorded once.
    store = LatencyStore(work / "source.db")
    timing = work / "source-time.json"
    t0 = time.perf_counter()
    rep = profile_units(store, get_backend("onnxruntime", threads=1), all_units(space), name="source-t1",
                        protocol=protocol, rounds=args.profile_rounds, seed=args.seed)
    if not timing.exists():
        timing.write_text(json.dumps({"profile_s": time.perf_counter() - t0, "export_s": rep.export_s,
                                      "measure_s": rep.measure_s}))
    src_time = json.loads(timing.read_text())
    source_s = src_time["measure_s"]
    source = LatencyPredictor.from_store(store, "source-t1", space)
    archs = sample_many(args.pool + args.held_out, args.seed + 4242, space)
    flops = np.array([count_flops_params(a, space)[0] for a in archs], float)
    ks = [int(k) for k in args.ks.split(",") if int(k) <= args.pool]
    results: dict = {"source": {"name": "onnxruntime fp32 1 thread opt all", **src_time}, "targets": {}}
    texts, written = [], None
    for target in args.targets.split(","):
        meas = measure_target(target, archs, space, protocol, args.rounds, work, args.seed)
        meas = {**meas, **measure_fit_round(target, archs, space, protocol, work, args.seed)}
        full = profile_target(target, space, protocol, args.profile_rounds, work, args.seed) \
            if args.profile_targets else None
        y = np.array(meas["measured_ms"])
        res = {**meas, "held_out": args.held_out, "mean_ms": float(y[args.pool:].mean()),
               "source_mean_ms": float(source.predict_batch(archs[args.pool:]).mean()),
               "by_k": [evaluate(source, archs, flops, meas, k, args.pool, full and full["predictor"])
                        for k in ks]}
        if full:
            res["profile_measure_s"] = full["measure_s"]
        results["targets"][target] = res
        texts.append(fmt_target(target, res, source_s))
        print(texts[-1], flush=True)
        written = write(args, results, texts, load_before, src_time, source_s, space,
                        harness.variant(ap, args), written)


def write(args: argparse.Namespace, results: dict, texts: list[str], load_before: tuple, src_time: dict,
          source_s: float, space: SearchSpace, variant: dict, path: Path | None) -> Path:
    """Results so far, into this run's file (after every target: a long run keeps what it measured)."""
    load_after = os.getloadavg()
    header = (f"bench_transfer: source {results['source']['name']}, full profile {src_time['profile_s']:.0f} s "
              f"(timing {source_s:.0f} s, export {src_time['export_s']:.0f} s) of {len(all_units(space))} units; "
              f"pool {args.pool}, held-out {args.held_out}, {args.rounds} rounds per subnet, {args.clock} clock; load average before "
              f"{load_before[0]:.1f}/{load_before[1]:.1f}/{load_before[2]:.1f}, after {load_after[0]:.1f}/"
              f"{load_after[1]:.1f}/{load_after[2]:.1f} (2-core shared host). Cost: K subnets' measurement time "
              f"vs the full profile's timing (export/quantization of the K graphs is host work, in brackets).")
    print(header)
    results.update({"load_before": load_before, "load_after": load_after, "args": {k: str(v) for k, v in
                                                                                    vars(args).items()}})
    return harness.write_result("bench_transfer", results, header + "\n\n" + "\n\n".join(texts), variant,
                                args.results_dir, path)


if __name__ == "__main__":
    main()
