"""What a newcomer's ``lutnas demo`` returns, over several seeds: does the front beat its reference?

Runs the real command (``lutnas demo --seed S --workdir WORK/seed-S``, default sizes) once per seed,
each in its own work folder (a rerun reuses what a seed's folder holds), and reads the
``summary.json`` each run writes. Per seed: the held-out AO / SR@0.5 (supernet weights, the same
held-out sequences for every row) of LightTrack-Mobile's path, the front's best-scoring pick and
the front's best at or below Mobile's predicted latency, the static box, and the demo's last table
(the pick and Mobile retrained alone with the same budget and seeds). Then over seeds: how often a
front point at or below Mobile's latency tracks at least as well as Mobile, and the mean ± sd of
each row.

    python benchmarks/bench_demo.py [--seeds 0,1,2] [--work runs/demo]

Writes benchmarks/results/bench_demo/DATE.{json,txt}.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess  # nosec B404: runs this project's own CLI
import sys
import time
from pathlib import Path
from typing import Any

import harness  # same folder: where results are written
import numpy as np

ROWS = ("LightTrack-Mobile", "front's best pick", "best at <= Mobile's ms", "static")


def run_seed(seed: int, work: Path, extra: list[str]) -> dict[str, Any]:
    folder = work / f"seed-{seed}"
    lutnas = str(Path(sys.executable).parent / "lutnas")
    env = {**os.environ, "COLUMNS": "200"}
    t0 = time.perf_counter()
    done = subprocess.run([lutnas, "demo", "--seed", str(seed), "--workdir", str(folder), *extra],  # nosec B603
                          capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    (work / f"seed-{seed}.log").write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        raise SystemExit(f"seed {seed}: lutnas demo exited {done.returncode}; see {work / f'seed-{seed}.log'}")
    return {"seed": seed, "wall_s": wall, **json.loads((folder / "summary.json").read_text())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--work", type=Path, default=Path("runs/demo"))
    ap.add_argument("--demo-args", default="", help="extra options for every lutnas demo run (one string)")
    harness.add_arguments(ap)
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    seeds = [int(s) for s in args.seeds.split(",")]
    runs = []
    for s in seeds:
        print(f"seed {s}: lutnas demo ...", flush=True)
        runs.append(run_seed(s, args.work, args.demo_args.split()))
        print(f"seed {s}: {runs[-1]['wall_s']:.0f} s", flush=True)
    lines: list[str] = []

    def say(msg: str = "") -> None:
        print(msg, flush=True)
        lines.append(msg)

    load = os.getloadavg()
    say(f"# bench_demo {time.strftime('%Y-%m-%d %H:%M')} UTC: lutnas demo (default sizes{', ' + args.demo_args if args.demo_args else ''}) "
        f"for seeds {args.seeds}; load average at the end {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    say("# held out: the demo's test set (a seed neither training nor the search saw), supernet weights, BN "
        "recalibrated per path; 'retrained': the demo's last table (each network alone from the supernet's weights)")
    say()
    say(f"{'seed':>4} {'wall s':>6} {'row':24} {'ms':>6} {'AO':>6} {'SR@0.5':>6}  retrained AO (mean ± sd over seeds)")
    beats = []
    for r in runs:
        ho = r.get("held_out", {})
        cmp_rows = {x["name"]: x for x in (r.get("compare") or {}).get("rows", [])}
        for name in ROWS:
            if name not in ho:
                continue
            h = ho[name]
            ms = f"{h['latency_ms']:6.2f}" if h.get("latency_ms") is not None else f"{'-':>6}"
            key = {"LightTrack-Mobile": "LightTrack-Mobile", "best at <= Mobile's ms": "pick 1"}.get(name)
            c = cmp_rows.get(key) if key else None
            rt = "" if c is None else (f"{c['ao_mean']:.3f}" + ("" if c["ao_sd"] is None else f" ± {c['ao_sd']:.3f}"))
            say(f"{r['seed']:>4} {r['wall_s']:6.0f} {name:24} {ms} {h['ao']:6.3f} {h['sr50']:6.3f}  {rt}")
        fast, mob = ho.get("best at <= Mobile's ms"), ho.get("LightTrack-Mobile")
        beats.append(bool(fast and mob and fast["ao"] >= mob["ao"]))
        for v in (r.get("compare") or {}).get("verdicts", []):
            say(f"{'':>4} {'':>6} retrained verdict: AO {v['ao_diff']:+.3f}"
                + ("" if v["ao_diff_se"] is None else f" ± {v['ao_diff_se']:.3f}") + f": {v['note']}")
    say()
    for name in ROWS:
        v = [r["held_out"][name]["ao"] for r in runs if name in r.get("held_out", {})]
        if v:
            say(f"  {name:24} held-out AO {np.mean(v):.3f} ± {np.std(v, ddof=1) if len(v) > 1 else 0:.3f} "
                f"(n={len(v)} seeds: {' '.join(f'{x:.3f}' for x in v)})")
    diffs = [r["held_out"]["best at <= Mobile's ms"]["ao"] - r["held_out"]["LightTrack-Mobile"]["ao"]
             for r in runs if "best at <= Mobile's ms" in r.get("held_out", {})]
    say(f"  a front point at or below Mobile's predicted latency tracks at least as well as Mobile in "
        f"{sum(beats)} of {len(runs)} seeds; AO difference {np.mean(diffs):+.3f} "
        f"(per seed {' '.join(f'{d:+.3f}' for d in diffs)})" if diffs else "  no seed had a front point at or "
        "below Mobile's latency")
    walls = " ".join(f"{r['wall_s']:.0f}" for r in runs)
    say(f"  demo wall time {np.mean([r['wall_s'] for r in runs]):.0f} s mean ({walls})")
    harness.write_result("bench_demo", {"runs": runs, "beats": beats, "ao_diff": diffs}, "\n".join(lines),
                         harness.variant(ap, args, "seeds"), args.results_dir)


if __name__ == "__main__":
    main()
