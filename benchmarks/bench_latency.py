"""Latency lookup table figures: profiling time, fidelity against end-to-end runs, and prediction
throughput (onnxruntime CPU execution provider on this machine).

For each thread count: profile every unit of the space into a fresh SQLite table (timed), measure
``--samples`` random subnets' search graphs end to end with identical session options, and print
the share predicted within +-5% / +-10%, RMSPE and Spearman next to the FLOPs proxy (least-squares
fit of latency on MACs, in-sample) and the noise floor (run-to-run spread of one model). The
table's prediction ("LUT + layout") removes the layout reorders a unit pays only when measured
alone (``latency_tables.layout``); the plain unit sum is printed beside it. A linear
calibration is also fitted on ``--calib-samples`` other subnets and its figures printed.

    python benchmarks/bench_latency.py                       # full run (quiet machine)
    python benchmarks/bench_latency.py --samples 20 --threads 1   # quick look
    python benchmarks/bench_latency.py --threads 2 --runs 3       # noisy 2-thread case: median of 3 runs

Writes what it prints and every figure to benchmarks/results/bench_latency/DATE.{txt,json}.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import harness  # same folder: where results are written
import numpy as np

from latency_tables.calibrate import fit_calibration
from latency_tables.fidelity import (
    agreement,
    export_probes,
    export_search_graphs,
    flops_proxy,
    host_speed,
    measure_models,
    measure_with_probes,
    noise_floor,
)
from latency_tables.predict import LatencyPredictor
from latency_tables.profile import profile_units
from latency_tables.store import LatencyStore
from latency_tables.units import all_units, export_unit_onnx, unit_filename
from profilers import Protocol, get_backend, measure
from profilers.measure import ROUND_STATS, auto_flush_bytes, combine_rounds
from tracking.flops import count_flops_params
from tracking.space import SearchSpace, sample_many, to_genes


def interleaved_jobs(jobs: list[tuple], rounds: int, seed: int, progress: bool = False) -> np.ndarray:
    """Median of each ``(backend, path, protocol)`` job in each of ``rounds`` rounds ([rounds, jobs]),
    every round in a fresh random order of ALL jobs: on a shared machine, load drifts then hit
    every kind of model (units, whole graphs, variants) alike instead of biasing one against another."""
    rng = np.random.default_rng(seed)
    out = np.zeros((rounds, len(jobs)))
    for r in range(rounds):
        for i in rng.permutation(len(jobs)):
            backend, path, protocol = jobs[i]
            out[r, i] = measure(backend, path, protocol, seed).median_ms
        if progress:
            print(f"round {r + 1}/{rounds} done", flush=True)
    return out


def interleaved_rounds(backend, paths: list[Path], protocol: Protocol, rounds: int, seed: int) -> np.ndarray:
    """:func:`interleaved_jobs` for one backend and protocol over ``paths``."""
    return interleaved_jobs([(backend, p, protocol) for p in paths], rounds, seed)


def _row(label: str, a: dict) -> str:
    return f"  {label:24}{a['within_5']:>9.1%}{a['within_10']:>11.1%}{a['rmspe']:>8.1%}{a['spearman']:>10.3f}"


def one_run(args, threads: int, space: SearchSpace, units: list, archs: list, calib_archs: list, flops: np.ndarray,
            val_paths: list[Path], cal_paths: list[Path], protocol: Protocol, tmp: Path) -> dict:
    """Profile a fresh table for ``threads``, measure the subnets, print and return the figures."""
    tmp.mkdir(parents=True, exist_ok=True)
    repeats = args.repeats or args.profile_rounds
    backend = get_backend("onnxruntime", threads=threads)
    store = LatencyStore(tmp / f"lut-t{threads}.db")
    t0 = time.perf_counter()
    rep = profile_units(store, backend, units, name=f"bench-t{threads}", protocol=protocol,
                        seed=args.seed, rounds=args.profile_rounds, round_stat=args.round_stat)
    profile_s = time.perf_counter() - t0
    pred = LatencyPredictor.from_store(store, rep.table.name, space)
    # as a user would: calibrate right after profiling (`lutnas latency calibrate`), then validate
    cal_measured = measure_models(backend, cal_paths, protocol, repeats, args.seed, round_stat=args.round_stat)
    keys, probe_paths = export_probes(pred.medians, args.probes, tmp / "probes", args.seed)
    measured, probe_now, retest = measure_with_probes(backend, val_paths, probe_paths, protocol, repeats,
                                                      seed=args.seed, round_stat=args.round_stat)
    speed = host_speed(probe_now, np.array([pred.medians[k] for k in keys]))
    noise = noise_floor(backend, val_paths[0], protocol, runs=5, seed=args.seed)

    raw = pred.predict_batch(archs)  # the table's prediction: unit sum with the layout correction
    calib = fit_calibration(pred, calib_archs, cal_measured)
    cal_pred = pred.with_calibration(calib).predict_batch(archs)
    fp, fit = flops_proxy(flops, measured)
    fig = {"plain": agreement(pred.plain().predict_batch(archs), measured),
           "raw": agreement(raw, measured), "calibrated": agreement(cal_pred, measured),
           "drift": agreement(raw * speed, measured), "host_speed": speed, "flops": agreement(fp, measured)}
    if args.rounds:
        unit_paths = [export_unit_onnx(u, tmp / "units" / unit_filename(u), args.seed) for u in units]
        both = combine_rounds(interleaved_rounds(backend, unit_paths + val_paths + cal_paths, protocol,
                                                 args.rounds, args.seed), args.round_stat)
        nu, nv = len(units), len(val_paths)
        inter = LatencyPredictor(dict(zip([u.key for u in units], both[:nu], strict=True)),
                                 space, pred.overhead_ms, layouts=pred.layouts)
        inter_measured = both[nu : nu + nv]
        inter_calib = fit_calibration(inter, calib_archs, both[nu + nv :])
        inter_cal = inter.with_calibration(inter_calib)
        fig["interleaved_plain"] = agreement(inter.plain().predict_batch(archs), inter_measured)
        fig["interleaved"] = agreement(inter.predict_batch(archs), inter_measured)
        fig["interleaved_calibrated"] = agreement(inter_cal.predict_batch(archs), inter_measured)
        fig["interleaved_flops"] = agreement(flops_proxy(flops, inter_measured)[0], inter_measured)
        fig["interleaved_calibration"] = inter_calib

    genes = np.array([to_genes(a, space) for a in sample_many(1000, 1, space)] * 100)
    pred.predict_genes(genes)  # warm
    t = time.perf_counter()
    for _ in range(5):
        pred.predict_genes(genes)
    per_s = 5 * len(genes) / (time.perf_counter() - t)

    print(f"\n== onnxruntime CPU EP, {threads} thread(s), {repeats} round(s) per subnet, "
          f"{args.round_stat} round ==")
    print(f"profiled {len(rep.measured)} units x {args.profile_rounds} round(s) in {profile_s:.1f} s (export {rep.export_s:.1f} s, "
          f"measure {rep.measure_s:.1f} s); per-run overhead {rep.table.overhead_ms * 1000:.1f} us")
    print(f"end-to-end latency: median {np.median(measured):.2f} ms "
          f"(min {measured.min():.2f}, max {measured.max():.2f})")
    print(f"  {'predictor':24}{'within 5%':>9}{'within 10%':>11}{'RMSPE':>8}{'Spearman':>10}")
    print(_row("LUT plain unit sum", fig["plain"]))
    print(_row("LUT + layout (raw)", fig["raw"]))
    print(_row(f"LUT calibrated (n={args.calib_samples})", fig["calibrated"]))
    print(_row(f"LUT x host drift ({len(keys)} pr.)", fig["drift"]))
    print(_row("FLOPs, least squares", fig["flops"]))
    print(f"  host drift since profiling: probes ran at {speed:.3f}x their table time; mean error "
          f"x drift {fig['drift']['mean_error']:+.1%}")
    print(f"  mean error: plain {fig['plain']['mean_error']:+.1%}, raw {fig['raw']['mean_error']:+.1%}, calibrated "
          f"{fig['calibrated']['mean_error']:+.1%}; calibration {calib['coef']} + {calib['intercept']:.3f} ms")
    if args.rounds:
        print(f"  interleaved, {args.rounds} round(s) (units and graphs shuffled together, "
              f"{args.round_stat} round):")
        print(_row("LUT plain unit sum", fig["interleaved_plain"]))
        print(_row("LUT + layout (raw)", fig["interleaved"]))
        print(_row(f"LUT calibrated (n={args.calib_samples})", fig["interleaved_calibrated"]))
        print(_row("FLOPs, least squares", fig["interleaved_flops"]))
        print(f"  mean error: plain {fig['interleaved_plain']['mean_error']:+.1%}, "
              f"raw {fig['interleaved']['mean_error']:+.1%}, calibrated "
              f"{fig['interleaved_calibrated']['mean_error']:+.1%}")
    print(f"  noise floor: run-to-run CV {noise['noise_cv']:.1%}, range {noise['noise_range']:.1%} "
          f"over 5 back-to-back runs of one subnet; retest CV {retest:.1%} (probe units "
          f"re-measured through the run)")
    print(f"predictions: {per_s / 1e6:.2f} M/s on a {len(genes)}-row batch "
          f"(fastest reachable: {pred.fastest()[0]:.2f} ms)")
    return {
        "repeats": repeats, "profile_s": profile_s, "export_s": rep.export_s, "measure_s": rep.measure_s,
        "overhead_ms": rep.table.overhead_ms, **{k: v for k, v in fig.items()}, "flops_fit": fit,
        "calibration": calib, **noise, "retest_cv": retest, "round_stat": args.round_stat,
        "predictions_per_s": per_s,
        "measured_ms": measured.tolist(), "raw_ms": raw.tolist()}


SUMMARY = (("plain", "LUT plain unit sum"), ("raw", "LUT + layout (raw)"), ("calibrated", "LUT calibrated"),
           ("drift", "LUT x host drift"), ("flops", "FLOPs, least squares"),
           ("interleaved", "LUT + layout, interleaved"), ("interleaved_flops", "FLOPs, interleaved"))
FIGURES = ("within_5", "within_10", "rmspe", "spearman", "mean_error")


def median_of_runs(runs: list[dict]) -> dict:
    """Per predictor, the median over runs of each agreement figure (and of the noise figures)."""
    out = {name: {f: float(np.median([r[name][f] for r in runs])) for f in FIGURES}
           for name, _ in SUMMARY if name in runs[0]}
    for k in ("noise_cv", "retest_cv", "profile_s", "host_speed"):
        out[k] = float(np.median([r[k] for r in runs]))
    return out


def print_median_of_runs(threads: int, runs: list[dict], med: dict) -> None:
    print(f"\n== {threads} thread(s): median of {len(runs)} runs (each: a fresh profile, then the subnets) ==")
    print(f"  {'predictor':24}{'within 5%':>9}{'within 10%':>11}{'RMSPE':>8}{'Spearman':>10}")
    for name, label in SUMMARY:
        if name in med:
            print(_row(label, med[name]) + "   runs within 10%: "
                  + ", ".join(f"{r[name]['within_10']:.0%}" for r in runs))
    print(f"  noise: run-to-run CV {med['noise_cv']:.1%}, retest CV {med['retest_cv']:.1%}; "
          f"host speed vs profile {med['host_speed']:.3f}x; profiling {med['profile_s']:.0f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=100, help="random subnets measured end to end")
    ap.add_argument("--calib-samples", type=int, default=12, help="other subnets used to fit a calibration")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--runs", type=int, default=1,
                    help="whole runs per thread count (fresh profile + subnets each); prints their median")
    ap.add_argument("--repeats", type=int, default=None,
                    help="end-to-end rounds per subnet; default: --profile-rounds")
    ap.add_argument("--rounds", type=int, default=3,
                    help="rounds of the interleaved measurement (units and graphs shuffled together); 0 skips it")
    ap.add_argument("--space", choices=["paper", "code"], default="paper")
    ap.add_argument("--profile-rounds", type=int, default=3, help="lutnas profile --rounds of the plain pass")
    ap.add_argument("--round-stat", choices=ROUND_STATS, default="min",
                    help="how rounds combine, for units and subnets alike (lutnas profile --round-stat)")
    ap.add_argument("--probes", type=int, default=6, help="table units re-measured between the subnets (host drift)")
    ap.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                    help="cpu: process CPU time, robust on a shared machine (meaningful for 1 thread)")
    ap.add_argument("--flush-kib", type=int, default=None,
                    help="bytes read before each run to evict L2 (default: 4 x L2; 0 disables)")
    ap.add_argument("--warm-inputs", action="store_true", help="Protocol.warm_inputs (see bench_warm_inputs.py)")
    ap.add_argument("--min-time", type=float, default=0.15)
    ap.add_argument("--max-time", type=float, default=0.5)
    ap.add_argument("--seed", type=int, default=0)
    harness.add_arguments(ap)
    args = ap.parse_args()
    printed = harness.keep_stdout()

    import torch

    torch.set_num_threads(1)
    space = SearchSpace.paper() if args.space == "paper" else SearchSpace.code()
    flush = auto_flush_bytes() if args.flush_kib is None else args.flush_kib * 1024
    protocol = Protocol(min_time_s=args.min_time, max_time_s=args.max_time, clock=args.clock, flush_bytes=flush,
                        warm_inputs=args.warm_inputs)
    units = all_units(space)
    archs = sample_many(args.samples, args.seed, space)
    calib_archs = sample_many(args.calib_samples, args.seed + 10_000, space)
    flops = np.array([count_flops_params(a, space)[0] for a in archs], float)
    results: dict = {"space": args.space, "units": len(units), "samples": args.samples, "clock": args.clock,
                     "flush_bytes": flush}
    print(f"space {args.space}: {len(units)} distinct units; {args.samples} validation subnets "
          f"+ {args.calib_samples} calibration subnets; clock {args.clock}; "
          f"cache flush {flush // 1024} KiB before each run")

    with tempfile.TemporaryDirectory(prefix="bench-latency-") as tmp:
        t0 = time.perf_counter()
        paths = export_search_graphs(archs + calib_archs, Path(tmp) / "e2e", space, args.seed)
        print(f"exported {len(paths)} search graphs in {time.perf_counter() - t0:.1f} s")
        val_paths, cal_paths = paths[: len(archs)], paths[len(archs):]

        for threads in args.threads:
            runs = []
            for r in range(args.runs):
                if args.runs > 1:
                    print(f"\n-- run {r + 1} of {args.runs} --")
                runs.append(one_run(args, threads, space, units, archs, calib_archs, flops, val_paths, cal_paths,
                                    protocol, Path(tmp) / f"t{threads}-run{r}"))
            if args.runs == 1:
                results[f"threads_{threads}"] = runs[0]
            else:
                med = median_of_runs(runs)
                results[f"threads_{threads}"] = {"runs": runs, "median": med}
                print_median_of_runs(threads, runs, med)
    harness.write_result("bench_latency", results,
                         printed.getvalue(), harness.variant(ap, args), args.results_dir)


if __name__ == "__main__":
    main()
