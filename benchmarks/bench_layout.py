"""Unit sums against whole graphs at each onnxruntime graph optimisation level.

At level ``all`` onnxruntime runs convolutions in a blocked (NCHWc) layout and reorders tensors
where they enter or leave it: once per whole graph, but once per unit when a unit is measured
alone. This prints, per level, the graphs' median latency and how the plain unit sum and the
layout-corrected one (``latency_tables.layout``) agree with them, all models of all levels
shuffled together in each round (fastest round kept), so host drift hits every level alike
(docs/latency.md, "Session of 2026-12-01 (fourth)" and "(fifth)").

    python benchmarks/bench_layout.py [--samples 30 --rounds 3 --levels all extended basic]

Writes what it prints to benchmarks/results/bench_layout/DATE.txt (and the run's variant to DATE.json).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import harness  # same folder: where results are written
import numpy as np
from bench_latency import interleaved_jobs  # same folder: the benchmarks' shuffled-rounds loop

from latency_tables.fidelity import agreement, export_search_graphs
from latency_tables.predict import LatencyPredictor
from latency_tables.units import all_units, export_unit_onnx, unit_filename
from profilers import Protocol, get_backend, measure_overhead
from profilers.layout import measure_boundary
from profilers.measure import combine_rounds
from tracking.space import SearchSpace, sample_many


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--levels", nargs="+", default=["all", "extended", "basic"])
    ap.add_argument("--seed", type=int, default=0)
    harness.add_arguments(ap)
    args = ap.parse_args()
    printed = harness.keep_stdout()

    space = SearchSpace.paper()
    units, archs, protocol = all_units(space), sample_many(args.samples, args.seed, space), Protocol()
    backends = {lv: get_backend("onnxruntime", threads=args.threads, graph_optimization=lv) for lv in args.levels}
    overhead = {lv: measure_overhead(b, protocol).median_ms for lv, b in backends.items()}
    with tempfile.TemporaryDirectory(prefix="bench-layout-") as tmp:
        graphs = export_search_graphs(archs, Path(tmp) / "graphs", space, args.seed)
        unit_paths = [export_unit_onnx(u, Path(tmp) / "units" / unit_filename(u), args.seed) for u in units]
        # Each unit's boundary reorders at each level, as `lutnas profile` records them.
        layouts = {lv: {u.key: measure_boundary(b, p, seed=args.seed, flush_bytes=protocol.flush_bytes).as_dict()
                        for u, p in zip(units, unit_paths, strict=True)} for lv, b in backends.items()}
        models = {"unit": unit_paths, "graph": graphs}
        keys = [(lv, kind, i) for lv in args.levels for kind, paths in models.items() for i in range(len(paths))]
        times = interleaved_jobs([(backends[lv], models[kind][i], protocol) for lv, kind, i in keys],
                                 args.rounds, args.seed, progress=True)
    fastest = dict(zip(keys, combine_rounds(times, "min"), strict=True))
    print(f"{len(units)} units, {len(graphs)} graphs, {args.rounds} interleaved rounds (fastest kept), "
          f"{args.threads} thread(s), flush {protocol.flush_bytes // 1024} KiB")
    for lv in args.levels:
        unit_ms = np.array([fastest[lv, "unit", i] for i in range(len(units))])
        graph_ms = np.array([fastest[lv, "graph", i] for i in range(len(graphs))])
        pred = LatencyPredictor(dict(zip([u.key for u in units], unit_ms, strict=True)), space, overhead[lv],
                                layouts=layouts[lv])
        print(f"  {lv:9} graphs median {np.median(graph_ms):6.2f} ms; units with boundary reorders: "
              f"{sum(v['reorder_in'] > 0 or v['reorder_out'] > 0 for v in layouts[lv].values())}/{len(units)}")
        for label, p in (("plain unit sum", pred.plain()), ("layout-corrected", pred)):
            a = agreement(p.predict_batch(archs), graph_ms)
            print(f"    {label:17} within 5% {a['within_5']:4.0%}, within 10% {a['within_10']:4.0%}, "
                  f"RMSPE {a['rmspe']:5.1%}, Spearman {a['spearman']:.3f}, mean error {a['mean_error']:+.1%}")
    harness.write_result("bench_layout", {}, printed.getvalue(), harness.variant(ap, args), args.results_dir)


if __name__ == "__main__":
    main()
