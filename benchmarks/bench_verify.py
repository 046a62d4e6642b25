"""Closed loop on a real table: a multi-objective search on a measured table (accuracy: the analytic
surrogate, so no supernet is needed), then ``latency_tables.verify.verify_archs`` measures the
front's graphs on this machine with the table's runtime: predicted vs measured per point, before
and after the calibration refit (leave-one-out figures for the refit).

Works on a copy of the table (the refit is stored in it). Writes
benchmarks/results/bench_verify/DATE.{json,txt}.

    python benchmarks/bench_verify.py --table /tmp/bench_transfer_cpu/source.db [--points 8]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path

import harness  # same folder: where results are written

from latency_tables.predict import LatencyPredictor
from latency_tables.store import LatencyStore
from latency_tables.verify import verify_archs
from search.config import SearchConfig
from search.evaluators import SurrogateAccuracy
from search.runner import run_search
from tracking.space import Architecture, SearchSpace


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--table", type=Path, required=True)
    ap.add_argument("--points", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    harness.add_arguments(ap)
    args = ap.parse_args()
    load_before = os.getloadavg()
    space = SearchSpace.paper()
    with tempfile.TemporaryDirectory(prefix="bench-verify-") as tmp:
        db = Path(tmp) / "t.db"
        for suffix in ("", "-wal", "-shm"):  # SQLite in WAL mode: recent commits live in the -wal file
            if Path(f"{args.table}{suffix}").exists():
                shutil.copy(f"{args.table}{suffix}", f"{db}{suffix}")
        store = LatencyStore(db, create=False)
        name = store.find().name
        pred = LatencyPredictor.from_store(store, name, space)
        budget = pred.fastest()[0] * 1.6
        cfg = SearchConfig(algorithm="pareto", budget_ms=budget, target=name, population=24, generations=4,
                           parents=8, seed=args.seed)
        result = run_search(cfg, SurrogateAccuracy(space), {name: pred})
        front = sorted(result.front, key=lambda r: r.latency_ms[name])
        n = min(args.points, len(front))
        picked = [front[round(i * (len(front) - 1) / max(n - 1, 1))] for i in range(n)]
        archs = [Architecture.parse(r.arch, space) for r in picked]
        rep = verify_archs(store, name, archs, [r.latency_ms[name] for r in picked], budget, space,
                           repeats=args.repeats, seed=args.seed)
    load_after = os.getloadavg()
    lines = [f"bench_verify: table {name} ({args.table}), front of a surrogate-accuracy NSGA-II search under "
             f"{budget:.2f} ms, {n} of {len(front)} points measured in {args.repeats} rounds; load average before "
             f"{load_before[0]:.1f}/{load_before[1]:.1f}/{load_before[2]:.1f}, after {load_after[0]:.1f}/"
             f"{load_after[1]:.1f}/{load_after[2]:.1f} (2-core shared host)",
             f"{'predicted':>10}{'measured':>10}{'refit':>9}{'error':>8}  over budget"]
    for p in rep["points"]:
        lines.append(f"{p['predicted_ms']:>10.2f}{p['measured_ms']:>10.2f}{p['refit_ms']:>9.2f}{p['error']:>+8.1%}  "
                     f"{'yes' if p['over_budget'] else 'no'}")
    for label, a in (("before refit", rep["refit"]["before"]), ("after refit (in-sample)", rep["refit"]["after"]),
                     ("after refit (leave-one-out)", rep["refit"]["after_cv"])):
        lines.append(f"{label:<28} within 5% {a['within_5']:.0%}, within 10% {a['within_10']:.0%}, RMSPE "
                     f"{a['rmspe']:.1%}, mean error {a['mean_error']:+.1%}, Spearman {a['spearman']:.3f}")
    lines.append(f"refit scale {rep['refit']['scale']:.3f}; {rep['broken']} of {n} points break the budget measured")
    text = "\n".join(lines)
    print(text)
    harness.write_result("bench_verify", rep, text, harness.variant(ap, args, "table"), args.results_dir)


if __name__ == "__main__":
    main()
