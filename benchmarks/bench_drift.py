"""Does a latency table stay true after it is profiled? One fresh table, validated again and again.

``lutnas profile --out RUN.db`` (defaults: 1 thread, 5 rounds), then ``lutnas latency validate
--table RUN.db --samples 40 --seed 7 --json`` at each of ``--at`` minutes after the profile ended
(default 0, 10, 30, 60), with no refit in between: exactly the commands a user runs. Prints per
point the table's agreement as profiled (``table_*``), scaled by the probes' host speed
(``drift_*``), by the anchors re-measured then (``anchored_*``), and as the service's drift probes
would have it (``scheduled_*``: scaled by the anchors of the *previous* point when they moved, 1
before; a schedule of rounds at the points, ``server.measurements.drift``), the host speeds and the subnets'
mean error; then the spread over points.
Writes benchmarks/results/bench_drift/DATE.{json,txt}.

    python benchmarks/bench_drift.py                     # 0, 10, 30, 60 minutes (about 70 min)
    python benchmarks/bench_drift.py --at 0,5 --samples 10   # quick look

``--lock FILE``: hold an advisory lock (flock) on FILE while profiling and validating, so other
jobs on a shared host that take the same lock wait for the measurement instead of disturbing it.
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




def validate(db: Path, args: argparse.Namespace) -> dict:
    t0 = time.perf_counter()
    with harness.quiet_host(args.lock):
        load = os.getloadavg()[0]
        out = subprocess.run([str(BIN), "latency", "validate", "--table", str(db), "--samples", str(args.samples),
                              "--seed", str(args.seed), "--json", "--quiet"], check=True, capture_output=True, text=True)
    rep = json.loads(out.stdout)
    rep.update({"validate_s": time.perf_counter() - t0, "load_1min": load})
    return rep


def fmt(rep: dict) -> str:
    rows = [("LUT as profiled", "table_"), ("LUT x probe units", "drift_")]
    if "anchored_within_5" in rep:
        rows.append(("LUT x anchors", "anchored_"))
    if "scheduled_within_5" in rep:
        rows.append(("LUT x last round", "scheduled_"))
    rows.append(("FLOPs fit", "flops_"))
    anchor = f", anchor subnets {rep['anchor_speed']:.3f}" if "anchor_speed" in rep else ""
    lines = [f"{rep['minutes']:.1f} min after profiling: host speed: probe units {rep['host_speed']:.3f}{anchor} "
             f"(now / profiled), retest CV {rep['retest_cv'] or 0:.1%}, load {rep['load_1min']:.2f}, "
             f"validate {rep['validate_s']:.0f} s",
             f"  {'':18}{'within 5%':>10}{'within 10%':>11}{'RMSPE':>8}{'Spearman':>9}{'mean err':>9}"]
    for label, p in rows:
        lines.append(f"  {label:18}{rep[p + 'within_5']:>10.0%}{rep[p + 'within_10']:>11.0%}{rep[p + 'rmspe']:>8.1%}"
                     f"{rep[p + 'spearman']:>9.3f}{rep[p + 'mean_error']:>+9.1%}")
    return "\n".join(lines)


def scheduled(rep: dict, previous: list[dict]) -> dict:
    """Add the service's figures: predictions scaled by the last finished probe round (the previous
    point's anchors, when they agreed the host moved; none before the first)."""
    from latency_tables.fidelity import agreement

    last = previous[0] if previous else {}
    scale = float(last["anchor_speed"]) if last.get("anchor_moved") else 1.0
    fig = agreement(np.asarray(rep["predicted_ms"]) * scale, np.asarray(rep["measured_ms"]))
    return rep | {"scheduled_scale": scale, **{f"scheduled_{k}": v for k, v in fig.items()}}


def _pct(x: float) -> str:
    return f"{x:.1%}"


def summary(reps: list[dict]) -> str:
    lines = [f"over {len(reps)} points (min / median / max):"]
    keys = [("as profiled within 5%", "table_within_5", _pct), ("as profiled within 10%", "table_within_10", _pct),
            ("as profiled mean error", "table_mean_error", lambda x: f"{x:+.1%}"),
            ("x anchors within 5%", "anchored_within_5", _pct), ("x anchors within 10%", "anchored_within_10", _pct),
            ("x last round within 5%", "scheduled_within_5", _pct),
            ("x last round within 10%", "scheduled_within_10", _pct),
            ("probe-unit speed", "host_speed", lambda x: f"{x:.3f}"),
            ("anchor speed", "anchor_speed", lambda x: f"{x:.3f}")]
    for label, key, f in keys:
        if all(key in r for r in reps):
            v = np.array([r[key] for r in reps])
            lines.append(f"  {label:<24}{f(v.min())} / {f(np.median(v))} / {f(v.max())}")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--at", default="0,10,30,60", help="Minutes after profiling to validate at (comma-separated)")
    ap.add_argument("--samples", type=int, default=40)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--lock", type=Path, default=None, help="flock this file while measuring")
    harness.add_arguments(ap)
    args = ap.parse_args()
    points = sorted(float(x) for x in args.at.split(","))
    reps, texts = [], []
    with tempfile.TemporaryDirectory(prefix="bench-drift-") as tmp:
        db = Path(tmp) / "table.db"
        t0 = time.perf_counter()
        with harness.quiet_host(args.lock):
            subprocess.run([str(BIN), "profile", "--out", str(db), "--quiet", "--threads", str(args.threads)], check=True)
        profile_s = time.perf_counter() - t0
        profiled = time.monotonic()
        print(f"profiled in {profile_s:.0f} s", flush=True)
        for m in points:
            time.sleep(max(0.0, profiled + 60 * m - time.monotonic()))
            start = (time.monotonic() - profiled) / 60
            reps.append(scheduled(validate(db, args) | {"minutes": start, "planned_minutes": m}, reps[-1:]))
            texts.append(fmt(reps[-1]))
            print(texts[-1], flush=True)
    header = (f"bench_drift: lutnas profile --threads {args.threads} ({profile_s:.0f} s), then lutnas latency validate "
              f"--samples {args.samples} --seed {args.seed} at {args.at} minutes after profiling, no refit "
              f"(2-core shared host, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})")
    text = "\n\n".join([header, *texts, summary(reps)]) + "\n"
    print(summary(reps))
    harness.write_result("bench_drift", {"args": {k: str(v) for k, v in vars(args).items()},
                                         "profile_s": profile_s, "points": reps},
                         text, harness.variant(ap, args), args.results_dir)


if __name__ == "__main__":
    main()
