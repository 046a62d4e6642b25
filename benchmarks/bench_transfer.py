"""Transfer accuracy: a target's table from a source target's full table plus K measured subnets
(``latency_tables.transfer``), on pairs of genuinely different targets of this machine.

Source: onnxruntime CPU EP, fp32, 1 thread, optimisation level ``all``, profiled in full (timed).
Targets: 2 threads; optimisation level ``basic`` (no blocked-layout convolutions); PyTorch eager
(same modules); int8 (static QDQ quantization). For each target, ``--pool`` + ``--held-out``
seeded subnets are measured on it (rounds in shuffled orders, fastest kept); the first K of the
pool fit the transfer, for K in ``--ks``, and the held-out subnets score it, next to two baselines
fitted on the same K subnets: one common scale of the source table, and latency ~ FLOPs (least
squares). Cost of a transfer: measuring K subnets (plus their export/quantization, host work) vs
the source's full profiling time.

Intermediate results (the source table, each target's measurements) are kept under ``--workdir``,
so a rerun resumes. Writes benchmarks/results/bench_transfer.{txt,json}.

    python benchmarks/bench_transfer.py                              # all targets
    python benchmarks/bench_transfer.py --targets t2,basic --pool 20 --held-out 10   # quick look
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from latency_tables.fidelity import agreement, export_search_graphs, measure_models
from latency_tables.predict import LatencyPredictor
from latency_tables.profile import profile_units
from latency_tables.store import LatencyStore
from latency_tables.transfer import _measure_torch, fit_transfer, transferred_entries
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


def measure_target(target: str, archs: list, space: SearchSpace, protocol: Protocol, rounds: int, work: Path,
                   seed: int) -> dict:
    cache = work / f"target-{target}.json"
    if cache.exists():
        return json.loads(cache.read_text())
    t0 = time.perf_counter()
    if target == "torch":
        backend = get_backend("torch", threads=1)
        export_s = 0.0
        ms = _measure_torch(archs, backend, protocol, space, rounds, seed, "min", None)
        overhead = 0.0
    else:
        cfg = TARGETS[target][1]
        backend = get_backend("onnxruntime", **cfg)
        precision = cfg.get("precision", "fp32")
        graphs = work / f"graphs-{precision}"
        done = graphs / "export.json"  # the same graphs serve every target of a precision
        t_exp = time.perf_counter()
        paths = [graphs / f"{i:04d}-{a.canonical_id()}" / "search.onnx" for i, a in enumerate(archs)]
        todo = [i for i, p in enumerate(paths) if not p.exists()]
        if todo:  # resumable: graphs exported by an interrupted run are kept
            staged = graphs / "staging"
            for j, p in zip(todo, export_search_graphs([archs[i] for i in todo], staged, space, seed,
                                                       precision=precision), strict=True):
                paths[j].parent.mkdir(parents=True, exist_ok=True)
                p.replace(paths[j])
            prev = json.loads(done.read_text())["export_s"] if done.exists() else 0.0
            done.write_text(json.dumps({"export_s": prev + time.perf_counter() - t_exp, "n": len(paths)}))
        export_s = json.loads(done.read_text())["export_s"] if done.exists() else 0.0
        t0 += time.perf_counter() - t_exp  # measurement time below excludes the export
        overhead = measure_overhead(backend, protocol).median_ms
        ms = measure_models(backend, paths, protocol, rounds, seed, None, "min")
    out = {"target": target, "measured_ms": [float(v) for v in ms], "overhead_ms": float(overhead),
           "export_s": export_s, "measure_s": time.perf_counter() - t0, "rounds": rounds}
    # Time per subnet of the measurement alone (what K subnets cost on a device), export excluded.
    out["measure_s_per_subnet"] = out["measure_s"] / len(archs)
    out["export_s_per_subnet"] = export_s / len(archs)
    cache.write_text(json.dumps(out))
    return out


def evaluate(source: LatencyPredictor, archs: list, flops: np.ndarray, meas: dict, k: int, pool: int) -> dict:
    y = np.array(meas["measured_ms"])
    fit_idx, test_idx = np.arange(k), np.arange(pool, len(archs))
    fit_archs = [archs[i] for i in fit_idx]
    test_archs = [archs[i] for i in test_idx]
    fit = fit_transfer(source, fit_archs, y[fit_idx], meas["overhead_ms"])
    entries = transferred_entries(source, {}, fit, "source")
    new = LatencyPredictor({key: e["median_ms"] for key, e in entries.items()}, source.space,
                           overhead_ms=meas["overhead_ms"])
    pred = new.predict_batch(test_archs)
    common = source.predict_batch(test_archs) * float(np.median(y[fit_idx] / source.predict_batch(fit_archs)))
    a, b = np.polyfit(flops[fit_idx], y[fit_idx], 1)
    flops_pred = a * flops[test_idx] + b
    return {"k": k, "transfer": agreement(pred, y[test_idx]), "common_scale": agreement(common, y[test_idx]),
            "flops": agreement(flops_pred, y[test_idx]), "scales": fit.scales, "ridge": fit.ridge}


def fmt_target(name: str, res: dict, source_s: float) -> str:
    lines = [f"{name}: {TARGETS[name][0]}; held-out {res['held_out']} subnets, mean {res['mean_ms']:.2f} ms "
             f"(source predicts {res['source_mean_ms']:.2f} ms)",
             f"{'K':>4} {'method':<13}{'within 5%':>10}{'within 10%':>11}{'RMSPE':>8}{'Spearman':>9}"
             f"{'mean err':>9}  cost vs full profile"]
    for r in res["by_k"]:
        cost = r["k"] * res["measure_s_per_subnet"]
        cost_all = r["k"] * (res["measure_s_per_subnet"] + res["export_s_per_subnet"])
        for label, key in (("transfer", "transfer"), ("common scale", "common_scale"), ("FLOPs fit", "flops")):
            a = r[key]
            tail = (f"  {cost:.0f} s = {cost / source_s:.1%} (+export {cost_all / source_s:.1%})"
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
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--profile-rounds", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--clock", default="wall", choices=["wall", "cpu"],
                    help="cpu: process CPU time, immune to other tenants' preemption on a loaded host (1 thread only)")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/bench_transfer"))
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "bench_transfer")
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
    texts = []
    for target in args.targets.split(","):
        meas = measure_target(target, archs, space, protocol, args.rounds, work, args.seed)
        y = np.array(meas["measured_ms"])
        res = {**meas, "held_out": args.held_out, "mean_ms": float(y[args.pool:].mean()),
               "source_mean_ms": float(source.predict_batch(archs[args.pool:]).mean()),
               "by_k": [evaluate(source, archs, flops, meas, k, args.pool) for k in ks]}
        results["targets"][target] = res
        texts.append(fmt_target(target, res, source_s))
        print(texts[-1], flush=True)
        write(args, results, texts, load_before, src_time, source_s, space)


def write(args: argparse.Namespace, results: dict, texts: list[str], load_before: tuple, src_time: dict,
          source_s: float, space: SearchSpace) -> None:
    """Results so far (after every target: a long run keeps what it measured)."""
    load_after = os.getloadavg()
    header = (f"bench_transfer: source {results['source']['name']}, full profile {src_time['profile_s']:.0f} s "
              f"(timing {source_s:.0f} s, export {src_time['export_s']:.0f} s) of {len(all_units(space))} units; "
              f"pool {args.pool}, held-out {args.held_out}, {args.rounds} rounds per subnet, {args.clock} clock; load average before "
              f"{load_before[0]:.1f}/{load_before[1]:.1f}/{load_before[2]:.1f}, after {load_after[0]:.1f}/"
              f"{load_after[1]:.1f}/{load_after[2]:.1f} (2-core shared host). Cost: K subnets' measurement time "
              f"vs the source's unit timing time (export/quantization of the K graphs is host work, in brackets).")
    print(header)
    results.update({"load_before": load_before, "load_after": load_after, "args": {k: str(v) for k, v in
                                                                                    vars(args).items()}})
    args.out.with_suffix(".txt").write_text(header + "\n\n" + "\n\n".join(texts) + "\n")
    args.out.with_suffix(".json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
