"""Sequences-mode scoring on eager torch against onnxruntime: time per candidate and agreement.

For each candidate (LightTrack-Mobile, then seeded random architectures) the same scorer settings
(BN recalibration, sequences, frames) are run once per runtime, in alternating order so that a
slow spell of the host hits both alike. Prints seconds per candidate and their ratio, the score
difference against the score's own standard error over sequences, and Kendall tau / Spearman rho
between the two runtimes' scores across candidates (what a search's ranking sees). Writes what it
prints and the figures to benchmarks/results/bench_scoring_runtime/DATE.{txt,json}.

    python benchmarks/bench_scoring_runtime.py --supernet runs/ranking120/supernet/supernet-uniform.pt \
        --val-data runs/ranking120/data/val --train-data runs/ranking120/data/train --candidates 12

The supernet must be trained: an untrained one's score maps are nearly flat, so float32 rounding
picks other cells and the comparison says nothing about a real search.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import harness  # same folder: where results are written
import numpy as np
import torch
from scipy.stats import kendalltau, spearmanr

from tracking.checkpoint import load_supernet
from tracking.space import lighttrack_mobile, sample_many
from tracking.validate import ValidationScorer

RUNTIMES = ("torch", "onnx")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--supernet", type=Path, required=True)
    ap.add_argument("--val-data", type=Path, required=True)
    ap.add_argument("--train-data", type=Path, required=True, help="BN recalibration pairs")
    ap.add_argument("--candidates", type=int, default=12)
    ap.add_argument("--sequences", type=int, default=20)
    ap.add_argument("--frames", type=int, default=50)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    harness.add_arguments(ap)
    args = ap.parse_args()
    printed = harness.keep_stdout()
    torch.set_num_threads(args.threads)
    net, _ = load_supernet(str(args.supernet))
    kw = {"bn_data_dir": args.train_data, "bn_batches": 2, "max_sequences": args.sequences,
          "max_frames": args.frames, "seed": args.seed}
    scorers = {rt: ValidationScorer(net, args.val_data, "sequences", runtime=rt, **kw) for rt in RUNTIMES}
    archs = [lighttrack_mobile(), *sample_many(args.candidates - 1, args.seed, net.space)]
    rows = []
    for i, arch in enumerate(archs):
        order = RUNTIMES if i % 2 == 0 else RUNTIMES[::-1]
        res = {}
        for rt in order:
            t = time.perf_counter()
            res[rt] = scorers[rt].score(arch)
            res[rt]["wall_s"] = time.perf_counter() - t
        rows.append({"arch": arch.to_string(), **{f"{rt}_{k}": res[rt][k] for rt in RUNTIMES
                                                 for k in ("score", "score_se", "wall_s")}})
        r = rows[-1]
        print(f"{i + 1:2d}/{len(archs)} torch {r['torch_wall_s']:6.1f} s  onnx {r['onnx_wall_s']:6.1f} s  "
              f"score {r['torch_score']:.4f} vs {r['onnx_score']:.4f} (se {r['torch_score_se']:.4f})", flush=True)
    harness.write_result("bench_scoring_runtime", report(rows, args),
                         printed.getvalue(), harness.variant(ap, args),
                         args.results_dir)


def report(rows: list[dict], args: argparse.Namespace) -> dict:
    t = np.array([r["torch_wall_s"] for r in rows])
    o = np.array([r["onnx_wall_s"] for r in rows])
    st = np.array([r["torch_score"] for r in rows])
    so = np.array([r["onnx_score"] for r in rows])
    se = np.array([r["torch_score_se"] for r in rows])
    ratio = t / o
    diff = np.abs(st - so)
    summary = {
        "candidates": len(rows), "sequences": args.sequences, "frames": args.frames, "threads": args.threads,
        "torch_s_median": float(np.median(t)), "onnx_s_median": float(np.median(o)),
        "speedup_median": float(np.median(ratio)), "speedup_min": float(ratio.min()), "speedup_max": float(ratio.max()),
        "abs_score_diff_median": float(np.median(diff)), "abs_score_diff_max": float(diff.max()),
        "score_se_median": float(np.median(se)), "identical_scores": int((diff == 0).sum()),
        "kendall_tau": float(kendalltau(st, so).statistic), "spearman_rho": float(spearmanr(st, so).statistic),
        "rows": rows,
    }
    print(f"\n{len(rows)} candidates, {args.sequences} sequences x {args.frames} frames, {args.threads} thread(s), "
          f"BN 2 x 32, runs alternated")
    print(f"seconds per candidate: torch median {summary['torch_s_median']:.1f}, onnx median "
          f"{summary['onnx_s_median']:.1f}; torch / onnx median {summary['speedup_median']:.2f}x "
          f"(range {summary['speedup_min']:.2f}..{summary['speedup_max']:.2f})")
    print(f"|score difference|: median {summary['abs_score_diff_median']:.4f}, max {summary['abs_score_diff_max']:.4f}"
          f" ({summary['identical_scores']} of {len(rows)} identical); the score's own se over sequences: median "
          f"{summary['score_se_median']:.4f}")
    print(f"ranking across candidates, torch vs onnx: Kendall tau {summary['kendall_tau']:+.3f}, "
          f"Spearman rho {summary['spearman_rho']:+.3f}")
    return summary


if __name__ == "__main__":
    main()
