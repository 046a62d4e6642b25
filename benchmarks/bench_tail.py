"""Tail-latency fidelity: a table's p50, p90 and p99 predictions (sums of the units' quantiles)
against the same quantiles of whole subnets measured end to end.

Uses a full table and exported search graphs, by default those bench_transfer.py leaves in its
work folder (source table: onnxruntime fp32, 1 thread; graphs: its sampled subnets), so it adds
only measurement time. Each graph is measured in ``--rounds`` rounds (new order each), the round
with the fastest median kept with its own p90/p99. Writes benchmarks/results/bench_tail/DATE.{json,txt}.
The subnets are those of bench_transfer's newest result (benchmarks/results/bench_transfer/).

    python benchmarks/bench_tail.py [--workdir /tmp/bench_transfer] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import harness  # same folder: where results are written
import numpy as np

from latency_tables.fidelity import agreement
from latency_tables.predict import LatencyPredictor
from latency_tables.store import LatencyStore
from profilers import Protocol, get_backend, measure
from tracking.flops import count_flops_params
from tracking.space import Architecture, SearchSpace


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/bench_transfer"))
    ap.add_argument("--table", default="source-t1")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--clock", default="wall", choices=["wall", "cpu"],
                    help="cpu: process CPU time (the table must have been profiled with it too)")
    harness.add_arguments(ap)
    args = ap.parse_args()
    load_before = os.getloadavg()
    space = SearchSpace.paper()
    store = LatencyStore(args.workdir / "source.db", create=False)
    preds = {s: LatencyPredictor.from_store(store, args.table, space, stat=s) for s in ("p50", "p90", "p99")}
    graphs = sorted((args.workdir / "graphs-fp32").glob("[0-9]*/search.onnx"))
    index = {a.canonical_id(): a for a in _archs(args.workdir)}
    archs = [index[g.parent.name.split("-", 1)[1]] for g in graphs]
    backend = get_backend("onnxruntime", threads=1)
    protocol = Protocol(min_runs=50, clock=args.clock)  # enough runs for a p99 that is not just the maximum
    rng = np.random.default_rng(args.seed)
    rounds = np.zeros((args.rounds, len(graphs), 3))
    for r in range(args.rounds):
        for i in (range(len(graphs)) if r == 0 else rng.permutation(len(graphs))):
            m = measure(backend, graphs[i], protocol, args.seed)
            rounds[r, i] = (m.median_ms, m.p90_ms, m.p99_ms)
    best = rounds[np.argmin(rounds[:, :, 0], axis=0), np.arange(len(graphs))]  # fastest round, its own tails
    flops = np.array([count_flops_params(a, space)[0] for a in archs], float)
    rows = {}
    for j, s in enumerate(("p50", "p90", "p99")):
        y = best[:, j]
        a, b = np.polyfit(flops, y, 1)
        rows[s] = {"lut": agreement(preds[s].predict_batch(archs), y), "flops": agreement(a * flops + b, y),
                   "mean_ms": float(y.mean())}
    load_after = os.getloadavg()
    lines = [f"bench_tail: table {args.table} (onnxruntime fp32, 1 thread, {args.clock} clock), {len(graphs)} subnets, "
             f"{args.rounds} "
             f"rounds (fastest kept), >= 50 runs per measurement; load average before {load_before[0]:.1f}/"
             f"{load_before[1]:.1f}/{load_before[2]:.1f}, after {load_after[0]:.1f}/{load_after[1]:.1f}/"
             f"{load_after[2]:.1f} (2-core shared host)",
             f"{'stat':<5}{'predictor':<14}{'within 5%':>10}{'within 10%':>11}{'RMSPE':>8}{'Spearman':>9}{'mean err':>9}"]
    for s, r in rows.items():
        for label, key in (("LUT sum", "lut"), ("FLOPs (fit)", "flops")):
            q = r[key]
            lines.append(f"{s:<5}{label:<14}{q['within_5']:>10.0%}{q['within_10']:>11.0%}{q['rmspe']:>8.1%}"
                         f"{q['spearman']:>9.3f}{q['mean_error']:>+9.1%}")
    text = "\n".join(lines)
    print(text)
    harness.write_result("bench_tail", {"rows": rows, "measured": best.tolist(),
                                        "archs": [a.to_string() for a in archs]},
                         text, harness.variant(ap, args), args.results_dir)


def _archs(work: Path) -> list[Architecture]:
    """bench_transfer's sampled subnets (its args are in its newest results file)."""
    from tracking.space import sample_many

    found = harness.latest("bench_transfer")
    if found is None:
        raise SystemExit(f"no bench_transfer result under {harness.BENCHMARKS}: run bench_transfer.py first")
    res = json.loads(found.read_text())
    a = res["args"]
    return sample_many(int(a["pool"]) + int(a["held_out"]), int(a["seed"]) + 4242, SearchSpace.paper())


if __name__ == "__main__":
    main()
