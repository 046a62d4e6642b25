"""Does this machine slow down under sustained load? The question behind a table that is off
right after profiling and true again half an hour later (docs/latency.md, bench_drift).

One mid-sized search graph and two table units (a small and a large one) are timed in turn, each
with the table's default protocol, back to back for ``--load`` seconds (the machine busy on one
core, as during ``lutnas profile``); then the machine idles ``--idle`` seconds and the same three
models are timed again for ``--after`` seconds. Prints, per window of ``--window`` seconds, each
model's median time relative to its first window: a steady rise during the load that an idle
spell undoes is a sustained-load slowdown (power or thermal budget of the host's cores), which a
table profiled from idle and validated after minutes of load will show as under-prediction.
Writes benchmarks/results/bench_sustained/DATE.{json,txt}.

    python benchmarks/bench_sustained.py                      # 240 s load, 180 s idle, 60 s after
    python benchmarks/bench_sustained.py --load 60 --idle 30 --after 20
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import tempfile
import time
from pathlib import Path

import harness  # same folder: where results are written
import numpy as np

from latency_tables.fidelity import export_search_graphs
from latency_tables.units import all_units, export_unit_onnx, unit_filename
from profilers.backends import get_backend
from profilers.measure import Protocol, measure
from tracking.space import SearchSpace, sample_many


def models(tmp: Path, space: SearchSpace) -> dict[str, Path]:
    units = sorted(all_units(space), key=lambda u: u.key)
    small = next(u for u in units if u.kind == "head")
    large = max((u for u in units if u.kind == "mbconv"), key=lambda u: u.shape[1] * u.shape[0] * u.expansion)
    graph = export_search_graphs(sample_many(1, 7, space), tmp / "graphs", space)[0]
    return {"subnet": graph, "unit small": export_unit_onnx(small, tmp / unit_filename(small)),
            "unit large": export_unit_onnx(large, tmp / unit_filename(large))}


def timed(backend, paths: dict[str, Path], seconds: float, phase: str, t_start: float) -> list[dict]:
    rows, end = [], time.perf_counter() + seconds
    while time.perf_counter() < end:
        for name, path in paths.items():
            m = measure(backend, path, Protocol())
            rows.append({"phase": phase, "t": time.perf_counter() - t_start, "model": name, "ms": m.median_ms,
                         "other_load": m.env.get("conditions", {}).get("other_load_cores"),
                         "load_1m": os.getloadavg()[0]})
    return rows


def windows(rows: list[dict], width: float) -> list[dict]:
    out = []
    names = sorted({r["model"] for r in rows})
    base = {n: np.median([r["ms"] for r in rows if r["model"] == n and r["t"] < width]) for n in names}
    for phase in ("load", "after"):
        ph = [r for r in rows if r["phase"] == phase]
        if not ph:
            continue
        t0 = min(r["t"] for r in ph)
        for k in range(int((max(r["t"] for r in ph) - t0) // width) + 1):
            w = [r for r in ph if t0 + k * width <= r["t"] < t0 + (k + 1) * width]
            if w:
                out.append({"phase": phase, "t": round(t0 + k * width), **{
                    n: float(np.median([r["ms"] for r in w if r["model"] == n]) / base[n])
                    for n in names if any(r["model"] == n for r in w)}})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--load", type=float, default=240)
    ap.add_argument("--idle", type=float, default=180)
    ap.add_argument("--after", type=float, default=60)
    ap.add_argument("--window", type=float, default=30)
    ap.add_argument("--threads", type=int, default=1)
    harness.add_arguments(ap)
    args = ap.parse_args()
    backend = get_backend("onnxruntime", threads=args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        paths = models(Path(tmp), SearchSpace.paper())
        t0 = time.perf_counter()
        rows = timed(backend, paths, args.load, "load", t0)
        time.sleep(args.idle)
        rows += timed(backend, paths, args.after, "after", t0)
    names = sorted(paths)
    lines = [f"bench_sustained {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC: {args.load:g} s of back-to-back "
             f"measurements, {args.idle:g} s idle, {args.after:g} s more; {args.threads} thread(s); median per "
             f"{args.window:g} s window / the first window's",
             f"{'phase':7}{'t (s)':>7}" + "".join(f"{n:>12}" for n in names)]
    for w in windows(rows, args.window):
        lines.append(f"{w['phase']:7}{w['t']:>7}" + "".join(f"{w[n]:>12.3f}" if n in w else f"{'-':>12}" for n in names))
    text = "\n".join(lines)
    print(text)
    harness.write_result("bench_sustained", {"args": vars(args), "rows": rows}, text,
                         harness.variant(ap, args), args.results_dir)


if __name__ == "__main__":
    main()
