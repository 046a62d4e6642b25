"""Int8 targets: fidelity of an int8 latency table next to the FLOPs fit (and the fp32 table on the
same subnets, for comparison).

For each precision: profile every unit of the space (int8: each unit quantized with onnxruntime's
static QDQ quantization, ``latency_tables.quantize``) into a fresh table, then validate it on
``--samples`` random subnets, quantized the same way, with ``latency_tables.fidelity.validate``
(end-to-end runs in the table's rounds, probes for host drift, p90/p99 tails, FLOPs least-squares
fit in-sample). Prints one table per precision and writes benchmarks/results/bench_int8/DATE.{json,txt}.

    python benchmarks/bench_int8.py                  # 24 subnets, 1 thread
    python benchmarks/bench_int8.py --samples 8      # quick look
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import harness  # same folder: where results are written

from latency_tables.fidelity import validate
from latency_tables.predict import LatencyPredictor
from latency_tables.profile import profile_units
from latency_tables.store import LatencyStore
from latency_tables.units import all_units
from profilers import Protocol, get_backend
from tracking.space import SearchSpace

ROWS = (("LUT", ""), ("LUT as profiled", "table_"), ("FLOPs (fit)", "flops_"))  # LUT: x host speed


def run(precision: str, args: argparse.Namespace, tmp: Path) -> dict:
    space = SearchSpace.paper()
    backend = get_backend("onnxruntime", threads=args.threads, precision=precision)
    store = LatencyStore(tmp / f"{precision}.db")
    t0 = time.perf_counter()
    protocol = Protocol(clock=args.clock)
    rep = profile_units(store, backend, all_units(space), protocol=protocol, rounds=args.rounds, seed=args.seed)
    profile_s = time.perf_counter() - t0
    pred = LatencyPredictor.from_store(store, space=space)
    tails = {"p90": LatencyPredictor.from_store(store, space=space, stat="p90")}
    t1 = time.perf_counter()
    out = validate(pred, backend, args.samples, seed=args.seed + 7, protocol=protocol, repeats=args.rounds,
                   noise_runs=3, probes=6, tail_predictors=tails, precision=precision)
    out.update({"profile_s": profile_s, "export_s": rep.export_s, "measure_s": rep.measure_s,
                "validate_s": time.perf_counter() - t1, "precision": precision})
    return out


def fmt(rep: dict) -> str:
    lines = [f"{rep['precision']}: {rep['samples']} subnets, {rep['repeats']} rounds ({rep['round_stat']}); profiling "
             f"{rep['profile_s']:.0f} s (export+quantize {rep['export_s']:.0f} s, timing {rep['measure_s']:.0f} s)",
             f"{'':14}{'within 5%':>10}{'within 10%':>11}{'RMSPE':>8}{'Spearman':>9}{'mean err':>9}"]
    for label, p in ROWS:
        lines.append(f"{label:14}{rep[p + 'within_5']:>10.1%}{rep[p + 'within_10']:>11.1%}{rep[p + 'rmspe']:>8.1%}"
                     f"{rep[p + 'spearman']:>9.3f}{rep[p + 'mean_error']:>+9.1%}")
    a = rep["stats"]["p90"]
    lines.append(f"{'LUT p90':14}{a['within_5']:>10.1%}{a['within_10']:>11.1%}{a['rmspe']:>8.1%}"
                 f"{a['spearman']:>9.3f}{a['mean_error']:>+9.1%}")
    for kind in ("out_stage", "cls_width"):
        lines.append(f"  by {kind}: " + "; ".join(f"{v}: {c['mean_error']:+.1%} (n={c['n']})"
                                                   for v, c in rep["by_class"][kind].items()))
    lines.append(f"host speed {rep['host_speed']:.3f}, retest CV {rep['retest_cv'] or 0:.1%}, noise CV "
                 f"{rep.get('noise_cv', 0):.1%}; mean subnet {sum(rep['measured_ms']) / rep['samples']:.2f} ms")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=24)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--precisions", default="int8,fp32")
    ap.add_argument("--clock", default="wall", choices=["wall", "cpu"], help="cpu: process CPU time (1 thread, loaded hosts)")
    harness.add_arguments(ap)
    args = ap.parse_args()
    load_before = os.getloadavg()
    reports = []
    with tempfile.TemporaryDirectory(prefix="bench-int8-") as tmp:
        for precision in args.precisions.split(","):
            reports.append(run(precision, args, Path(tmp)))
            print(fmt(reports[-1]), flush=True)
    load_after = os.getloadavg()
    header = (f"bench_int8: onnxruntime CPU EP, {args.threads} thread(s), {args.clock} clock, paper space, seed {args.seed}; "
              f"load average before {load_before[0]:.1f}/{load_before[1]:.1f}/{load_before[2]:.1f}, after "
              f"{load_after[0]:.1f}/{load_after[1]:.1f}/{load_after[2]:.1f} (1/5/15 min; 2-core shared host)")
    text = header + "\n\n" + "\n\n".join(fmt(r) for r in reports) + "\n"
    print(header)
    harness.write_result("bench_int8", {"args": {k: str(v) for k, v in vars(args).items()},
                                        "load_before": load_before, "load_after": load_after,
                                        "reports": reports},
                         text, harness.variant(ap, args), args.results_dir)


if __name__ == "__main__":
    main()
