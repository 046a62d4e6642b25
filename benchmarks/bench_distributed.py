"""Scale-out figures: supernet training with 1 vs N processes (gloo), and candidate scoring with
1 vs 2 Ray actors (candidates/s, and Ray's dispatch overhead per candidate).

Part ``ddp`` (training):

Both runs train the same supernet, seed and global batch (``--batch`` pairs per iteration) for
``--iterations`` iterations; the single process gets all ``--threads`` torch threads, each of the
N processes ``threads / N`` (the same cores either way). Iterations/s counts the training loop
only (process start, torch import and group setup are printed apart, as the wall time).

    python benchmarks/bench_distributed.py [--iterations 6] [--batch 8] [--nproc 2] [--threads 2]

Writes benchmarks/results/bench_distributed/DATE.{json,txt}; a part run alone carries the other
parts' figures over from the newest result before it.

GPU (NCCL) figures need a machine with GPUs: ``--device cuda`` runs the same comparison there.

Part ``ray`` (candidate scoring, search/ray_pool.py): ``--candidates`` seeded random architectures
scored (1) in this process on one torch thread, (2) by a pool of 1 Ray actor and (3) by a pool of
2 Ray actors, one thread each, all on a local Ray; the three are measured in turn within each of
``--repeats`` rounds, so a busy host slows them alike. Pools are built before the clock starts
(each actor loads the supernet once, as in a search). Dispatch overhead per candidate = (the
pool's wall time - its actors' own scoring time) / candidates, against the in-process scoring time
of a candidate.

    python benchmarks/bench_distributed.py --part ray [--candidates 16] [--repeats 3] [--pairs 64]

Part ``settings`` (why the service scored 4-5x slower per candidate than ``lutnas demo``): seconds
per candidate with the demo's scorer settings (64 pairs, BN recalibrated on 1 batch of 16) and
with the service worker's defaults (``LUTNAS_SCORER_PAIRS`` 256, 2 BN batches of 32), same
candidates, same threads, measured in turn.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import harness  # same folder: where results are written

from tracking.data import SynthConfig, generate_synthetic
from tracking.train import TrainConfig, train_supernet

TITLES = {"ddp": "supernet training, 1 vs N processes",
          "ray": "candidate scoring, in-process vs 1 vs 2 Ray actors (1 torch thread each)",
          "settings": "seconds per candidate, lutnas demo's scorer settings vs the service worker's defaults"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iterations", type=int, default=6)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--nproc", type=int, default=2)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--part", choices=("ddp", "ray", "settings", "all"), default="all")
    ap.add_argument("--candidates", type=int, default=16, help="ray: architectures scored per pool and round")
    ap.add_argument("--repeats", type=int, default=3, help="ray: rounds (each measures all three)")
    ap.add_argument("--pairs", type=int, default=64, help="ray: validation pairs per candidate")
    harness.add_arguments(ap)
    args = ap.parse_args()
    lines: list[str] = []

    def say(s: str) -> None:
        print(s, flush=True)
        lines.append(s)

    command = " ".join(["$ python", *sys.argv])
    for name, run in (("ddp", bench_ddp), ("ray", bench_ray), ("settings", bench_settings)):
        if args.part in (name, "all"):
            say(f"== {name}: {TITLES[name]}")
            say(command)
            run(args, say)
            say("")
    # a part run alone keeps the other parts' figures of the newest result
    before = None if args.part == "all" else harness.latest("bench_distributed", out_dir=args.results_dir,
                                                             suffix=".txt")
    harness.write_result("bench_distributed", {"part": args.part, "merged_from": before and str(before)},
                         merge_parts(before, args.part, lines), harness.variant(ap, args, "part"),
                         args.results_dir)


def merge_parts(path: Path | None, part: str, lines: list[str]) -> str:
    """The results text ``path`` with this run's part(s) replaced and the other parts' figures kept
    (a file from before the parts existed holds the ddp part only)."""
    sections: dict[str, list[str]] = {}
    if part != "all" and path is not None:
        old = path.read_text().splitlines()
        if not any(ln.startswith("== ") for ln in old):
            old = [f"== ddp: {TITLES['ddp']}", *old]
        cur = None
        for line in old:
            if line.startswith("== "):
                cur = line.split()[1].rstrip(":")
            if cur is not None:
                sections.setdefault(cur, []).append(line)
    done = {"ddp", "ray", "settings"} if part == "all" else {part}
    kept = [ln for name, block in sections.items() if name not in done for ln in [*block, ""]]
    return "\n".join([*lines, "", *kept]).rstrip() + "\n"


def bench_ddp(args: argparse.Namespace, say) -> None:
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


def bench_ray(args: argparse.Namespace, say) -> None:
    import torch

    from search.evaluators import SupernetAccuracy
    from search.ray_pool import RayScoringPool, ScorerSpec, connect, shutdown
    from tracking.checkpoint import save_checkpoint
    from tracking.space import SearchSpace, sample_many
    from tracking.supernet import Supernet

    space = SearchSpace.paper()
    scorer = {"n_pairs": args.pairs, "bn_batches": 1, "bn_batch_size": 16}
    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(0)
        ckpt = save_checkpoint(Path(tmp) / "net.pt", Supernet(space), {"note": "random weights (cost only)"})
        data = generate_synthetic(Path(tmp) / "val", 4, 20, seed=0, config=SynthConfig(), progress=False)
        spec = ScorerSpec(str(ckpt), str(data), "pairs", scorer)
        archs = sample_many(args.candidates, 0, space)
        say(f"{args.candidates} random architectures, {args.pairs} validation pairs, 1 BN batch of 16; "
            f"{os.cpu_count()} cores, load average before: {os.getloadavg()[0]:.1f}")
        torch.set_num_threads(1)
        local = SupernetAccuracy.from_checkpoint(spec.supernet_path, spec.data_dir, mode="pairs", **scorer)
        t0 = time.perf_counter()
        connect(None, num_cpus=3)  # one Ray for both pools: 1 + 2 actors, a CPU each (logical)
        say(f"local Ray started in {time.perf_counter() - t0:.1f} s")
        t0 = time.perf_counter()
        one = RayScoringPool(spec, 1)
        two = RayScoringPool(spec, 2)
        say(f"3 actors loaded the supernet and data in {time.perf_counter() - t0:.1f} s")
        say(f"{'round':>5} {'in-process s/cand':>17} {'1 actor cand/s':>14} {'2 actors cand/s':>15} "
            f"{'speed-up':>8} {'overhead ms/cand':>16} {'overhead %':>10}")
        rows = []
        try:
            for r in range(args.repeats):
                t0 = time.perf_counter()
                ref = local.evaluate(archs)
                t_local = (time.perf_counter() - t0) / len(archs)
                b1, w1 = one.busy_seconds, one.wall_seconds
                s1 = one.evaluate(archs)
                w1, b1 = one.wall_seconds - w1, one.busy_seconds - b1
                w2 = two.wall_seconds
                s2 = two.evaluate(archs)
                w2 = two.wall_seconds - w2
                assert s1 == s2 == ref, "scores differ between in-process and Ray"
                over = (w1 - b1) / len(archs)
                row = (t_local, len(archs) / w1, len(archs) / w2, w1 / w2, over * 1e3, 100 * over / t_local)
                rows.append(row)
                say(f"{r + 1:>5} {row[0]:>17.3f} {row[1]:>14.3f} {row[2]:>15.3f} {row[3]:>7.2f}x "
                    f"{row[4]:>16.1f} {row[5]:>9.2f}%")
        finally:
            one.close()
            two.close()
            shutdown()
        cols = list(zip(*rows, strict=True))
        say(f"median over {len(rows)} rounds: 2 actors / 1 actor {statistics.median(cols[3]):.2f}x "
            f"(range {min(cols[3]):.2f}-{max(cols[3]):.2f}); dispatch overhead {statistics.median(cols[4]):.1f} ms "
            f"per candidate = {statistics.median(cols[5]):.2f}% of its scoring time "
            f"(range {min(cols[5]):.2f}-{max(cols[5]):.2f}%); load average after: {os.getloadavg()[0]:.1f}")




def bench_settings(args: argparse.Namespace, say) -> None:
    import torch

    from search.evaluators import SupernetAccuracy
    from tracking.checkpoint import save_checkpoint
    from tracking.space import SearchSpace, sample_many
    from tracking.supernet import Supernet

    space = SearchSpace.paper()
    demo = {"n_pairs": 64, "bn_batches": 1, "bn_batch_size": 16}
    service = {"n_pairs": 256, "bn_batches": 2, "bn_batch_size": 32}
    threads = min(2, os.cpu_count() or 1)
    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(0)
        ckpt = save_checkpoint(Path(tmp) / "net.pt", Supernet(space), {"note": "random weights (cost only)"})
        data = generate_synthetic(Path(tmp) / "val", 4, 20, seed=0, config=SynthConfig(), progress=False)
        archs = sample_many(max(2, args.candidates // 4), 1, space)
        scorers = {name: SupernetAccuracy.from_checkpoint(str(ckpt), str(data), mode="pairs", **kw)
                   for name, kw in (("demo", demo), ("service", service))}
        say(f"{len(archs)} random architectures, {threads} torch threads; demo {demo}; service {service}; "
            f"load average before: {os.getloadavg()[0]:.1f}")
        ratios = []
        for r in range(args.repeats):
            t = {}
            for name, sc in scorers.items():
                t0 = time.perf_counter()
                sc.evaluate(archs)
                t[name] = (time.perf_counter() - t0) / len(archs)
            ratios.append(t["service"] / t["demo"])
            say(f"round {r + 1}: demo {t['demo']:.2f} s/candidate, service defaults {t['service']:.2f} s/candidate, "
                f"ratio {ratios[-1]:.2f}x")
        say(f"median ratio {statistics.median(ratios):.2f}x (range {min(ratios):.2f}-{max(ratios):.2f}); "
            f"forward passes per candidate: demo {demo['n_pairs'] + demo['bn_batches'] * demo['bn_batch_size']}, "
            f"service {service['n_pairs'] + service['bn_batches'] * service['bn_batch_size']}")


if __name__ == "__main__":
    main()
