"""The default profile-then-validate flow, run after run, as a new user runs it.

Each run: ``lutnas profile --out RUN.db`` (defaults: 1 thread, 5 rounds) into a fresh table, then
``lutnas latency validate --table RUN.db --samples 40 --seed 7 --json`` (defaults: the table's
rounds, 12 probe units for the host's speed). Prints per run the table's agreement as profiled
(the headline, ``table_*``) and scaled by the probes' host speed (``drift_*``), the FLOPs fit,
p90 agreement, the probes' host speed, and the error per output stage and head choice
(``by_class``); then the spread over runs. Writes benchmarks/results/bench_default_flow/DATE.{json,txt}.
(Results written before 2026-12-02 09:15 came from a validate whose headline was scaled when the
probes agreed; their "LUT (normalised)" rows are that headline.)

    python benchmarks/bench_default_flow.py              # 3 runs
    python benchmarks/bench_default_flow.py --runs 1 --samples 10   # quick look
    python benchmarks/bench_default_flow.py --neighbour

``--neighbour``: a noisy host on purpose: a second process multiplies 512x512 matrices in a loop
on one thread (numpy, seeded) for the whole run, as another tenant on the other core would.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import harness  # same folder: where results are written
import numpy as np

BIN = Path(sys.executable).parent / "lutnas"
NEIGHBOUR = "import numpy as np\na = np.random.default_rng(0).random((512, 512))\nwhile True:\n    a = a @ a / 512\n"


def one_run(db: Path, args: argparse.Namespace) -> dict:
    t0 = time.perf_counter()
    subprocess.run([str(BIN), "profile", "--out", str(db), "--quiet", "--threads", str(args.threads),
                    "--rounds", str(args.rounds)], check=True)
    profile_s = time.perf_counter() - t0
    out = subprocess.run([str(BIN), "latency", "validate", "--table", str(db), "--samples", str(args.samples),
                          "--seed", str(args.seed), "--json", "--quiet"], check=True, capture_output=True, text=True)
    rep = json.loads(out.stdout)
    rep.update({"profile_s": profile_s, "validate_s": time.perf_counter() - t0 - profile_s})
    return rep


def fmt(i: int, rep: dict) -> str:
    rows = (("LUT as profiled", "table_"), ("LUT x host speed", "drift_"), ("FLOPs fit", "flops_"))
    lines = [f"run {i}: host speed {rep['host_speed']:.3f} (probes vs profile), retest CV {rep['retest_cv'] or 0:.1%}, "
             f"profile {rep['profile_s']:.0f} s, validate {rep['validate_s']:.0f} s",
             f"  {'':18}{'within 5%':>10}{'within 10%':>11}{'RMSPE':>8}{'Spearman':>9}{'mean err':>9}"]
    for label, p in rows:
        lines.append(f"  {label:18}{rep[p + 'within_5']:>10.0%}{rep[p + 'within_10']:>11.0%}{rep[p + 'rmspe']:>8.1%}"
                     f"{rep[p + 'spearman']:>9.3f}{rep[p + 'mean_error']:>+9.1%}")
    a = rep["stats"]["p90"]
    lines.append(f"  {'LUT p90':18}{a['within_5']:>10.0%}{a['within_10']:>11.0%}{a['rmspe']:>8.1%}"
                 f"{a['spearman']:>9.3f}{a['mean_error']:>+9.1%}")
    for kind, classes in rep["by_class"].items():
        lines.append(f"  {kind:<11}" + "; ".join(f"{v}: {c['mean_error']:+.1%} (w5 {c['within_5']:.0%}, n={c['n']})"
                                                 for v, c in classes.items()))
    return "\n".join(lines)


def summary(reps: list[dict]) -> str:
    lines = [f"over {len(reps)} runs (min / median / max):"]
    for label, key in (("as profiled within 5%", "table_within_5"), ("as profiled within 10%", "table_within_10"),
                       ("as profiled RMSPE", "table_rmspe"), ("x host speed within 5%", "drift_within_5"),
                       ("x host speed within 10%", "drift_within_10"), ("FLOPs within 5%", "flops_within_5"),
                       ("host speed", "host_speed")):
        v = np.array([r[key] for r in reps])
        fmt_v = (lambda x: f"{x:.3f}") if key == "host_speed" else (lambda x: f"{x:.1%}")
        lines.append(f"  {label:<24}{fmt_v(v.min())} / {fmt_v(np.median(v))} / {fmt_v(v.max())}")
    for kind in ("out_stage", "cls_width", "reg_width"):
        classes = sorted({c for r in reps for c in r["by_class"][kind]})
        cells = []
        for c in classes:
            errs = [r["by_class"][kind][c]["mean_error"] for r in reps if c in r["by_class"][kind]]
            cells.append(f"{c}: {np.mean(errs):+.1%} ({', '.join(f'{e:+.1%}' for e in errs)})")
        lines.append(f"  mean error by {kind}: " + "; ".join(cells))
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--samples", type=int, default=40)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=5, help="lutnas profile --rounds (validate follows the table)")
    ap.add_argument("--neighbour", action="store_true", help="Run a CPU-bound neighbour process meanwhile")
    harness.add_arguments(ap)
    args = ap.parse_args()
    load_before = os.getloadavg()
    reps, texts = [], []
    neighbour = subprocess.Popen([sys.executable, "-c", NEIGHBOUR], env={**os.environ, "OMP_NUM_THREADS": "1",
                                                                         "OPENBLAS_NUM_THREADS": "1"}) \
        if args.neighbour else None
    try:
        with tempfile.TemporaryDirectory(prefix="bench-flow-") as tmp:
            for i in range(1, args.runs + 1):
                reps.append(one_run(Path(tmp) / f"run{i}.db", args))
                texts.append(fmt(i, reps[-1]))
                print(texts[-1], flush=True)
    finally:
        if neighbour:
            neighbour.kill()
    load_after = os.getloadavg()
    header = (f"bench_default_flow: lutnas profile (--threads {args.threads} --rounds {args.rounds}) then lutnas latency validate "
              f"--samples {args.samples} --seed {args.seed}, {args.runs} runs, each on a fresh table"
              f"{'; a CPU-bound neighbour process (512x512 matmul loop, 1 thread) running throughout' if args.neighbour else ''}; load average "
              f"before {load_before[0]:.1f}/{load_before[1]:.1f}/{load_before[2]:.1f}, after "
              f"{load_after[0]:.1f}/{load_after[1]:.1f}/{load_after[2]:.1f} (2-core shared host)")
    text = "\n\n".join([header, *texts, summary(reps)]) + "\n"
    print(summary(reps))
    harness.write_result("bench_default_flow", {"args": vars(args), "load_before": load_before,
                                                "load_after": load_after, "runs": reps},
                         text, harness.variant(ap, args), args.results_dir)


if __name__ == "__main__":
    main()
