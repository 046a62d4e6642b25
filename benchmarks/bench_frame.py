"""Tracker-level latency: does ``frame_ms`` match the measured tracking loop? Fresh tables, as a user.

Per run: ``lutnas profile --out RUN.db --threads T --anchors 0`` (the frame record is measured at
its end: the tracker's pre/post-processing alone and its overhead in the loop on 3 subnets), then
``lutnas latency validate --table RUN.db --samples 10 --frames F --seed 7 --json``: F seeded subnets
(other than the 3) tracked through the whole loop (crop, ONNX network, post-processing), one
update timed per frame, median over 60 frames. Prints per run and over runs (mean and sd): how
often the predicted ``frame_ms`` is within 5% / 10% of the loop, its mean error, the network's
own error inside the loop, the pre/post-processing alone and in the loop, and the frame overhead.
Writes benchmarks/results/bench_frame/DATE.{json,txt}.

    python benchmarks/bench_frame.py                # 3 fresh 1-thread tables (about 10 min)
    python benchmarks/bench_frame.py --runs 1 --frames 5
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import harness  # same folder: where results are written
import numpy as np

BIN = Path(sys.executable).parent / "lutnas"


def one_run(tmp: Path, i: int, args: argparse.Namespace) -> dict:
    db = tmp / f"run{i}.db"
    t0 = time.perf_counter()
    subprocess.run([str(BIN), "profile", "--out", str(db), "--threads", str(args.threads), "--anchors", "0",
                    "--quiet"], check=True, capture_output=True, text=True)
    profile_s = time.perf_counter() - t0
    out = subprocess.run([str(BIN), "latency", "validate", "--table", str(db), "--samples", "10", "--seed", "7",
                          "--frames", str(args.frames), "--noise-runs", "0", "--json", "--quiet"],
                         check=True, capture_output=True, text=True)
    rep = json.loads(out.stdout)
    f = rep["frame"]
    return {"profile_s": profile_s, "network_alone_within_5": rep["within_5"],
            "network_alone_mean_error": rep["mean_error"],
            **{k: v for k, v in f.items() if k != "points"}, "points": f["points"],
            "fps": [1000 / p["measured_frame_ms"] for p in f["points"]]}


ROWS = [("frame_ms within 5%", "within_5", "{:.0%}"), ("frame_ms within 10%", "within_10", "{:.0%}"),
        ("frame_ms mean error", "mean_error", "{:+.1%}"),
        ("network alone (validate) mean error", "network_alone_mean_error", "{:+.1%}"),
        ("network in the loop vs table", "network_mean_error", "{:+.1%}"),
        ("pre/post alone (ms)", "prepost_ms", "{:.2f}"), ("pre/post in the loop (ms)", "prepost_in_loop_ms", "{:.2f}"),
        ("frame overhead used (ms)", "frame_overhead_ms", "{:.2f}")]


def report(runs: list[dict], args: argparse.Namespace) -> str:
    lines = [f"bench_frame {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC: {len(runs)} fresh {args.threads}-thread "
             f"tables, validate --frames {args.frames} (60 frames each, 480x640)",
             f"{'':38}" + "".join(f"{'run ' + str(i + 1):>10}" for i in range(len(runs))) + f"{'mean ± sd':>16}"]
    for label, key, f in ROWS:
        vals = [r[key] for r in runs]
        lines.append(f"{label:38}" + "".join(f"{f.format(v):>10}" for v in vals)
                     + f"{f.format(np.mean(vals)) + ' ± ' + f.replace('+', '').format(np.std(vals, ddof=1) if len(vals) > 1 else 0):>16}")
    fps = [x for r in runs for x in r["fps"]]
    lines.append(f"tracking loop fps over the subnets: {min(fps):.0f}..{max(fps):.0f} (median {np.median(fps):.0f}); "
                 f"profile {np.mean([r['profile_s'] for r in runs]):.0f} s per table")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--frames", type=int, default=10)
    harness.add_arguments(ap)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-frame-") as tmp:
        runs = []
        for i in range(args.runs):
            r = one_run(Path(tmp), i, args)
            runs.append(r)
            print(f"run {i + 1}: frame_ms within 5% {r['within_5']:.0%}, mean error {r['mean_error']:+.1%}", flush=True)
    text = report(runs, args)
    print(text)
    harness.write_result("bench_frame", {"args": vars(args), "runs": runs}, text, harness.variant(ap, args),
                         args.results_dir)


if __name__ == "__main__":
    main()
