"""Unit sums with cold vs warm inputs after the cache flush, against the same end-to-end graphs.

Every unit of the space is measured twice (``Protocol.warm_inputs`` False and True) and
``--samples`` random subnets' search graphs once, all shuffled together in each of ``--rounds``
rounds (medians over rounds), so host drift hits both variants alike. Prints each variant's
agreement with the graphs (share within 5% / 10%, RMSPE, Spearman, mean error).

    python benchmarks/bench_warm_inputs.py [--samples 30 --rounds 3 --threads 1]

Writes what it prints to benchmarks/results/bench_warm_inputs/DATE.txt (and the run's variant to DATE.json).
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import replace
from pathlib import Path

import harness  # same folder: where results are written
import numpy as np
from bench_latency import interleaved_jobs  # same folder: the benchmarks' shuffled-rounds loop

from latency_tables.fidelity import agreement, export_search_graphs
from latency_tables.predict import LatencyPredictor
from latency_tables.units import all_units, export_unit_onnx, unit_filename
from profilers import Protocol, get_backend, measure_overhead
from tracking.space import SearchSpace, sample_many


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    harness.add_arguments(ap)
    args = ap.parse_args()
    printed = harness.keep_stdout()

    space = SearchSpace.paper()
    units = all_units(space)
    archs = sample_many(args.samples, args.seed, space)
    cold = replace(Protocol(), warm_inputs=False)
    warm = replace(cold, warm_inputs=True)
    backend = get_backend("onnxruntime", threads=args.threads)
    overhead = measure_overhead(backend, warm).median_ms
    with tempfile.TemporaryDirectory(prefix="bench-warm-") as tmp:
        graphs = export_search_graphs(archs, Path(tmp) / "graphs", space, args.seed)
        unit_paths = [export_unit_onnx(u, Path(tmp) / "units" / unit_filename(u), args.seed) for u in units]
        kinds = [("cold", i) for i in range(len(units))] + [("warm", i) for i in range(len(units))] \
            + [("graph", i) for i in range(len(graphs))]
        times = interleaved_jobs([(backend, graphs[i] if kind == "graph" else unit_paths[i],
                                   cold if kind == "cold" else warm) for kind, i in kinds], args.rounds, args.seed, progress=True)
    n = len(units)
    out = {"cold": times[:, :n], "warm": times[:, n:2 * n], "graph": times[:, 2 * n:]}
    med = {k: np.median(v, axis=0) for k, v in out.items()}
    print(f"{len(units)} units x 2 variants, {len(graphs)} graphs, {args.rounds} interleaved rounds, "
          f"{args.threads} thread(s), flush {cold.flush_bytes // 1024} KiB")
    for kind in ("cold", "warm"):
        pred = LatencyPredictor(dict(zip([u.key for u in units], med[kind], strict=True)), space, overhead)
        a = agreement(pred.predict_batch(archs), med["graph"])
        print(f"  {kind} inputs: within 5% {a['within_5']:.0%}, within 10% {a['within_10']:.0%}, "
              f"RMSPE {a['rmspe']:.1%}, Spearman {a['spearman']:.3f}, mean error {a['mean_error']:+.1%}")
    print(f"  unit medians, warm / cold: {np.median(med['warm'] / med['cold']):.3f}")
    harness.write_result("bench_warm_inputs", {},
                         printed.getvalue(), harness.variant(ap, args), args.results_dir)


if __name__ == "__main__":
    main()
