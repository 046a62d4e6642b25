"""Learning curve of the training recipe: held-out tracking of LightTrack-Mobile's path while the
supernet trains, against a box that never moves.

Trains with ``tracking.train.recipe_config(--recipe)`` (default ``mobile``: Mobile's path half the
iterations, the recipe its published figures came from; ``ranking`` is what the demo now trains) on synthetic training data and,
every ``--eval-every`` iterations, tracks the held-out sequences (a seed never used in training)
with Mobile's path (BN recalibrated on training pairs; the recipe's tracker settings) and prints
AO, SR@0.5, SR@0.75 and the median |log(predicted area / true area)| over all frames after the
first, beside the same for the static box. Training stops at ``--iterations`` or when the
training time (evaluation excluded) reaches ``--minutes``, whichever comes first.

    python experiments/bench_learning_curve.py [--minutes 10] [--eval-every 100] [--threads 2]

Writes what it prints, line by line as it goes, to experiments/results/bench_learning_curve/DATE.txt
(the run's variant in DATE.json).

Data (generated when absent): training ``--train-seed 1`` (60 x 100 frames), held-out
``--val-seed 2`` (20 x 100 frames; the curve uses the first ``--val-sequences``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from size_levers import LEVERS  # same folder: the experimental levers
from size_levers import apply as apply_lever

from tracking.bn import recalibrated
from tracking.checkpoint import load_supernet
from tracking.data import PairConfig, PairDataset, collate, generate_synthetic, read_dataset
from tracking.metrics import got10k_scores, sequence_ious
from tracking.space import Architecture, lighttrack_mobile
from tracking.tracker import Tracker, TrackerConfig, log_area_errors, track_sequence
from tracking.train import recipe_config, recipe_tracker, train_supernet
from tracking.validate import static_box_scores

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: benchmarks.harness
from benchmarks import harness  # noqa: E402 - a script folder, not an installed package


def held_out_scores(supernet: torch.nn.Module, arch: Architecture, sequences: list[Any],
                    bn_batches: list[tuple[torch.Tensor, torch.Tensor]], tracker: TrackerConfig,
                    max_frames: int | None) -> dict[str, float]:
    """GOT-10k AO/SR of ``arch`` tracking ``sequences`` plus the median |log area ratio|."""
    ious, errs = [], []
    with recalibrated(supernet, arch, bn_batches):
        for seq in sequences:
            boxes, sizes = track_sequence(Tracker((supernet, arch), tracker), seq, max_frames)
            h, w = seq.load_frame(0).shape[:2]
            ious.append(sequence_ious(boxes, seq.boxes[:len(boxes)], bound=(w, h)))
            errs.append(log_area_errors(sizes, seq.boxes))
    res = got10k_scores(ious)
    res["size_err"] = float(np.median(np.concatenate(errs)))
    return res


@torch.no_grad()
def regression_slope(supernet: torch.nn.Module, arch: Architecture, pairs: dict[str, torch.Tensor],
                     bn_batches: list[tuple[torch.Tensor, torch.Tensor]]) -> float:
    """Slope of log predicted area on log true area at the cell nearest each target's centre, on
    held-out pairs with wide scale jitter: 0 for a size-blind regressor, 1 for a perfect one."""
    with recalibrated(supernet, arch, bn_batches):
        _, reg = supernet(pairs["template"], pairs["search"], arch)
    box = pairs["box"]
    cx, cy = (box[:, 0] + box[:, 2]) / 2, (box[:, 1] + box[:, 3]) / 2
    j = ((cx - 8) / 16).round().clamp(0, 15).long()
    i = ((cy - 8) / 16).round().clamp(0, 15).long()
    ltrb = reg[torch.arange(len(box)), :, i, j]
    pred = torch.log((ltrb[:, 0] + ltrb[:, 2]) * (ltrb[:, 1] + ltrb[:, 3]))
    true = torch.log((box[:, 2] - box[:, 0]) * (box[:, 3] - box[:, 1]))
    return float(np.polyfit(true.numpy(), pred.numpy(), 1)[0])


def static_size_error(sequences: list[Any], max_frames: int | None) -> float:
    """Median |log area ratio| of a box that keeps the first frame's size."""
    errs = []
    for seq in sequences:
        n = len(seq) if not max_frames else min(len(seq), max_frames)
        errs.append(log_area_errors(np.repeat(seq.boxes[:1, 2:], n, axis=0), seq.boxes[:n]))
    return float(np.median(np.concatenate(errs)))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=Path("runs/learning-curve"))
    ap.add_argument("--train", type=Path, default=None, help="training data (default WORK/train, generated)")
    ap.add_argument("--val", type=Path, default=None, help="held-out data (default WORK/val, generated)")
    ap.add_argument("--train-seed", type=int, default=1)
    ap.add_argument("--val-seed", type=int, default=2)
    ap.add_argument("--train-sequences", type=int, default=60)
    ap.add_argument("--train-frames", type=int, default=100)
    ap.add_argument("--val-sequences", type=int, default=10)
    ap.add_argument("--val-frames", type=int, default=100)
    ap.add_argument("--iterations", type=int, default=None, help="planned iterations (default: the recipe's)")
    ap.add_argument("--minutes", type=float, default=10.0,
                    help="wall-clock training budget (evaluation excluded); 0: no limit, run --iterations")
    ap.add_argument("--eval-every", type=int, default=100)
    ap.add_argument("--recipe", default="mobile", help="tracking.train.RECIPES name (mobile, ranking)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=JSON",
                    help="override a TrainConfig field of the recipe, e.g. --set focus_prob=0.5")
    ap.add_argument("--tracker", default=None, help="tracker settings as JSON (default: the recipe's)")
    ap.add_argument("--sizing-tracker", default='{"lr": 0.3, "window_influence": 0.5, "penalty_k": 0.05, '
                    '"calibrate_size": true}', help="a second tracker that updates the size ('' to skip)")
    ap.add_argument("--lever", choices=sorted(LEVERS), default=None,
                    help="an experimental size lever (experiments/size_levers.py), not part of the recipe")
    harness.add_arguments(ap, harness.EXPERIMENTS)
    args = ap.parse_args(argv)
    if args.lever:
        apply_lever(args.lever)

    torch.set_num_threads(args.threads)
    lines: list[str] = []
    written: Path | None = None

    def say(s: str) -> None:  # every line written as it comes: a long curve keeps what it has
        nonlocal written
        print(s, flush=True)
        lines.append(s)
        written = harness.write_result("bench_learning_curve", {}, "\n".join(lines), harness.variant(ap, args),
                                       args.results_dir, written)

    work = args.work
    train_dir = args.train or work / "train"
    val_dir = args.val or work / "val"
    for d, seed, n, f in ((train_dir, args.train_seed, args.train_sequences, args.train_frames),
                          (val_dir, args.val_seed, max(args.val_sequences, 1), args.val_frames)):
        if not (d / "list.txt").is_file():
            generate_synthetic(d, n, f, seed=seed, progress=False)
    overrides = {k: json.loads(v) for k, v in (s.split("=", 1) for s in args.set)}
    if args.iterations:
        overrides["iters_per_epoch"] = args.iterations
    cfg = recipe_config(args.recipe, seed=args.seed, threads=args.threads, **overrides)
    tracker = TrackerConfig(**json.loads(args.tracker)) if args.tracker else recipe_tracker()
    sizing = TrackerConfig(**json.loads(args.sizing_tracker)) if args.sizing_tracker else None
    arch = lighttrack_mobile()
    val = read_dataset(val_dir, on_error="skip").sequences[:args.val_sequences]
    bn_pairs = PairDataset(read_dataset(train_dir, on_error="skip"), 64, seed=args.seed + 1)
    bn_batches = [(b["template"], b["search"]) for b in (collate([bn_pairs[i * 32 + k] for k in range(32)])
                                                         for i in range(2))]
    static = static_box_scores(val, args.val_frames)
    probe_set = PairDataset(read_dataset(val_dir, on_error="skip"), 128, seed=args.seed + 7,
                            config=PairConfig(max_scale=0.4))
    probe = collate([probe_set[i] for i in range(len(probe_set))])
    say(f"# bench_learning_curve {time.strftime('%Y-%m-%d %H:%M')} UTC, torch threads {args.threads}")
    say(f"# train {train_dir} (seed {args.train_seed}), held out {val_dir} (seed {args.val_seed}): "
        f"{len(val)} sequences x {args.val_frames} frames; Mobile's path {arch.to_string()}")
    say(f"# recipe {json.dumps(cfg.model_dump(exclude={'threads'}), sort_keys=True)}")
    if args.lever:
        say(f"# lever {args.lever} (experiments/size_levers.py; not part of the recipe)")
    say(f"# tracker {json.dumps(tracker.model_dump(), sort_keys=True)}")
    if sizing:
        say(f"# sizing tracker (columns *_sz) {json.dumps(sizing.model_dump(), sort_keys=True)}")
    say("# reg_slope: log predicted area on log true area, centre cell, 128 held-out pairs, scale jitter +-0.4")
    say(f"# static box: AO {static['ao']:.3f} SR@0.5 {static['sr50']:.3f} SR@0.75 {static['sr75']:.3f} "
        f"size err {static_size_error(val, args.val_frames):.3f}")
    say("# train_s: wall seconds of training; cpu_min: its CPU time (all threads) in minutes. On a shared host")
    say("# the CPU time / threads is what the same run costs on an idle machine with that many cores.")
    say("iteration  train_s  cpu_min  it/s   loss   AO     SR50   SR75   size_err  AO/static  reg_slope  AO_sz  "
        "SR50_sz  size_err_sz")

    ckpt = work / "supernet.pt"
    spent, cpu, done = 0.0, 0.0, 0
    budget = args.minutes * 60 if args.minutes > 0 else float("inf")
    points = list(range(0, cfg.total_iters, args.eval_every))[1:] + [cfg.total_iters]
    for stop in [0, *points]:
        if stop > done:
            res = train_supernet(train_dir, ckpt, cfg, progress=False, resume=done > 0, overwrite=done == 0,
                                 stop_after=stop, time_limit_s=None if budget == float("inf") else budget - spent)
            spent += res["seconds"]
            cpu += res["cpu_seconds"]
            done = res["total_iterations"]
        elif stop == 0:
            train_supernet(train_dir, ckpt, cfg, progress=False, overwrite=True, stop_after=0)
        net, meta = load_supernet(ckpt)
        hist = meta.get("history", [])
        loss = float(np.mean([h[1] for h in hist[-20:]])) if hist else float("nan")
        s = held_out_scores(net, arch, val, bn_batches, tracker, args.val_frames)
        slope = regression_slope(net, arch, probe, bn_batches)
        line = (f"{done:9d}  {spent:7.0f}  {cpu / 60:7.1f}  {done / spent if spent else 0:5.2f}  {loss:5.3f}  "
                f"{s['ao']:.3f}  {s['sr50']:.3f}  {s['sr75']:.3f}  {s['size_err']:.3f}     "
                f"{s['ao'] / max(static['ao'], 1e-9):5.2f}x     {slope:6.3f}")
        if sizing:
            z = held_out_scores(net, arch, val, bn_batches, sizing, args.val_frames)
            line += f"  {z['ao']:.3f}  {z['sr50']:.3f}    {z['size_err']:.3f}"
        say(line)
        if spent >= budget or done >= cfg.total_iters:
            break
    if done < cfg.total_iters:
        say(f"# time budget reached at iteration {done} of {cfg.total_iters} (the schedule was cut short)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
