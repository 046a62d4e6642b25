"""Fidelity per runtime, over fresh tables, and how differently the runtimes rank the same subnets.

Each run, for each runtime (onnxruntime, LiteRT fp32 with XNNPACK, LiteRT int8), as a user runs it:
``lutnas profile --out RUN.db --threads 1 [--backend litert] [--precision int8]`` into a fresh table,
then ``lutnas latency validate --table RUN.db --samples 40 --seed 7 --json``. The same seed draws
the same 40 subnets for every runtime, so their measured times also say how the runtimes rank
architectures (Spearman between runtimes: why a team must profile the runtime it deploys). With
``--transfer K`` each run also builds the LiteRT fp32 table from that run's onnxruntime table and K
subnets measured in LiteRT (``lutnas latency transfer --backend litert --measure K``) and validates it.

    python benchmarks/bench_runtimes.py                                  # 3 runs, 3 runtimes
    python benchmarks/bench_runtimes.py --runs 1 --samples 10 --runtimes onnxruntime litert
    python benchmarks/bench_runtimes.py --transfer 20 --lock /tmp/drift.lock

Prints per table the agreement as profiled (within 5% / 10%, Spearman, mean error), the FLOPs fit,
the anchor scale the profile calibrated with and the profiling time; then per runtime min / median
/ max over the runs, and the cross-runtime Spearman. ``--lock PATH`` holds an exclusive lock on PATH
while a table is profiled and validated (other jobs that take it shared wait: a quiet host).
LiteRT needs ``pip install -r requirements-litert.txt``. Writes benchmarks/results/bench_runtimes/DATE.{json,txt}.
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import harness  # same folder: where results are written
import numpy as np
from scipy.stats import spearmanr

from latency_tables.store import LatencyStore

BIN = Path(sys.executable).parent / "lutnas"
PARTIAL = Path(tempfile.gettempdir()) / "bench_runtimes.partial.json"
RUNTIMES = {"onnxruntime": [], "litert": ["--backend", "litert"],
            "litert-int8": ["--backend", "litert", "--precision", "int8"]}




def validate(db: Path, args: argparse.Namespace) -> dict[str, Any]:
    out = subprocess.run([str(BIN), "latency", "validate", "--table", str(db), "--samples", str(args.samples),
                          "--seed", str(args.seed), "--json", "--quiet"], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def one_table(db: Path, runtime: str, args: argparse.Namespace) -> dict[str, Any]:
    """Profile a fresh table of ``runtime`` and validate it."""
    t0 = time.perf_counter()
    prof = subprocess.run([str(BIN), "profile", "--out", str(db), "--quiet", "--threads", str(args.threads),
                           *RUNTIMES[runtime]], check=True, capture_output=True, text=True)
    profile_s = time.perf_counter() - t0
    rep = validate(db, args)
    rep.update({"profile_s": profile_s, "validate_s": time.perf_counter() - t0 - profile_s,
                "profile_line": prof.stdout.strip().splitlines()[-1],
                "calibration": LatencyStore(str(db), create=False).find().calibration})
    return rep


def one_transfer(source: Path, db: Path, args: argparse.Namespace) -> dict[str, Any]:
    """The LiteRT fp32 table made from an onnxruntime table and ``args.transfer`` LiteRT subnets, validated."""
    t0 = time.perf_counter()
    subprocess.run([str(BIN), "latency", "transfer", "--from", str(source), "--out", str(db), "--backend", "litert",
                    "--measure", str(args.transfer), "--threads", str(args.threads), "--quiet"],
                   check=True, capture_output=True, text=True)
    transfer_s = time.perf_counter() - t0
    rep = validate(db, args)
    rep.update({"profile_s": transfer_s, "validate_s": time.perf_counter() - t0 - transfer_s})
    return rep


def fmt(run: int, runtime: str, rep: dict[str, Any]) -> str:
    scale = ((rep.get("calibration") or {}).get("coef") or {}).get("raw_ms")
    lines = [f"run {run} {runtime}: profile {rep['profile_s']:.0f} s, validate {rep['validate_s']:.0f} s"
             + (f", calibration scale {scale:.3f}" if scale else "")
             + (f", anchors ran at {rep['anchor_speed']:.3f}x" if "anchor_speed" in rep else ""),
             f"  {'':14}{'within 5%':>10}{'within 10%':>11}{'RMSPE':>8}{'Spearman':>9}{'mean err':>9}"]
    for label, p in (("LUT", "table_"), ("FLOPs (fit)", "flops_")):
        lines.append(f"  {label:14}{rep[p + 'within_5']:>10.0%}{rep[p + 'within_10']:>11.0%}{rep[p + 'rmspe']:>8.1%}"
                     f"{rep[p + 'spearman']:>9.3f}{rep[p + 'mean_error']:>+9.1%}")
    return "\n".join(lines)


def summary(tables: dict[str, list[dict[str, Any]]]) -> list[str]:
    lines = ["per runtime over the runs (min / median / max):"]
    for runtime, reps in tables.items():
        cells = []
        for label, key, spec in (("within 5%", "table_within_5", ".1%"), ("within 10%", "table_within_10", ".1%"),
                                 ("Spearman", "table_spearman", ".3f"), ("mean err", "table_mean_error", "+.1%"),
                                 ("profile s", "profile_s", ".0f")):
            v = np.array([r[key] for r in reps], float)
            cells.append(f"{label} {v.min():{spec}} / {float(np.median(v)):{spec}} / {v.max():{spec}}")
        lines.append(f"  {runtime:<20} " + "; ".join(cells))
    return lines


def cross_runtime(tables: dict[str, list[dict[str, Any]]]) -> tuple[dict[str, list[float]], list[str]]:
    """Spearman between two runtimes' measured times of the same subnets, one figure per run."""
    out: dict[str, list[float]] = {}
    lines = ["the same subnets measured in two runtimes (Spearman of their times, per run):"]
    for a, b in itertools.combinations([r for r in tables if r != "transfer"], 2):
        rhos = [float(spearmanr(x["measured_ms"], y["measured_ms"]).statistic)
                for x, y in zip(tables[a], tables[b], strict=False) if x["archs"] == y["archs"]]
        out[f"{a} vs {b}"] = rhos
        lines.append(f"  {a} vs {b}: " + ", ".join(f"{r:.3f}" for r in rhos))
    return out, lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3, help="fresh tables per runtime")
    ap.add_argument("--runtimes", nargs="+", default=list(RUNTIMES), choices=list(RUNTIMES))
    ap.add_argument("--samples", type=int, default=40)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--transfer", type=int, default=0, help="K: also transfer onnxruntime -> LiteRT with K subnets")
    ap.add_argument("--lock", type=Path, default=None, help="hold LOCK_EX on this file while measuring")
    harness.add_arguments(ap)
    args = ap.parse_args()
    if args.transfer and "onnxruntime" not in args.runtimes:
        ap.error("--transfer needs the onnxruntime table of each run")
    tables: dict[str, list[dict[str, Any]]] = {r: [] for r in args.runtimes}
    if args.transfer:
        tables["transfer"] = []
    texts = []
    with tempfile.TemporaryDirectory(prefix="bench-runtimes-") as tmp:
        for i in range(1, args.runs + 1):  # runtimes interleaved: a slow hour of the host hits them all
            for runtime in args.runtimes:
                with harness.quiet_host(args.lock):
                    tables[runtime].append(one_table(Path(tmp) / f"run{i}-{runtime}.db", runtime, args))
                texts.append(fmt(i, runtime, tables[runtime][-1]))
                print(texts[-1], flush=True)
                PARTIAL.write_text(json.dumps(tables))  # an hour of measurement survives a late crash
            if args.transfer:
                with harness.quiet_host(args.lock):
                    tables["transfer"].append(one_transfer(Path(tmp) / f"run{i}-onnxruntime.db",
                                                           Path(tmp) / f"run{i}-transfer.db", args))
                texts.append(fmt(i, f"transfer onnxruntime -> litert (K={args.transfer})", tables["transfer"][-1]))
                print(texts[-1], flush=True)
    cross, cross_lines = cross_runtime(tables)
    header = (f"bench_runtimes: lutnas profile --threads {args.threads} then lutnas latency validate --samples "
              f"{args.samples} --seed {args.seed}, {args.runs} fresh table(s) per runtime, runtimes interleaved")
    text = "\n\n".join([header, *texts, "\n".join(summary(tables)), "\n".join(cross_lines)]) + "\n"
    print("\n".join(summary(tables) + cross_lines))
    harness.write_result("bench_runtimes", {"args": {k: str(v) for k, v in vars(args).items()}, "tables": tables,
                                            "cross_runtime_spearman": cross}, text, harness.variant(ap, args),
                         args.results_dir)


if __name__ == "__main__":
    main()
