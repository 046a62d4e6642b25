"""How rounds of measurement should combine on a shared host: test-retest and min vs median.

Measures all units of the space and ``--samples`` random subnets' search graphs in ``--rounds``
rounds, units and graphs shuffled together in each round (onnxruntime CPU EP), then prints how
much the same subnet moved between rounds, and the LUT sum's agreement with the measured graphs
when each model's rounds are combined by median, mean or min: one set of measurements, every
statistic side by side.

    python benchmarks/bench_rounds.py [--samples 30] [--rounds 4] [--threads 1]

Writes what it prints to benchmarks/results/bench_rounds/DATE.txt (and the run's variant to DATE.json).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import harness  # same folder: where results are written
import numpy as np
from bench_latency import interleaved_rounds  # same folder: the benchmark's shuffled-rounds loop
from scipy.stats import spearmanr

from latency_tables.fidelity import agreement, export_search_graphs
from latency_tables.predict import LatencyPredictor
from latency_tables.units import all_units, export_unit_onnx, unit_filename
from profilers import Protocol, get_backend, measure_overhead
from tracking.space import SearchSpace, sample_many


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    harness.add_arguments(ap)
    args = ap.parse_args()
    printed = harness.keep_stdout()

    import torch

    torch.set_num_threads(1)
    space = SearchSpace.paper()
    archs = sample_many(args.samples, args.seed, space)
    units = all_units(space)
    backend = get_backend("onnxruntime", threads=args.threads)
    protocol = Protocol()
    with tempfile.TemporaryDirectory(prefix="bench-rounds-") as tmp:
        graphs = export_search_graphs(archs, Path(tmp) / "e2e", space, args.seed)
        unit_paths = [export_unit_onnx(u, Path(tmp) / "u" / unit_filename(u), args.seed) for u in units]
        overhead = measure_overhead(backend, protocol).median_ms
        t0 = time.perf_counter()
        out = interleaved_rounds(backend, unit_paths + graphs, protocol, args.rounds, args.seed)
        print(f"{args.rounds} rounds measured in {time.perf_counter() - t0:.0f} s", flush=True)
    nu = len(units)
    e2e = out[:, nu:]
    ratios = [e2e[a] / e2e[b] for a in range(args.rounds) for b in range(a + 1, args.rounds)]
    rhos = [spearmanr(e2e[a], e2e[b]).statistic for a in range(args.rounds) for b in range(a + 1, args.rounds)]
    allr = np.concatenate(ratios)
    print(f"\n{args.samples} subnets + {nu} units, {args.rounds} rounds, {args.threads} thread(s)")
    print(f"retest: one subnet's median, round vs round: ratio p10-p90 {np.percentile(allr, 10):.3f}-"
          f"{np.percentile(allr, 90):.3f}; Spearman between rounds {min(rhos):.3f}-{max(rhos):.3f}")
    print(f"  {'rounds combined by':20}{'within 5%':>10}{'within 10%':>11}{'RMSPE':>8}{'Spearman':>10}{'mean err':>10}")
    for name, fn in (("median", np.median), ("mean", np.mean), ("min", np.min)):
        pred = LatencyPredictor(dict(zip([u.key for u in units], fn(out[:, :nu], axis=0), strict=True)), space,
                                overhead).predict_batch(archs)
        a = agreement(pred, fn(e2e, axis=0))
        print(f"  {name:20}{a['within_5']:>10.1%}{a['within_10']:>11.1%}{a['rmspe']:>8.1%}{a['spearman']:>10.3f}"
              f"{a['mean_error']:>+10.1%}")
    harness.write_result("bench_rounds", {}, printed.getvalue(), harness.variant(ap, args), args.results_dir)


if __name__ == "__main__":
    main()
