"""Cost of scoring one candidate, against the bare forward time of its subnet; training speed.

Prints, for each validation mode: seconds per candidate (BN recalibration included, and without
it), the bare forward time of the extracted subnet over the same inputs (eval mode, no grad, no
cropping), and the ratio of the two (target <= 1.3x). Then training iterations per second.

    python benchmarks/bench_validation.py [--supernet runs/supernet-synth.pt] [--threads 2]

Data defaults to runs/synth-train and runs/synth-val (``lutnas data synth`` makes them). Writes what
it prints to benchmarks/results/bench_validation/DATE.txt (and the run's variant to DATE.json).
"""

from __future__ import annotations

import argparse
import functools
import statistics
import tempfile
import time
from pathlib import Path

import harness  # same folder: where results are written
import torch

from tracking.checkpoint import load_supernet
from tracking.progress import progress_bar
from tracking.space import lighttrack_mobile, sample_many
from tracking.subnet import extract_subnet
from tracking.supernet import Supernet
from tracking.train import TrainConfig, train_supernet
from tracking.tune import tracker_config_from_meta
from tracking.validate import ValidationScorer


def timed(fn, repeat: int = 1) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


@torch.no_grad()
def bare_pairs(sub, pairs, batch: int) -> None:
    n = pairs["box"].shape[0]
    for s in range(0, n, batch):
        sub.track(sub.template_feature(pairs["template"][s:s + batch]), pairs["search"][s:s + batch])


def sequence_inputs(scorer: ValidationScorer) -> list[tuple[torch.Tensor, list[torch.Tensor]]]:
    """Template and search crops along the ground truth (what the tracker feeds the network)."""
    from tracking.crop import context_size, crop_square, normalise

    out = []
    for seq in scorer.sequences:
        n = min(len(seq), scorer.max_frames or len(seq))
        x, y, w, h = seq.boxes[0]
        s_z = context_size(w, h)
        z = torch.from_numpy(normalise(crop_square(seq.load_frame(0), (x + w / 2, y + h / 2), s_z, 128)))[None]
        xs = []
        for i in range(1, n):
            x, y, w, h = seq.boxes[i - 1]
            crop = crop_square(seq.load_frame(i), (x + w / 2, y + h / 2), 2 * context_size(w, h), 256)
            xs.append(torch.from_numpy(normalise(crop))[None])
        out.append((z, xs))
    return out


@torch.no_grad()
def bare_sequences(sub, inputs) -> None:
    for z, xs in inputs:
        zf = sub.template_feature(z)
        for x in xs:
            sub.track(zf, x)


def spread(net, args, tracker) -> None:
    """Scores of N random architectures (seed 0) in both modes; rank agreement of the modes."""
    import numpy as np
    from scipy.stats import spearmanr

    archs = sample_many(args.spread, seed=0, space=net.space)
    scores = {}
    with progress_bar("spread", transient=True) as bar:
        for mode in ("pairs", "sequences"):
            scorer = ValidationScorer(net, args.val_data, mode, bn_data_dir=args.train_data, n_pairs=args.pairs,
                                      bn_batches=args.bn_batches, bn_batch_size=args.bn_batch_size,
                                      max_sequences=args.sequences, max_frames=args.frames, tracker_config=tracker,
                                      progress=bar)
            t = time.perf_counter()
            res = scorer.score_many(archs)
            scores[mode] = np.array([r["score"] for r in res])
            v = scores[mode]
            print(f"[spread {mode}] {len(archs)} archs: min {v.min():.3f} median {np.median(v):.3f} "
                  f"max {v.max():.3f} std {v.std():.3f} ({(time.perf_counter() - t) / len(archs):.1f} s/arch)")
    rho = spearmanr(scores["pairs"], scores["sequences"]).statistic
    print(f"[spread] Spearman rho (pairs vs sequences) over {len(archs)} archs: {rho:.3f}")
    for a, p, q in zip(archs, scores["pairs"], scores["sequences"], strict=True):
        print(f"  {a.to_string()}  pairs {p:.3f}  sequences {q:.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--supernet", type=Path, default=Path("runs/supernet-synth.pt"))
    ap.add_argument("--train-data", type=Path, default=Path("runs/synth-train"))
    ap.add_argument("--val-data", type=Path, default=Path("runs/synth-val"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--candidates", type=int, default=3, help="architectures timed per mode")
    ap.add_argument("--sequences", type=int, default=5)
    ap.add_argument("--frames", type=int, default=50)
    ap.add_argument("--train-iters", type=int, default=6)
    ap.add_argument("--train-rounds", type=int, default=1, help="alternating rounds of the training-speed A/B")
    ap.add_argument("--train-only", action="store_true", help="only the training-speed A/B")
    ap.add_argument("--pairs", type=int, default=256, help="validation pairs (pairs mode)")
    ap.add_argument("--bn-batches", type=int, default=1)
    ap.add_argument("--bn-batch-size", type=int, default=32)
    ap.add_argument("--spread", type=int, default=0,
                    help="also score N random architectures in both modes: spread and Spearman rho")
    ap.add_argument("--skip-timing", action="store_true")
    harness.add_arguments(ap)
    args = ap.parse_args()
    printed = harness.keep_stdout()
    run(args)
    harness.write_result("bench_validation", {},
                         printed.getvalue(), harness.variant(ap, args), args.results_dir)


def run(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    if args.supernet.is_file():
        net, meta = load_supernet(args.supernet)
        tracker = tracker_config_from_meta(meta)
        source = f"{args.supernet} ({'tuned' if tracker else 'default'} tracker settings)"
    else:
        torch.manual_seed(0)
        net, source, tracker = Supernet().eval(), "random init", None
    archs = [lighttrack_mobile(), *sample_many(args.candidates - 1, seed=0)]
    print(f"supernet: {source}; threads {args.threads}; {len(archs)} candidates (LightTrack-Mobile first); "
          f"{args.pairs} pairs, {args.sequences} sequences x {args.frames} frames, "
          f"BN recalibration {args.bn_batches} x {args.bn_batch_size} pairs")

    if args.train_only:
        train_speed(args)
        return
    if args.spread:
        spread(net, args, tracker)
    if args.skip_timing:
        return
    for mode in ("pairs", "sequences"):
        kw = dict(bn_data_dir=args.train_data, max_sequences=args.sequences, max_frames=args.frames,
                  n_pairs=args.pairs, bn_batch_size=args.bn_batch_size, tracker_config=tracker)
        scorer = ValidationScorer(net, args.val_data, mode, bn_batches=args.bn_batches, **kw)
        no_bn = ValidationScorer(net, args.val_data, mode, bn_batches=0, **kw)
        inputs = sequence_inputs(scorer) if mode == "sequences" else scorer.pairs
        what = (f"{scorer.pairs['box'].shape[0]} pairs" if mode == "pairs"
                else f"{sum(len(xs) for _, xs in inputs)} frames of {len(inputs)} sequences")
        rows = []
        for a in archs:
            sub = extract_subnet(net, a).eval()
            if mode == "pairs":
                run_bare = functools.partial(bare_pairs, sub, inputs, scorer.batch_size)
            else:
                run_bare = functools.partial(bare_sequences, sub, inputs)
            run_bare()  # warm-up
            bare = timed(run_bare)
            full = timed(functools.partial(scorer.score, a))
            plain = timed(functools.partial(no_bn.score, a))
            rows.append((full, plain, bare))
        full, plain, bare = (statistics.mean(r[i] for r in rows) for i in range(3))
        print(f"[{mode}] over {what}: {full:.2f} s/candidate (BN recal included), {plain:.2f} s without "
              f"recalibration; bare subnet forward {bare:.2f} s; overhead {full / bare:.2f}x "
              f"({plain / bare:.2f}x without recalibration)")

    train_speed(args)


def train_speed(args) -> None:
    """Training iterations/s with pairs cropped in the loop vs by a worker process, alternating
    runs so host drift hits both alike."""
    rates: dict[int, list[float]] = {0: [], 1: []}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.train_rounds):
            for workers in (0, 1):
                cfg = TrainConfig(epochs=1, iters_per_epoch=args.train_iters, batch_size=8, threads=args.threads,
                                  workers=workers)
                res = train_supernet(args.train_data, Path(tmp) / "bench.pt", cfg, progress=False, overwrite=True)
                rates[workers].append(res["iters_per_s"])
    r0, r1 = statistics.median(rates[0]), statistics.median(rates[1])
    print(f"[train] batch 8, {args.train_iters} iterations x {args.train_rounds} rounds (one checkpoint save each): "
          f"pairs cropped in the loop {r0:.3f} it/s ({1 / r0:.2f} s/it), by a worker {r1:.3f} it/s "
          f"({1 / r1:.2f} s/it): {r1 / r0:.2f}x")


if __name__ == "__main__":
    main()
