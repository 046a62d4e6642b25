"""Multi-process supernet training on the CPU: iterations/s with 1 process vs N (gloo), same run.

Both runs train the same supernet, seed and global batch (``--batch`` pairs per iteration) for
``--iterations`` iterations; the single process gets all ``--threads`` torch threads, each of the
N processes ``threads / N`` (the same cores either way). Iterations/s counts the training loop
only (process start, torch import and group setup are printed apart, as the wall time).

    python benchmarks/bench_distributed.py [--iterations 6] [--batch 8] [--nproc 2] [--threads 2]
        [--out benchmarks/results/bench_distributed.txt]

GPU (NCCL) figures need a machine with GPUs: ``--device cuda`` runs the same comparison there.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from tracking.data import SynthConfig, generate_synthetic
from tracking.train import TrainConfig, train_supernet


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iterations", type=int, default=6)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--nproc", type=int, default=2)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    lines: list[str] = []

    def say(s: str) -> None:
        print(s, flush=True)
        lines.append(s)

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        generate_synthetic(data, 8, 30, seed=0, config=SynthConfig(), progress=False)
        say(f"supernet training, {args.iterations} iterations x {args.batch} pairs, device {args.device}, "
            f"{os.cpu_count()} cores, torch threads in all: {args.threads}")
        say(f"{'processes':>9} {'threads each':>12} {'it/s (loop)':>12} {'wall s':>8} {'final loss':>11}")
        rows = []
        for n in (1, args.nproc):
            cfg = TrainConfig(epochs=1, iters_per_epoch=args.iterations, batch_size=args.batch, warmup_iters=1,
                              seed=0, threads=max(1, args.threads // n))
            t0 = time.perf_counter()
            res = train_supernet(data, Path(tmp) / f"n{n}.pt", cfg, progress=False, overwrite=True,
                                 device=args.device, nproc=n)
            wall = time.perf_counter() - t0
            rows.append(res)
            say(f"{n:>9} {cfg.threads:>12} {res['iters_per_s']:>12.3f} {wall:>8.1f} {res['loss']:>11.4f}")
        say(f"speed-up {args.nproc} processes / 1: {rows[1]['iters_per_s'] / rows[0]['iters_per_s']:.2f}x "
            f"(same global batch, so the same weights to float rounding)")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(" ".join(["$ python", *sys.argv]) + "\n" + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
