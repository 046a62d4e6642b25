"""How differently two runtimes rank the same subnets: the subnets of a LiteRT table's validation
(``lutnas latency validate --json``: their architectures and measured times) measured again here
with onnxruntime (CPU, the same threads and protocol), and the rank agreement between the two.

    python benchmarks/bench_runtimes.py --validate-json litert-validate.json --table litert.db

Prints per runtime the median subnet latency, the ratio LiteRT / onnxruntime (min, median, max)
and the Spearman correlation of the two runtimes' measured times; the same JSON with ``--json``.
Writes both to benchmarks/results/bench_runtimes/DATE.{json,txt}.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import harness  # same folder: where results are written
import numpy as np
from scipy.stats import spearmanr

from latency_tables.fidelity import export_search_graphs, measure_models
from latency_tables.store import LatencyStore
from latency_tables.verify import protocol_for_runtime
from profilers import get_backend
from tracking.space import Architecture, SearchSpace


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--validate-json", type=Path, required=True, help="lutnas latency validate --json of a table")
    ap.add_argument("--table", required=True, help="that table's database (its protocol and threads are reused)")
    ap.add_argument("--space", default="paper")
    ap.add_argument("--json", action="store_true")
    harness.add_arguments(ap)
    args = ap.parse_args()
    rep = json.loads(args.validate_json.read_text())
    runtime = LatencyStore(args.table, create=False).find(rep.get("table")).runtime
    space = SearchSpace.named(args.space)
    archs = [Architecture.parse(a, space) for a in rep["archs"]]
    other = np.asarray(rep["measured_ms"], float)
    ort = get_backend("onnxruntime", threads=int(runtime.get("threads", 1)))
    with tempfile.TemporaryDirectory() as tmp:
        paths = export_search_graphs(archs, tmp, space, int(rep.get("seed", 0)))
        measured = measure_models(ort, paths, protocol_for_runtime(runtime), int(runtime.get("rounds", 1)),
                                  int(rep.get("seed", 0)), round_stat=str(runtime.get("round_stat", "min")))
    ratio = other / measured
    out = {"n": len(archs), "table": rep.get("table"), "runtime": runtime.get("backend"),
           "median_ms": {"onnxruntime": float(np.median(measured)), str(runtime.get("backend")): float(np.median(other))},
           "ratio_min_median_max": [float(ratio.min()), float(np.median(ratio)), float(ratio.max())],
           "spearman": float(spearmanr(other, measured).statistic),
           "onnxruntime_ms": [float(v) for v in measured]}
    text = json.dumps(out, indent=2) if args.json else summary(out)
    print(text)
    harness.write_result("bench_runtimes", out, text, harness.variant(ap, args), args.results_dir)


def summary(out: dict) -> str:
    r = out["ratio_min_median_max"]
    return "\n".join([
        f"{out['n']} subnets of {out['table']}",
        f"median latency: onnxruntime {out['median_ms']['onnxruntime']:.2f} ms, {out['runtime']} "
        f"{out['median_ms'][str(out['runtime'])]:.2f} ms",
        f"{out['runtime']} / onnxruntime per subnet: min {r[0]:.2f}, median {r[1]:.2f}, max {r[2]:.2f}",
        f"Spearman between the runtimes' measured times: {out['spearman']:.3f}"])


if __name__ == "__main__":
    main()
