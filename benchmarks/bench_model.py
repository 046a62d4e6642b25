"""LightTrack-Mobile: FLOPs, params, and ms per search frame in PyTorch eager vs onnxruntime.

Usage: ``python benchmarks/bench_model.py [--runs 100] [--warmup 20]``. Prints one line a figure.
Random-init weights (seed 0): speed does not depend on the weight values.
Writes what it prints and the figures to benchmarks/results/bench_model/DATE.{txt,json}.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable

import harness  # same folder: where results are written
import numpy as np
import torch
from rich.console import Console
from rich.progress import track

from tracking.export import OnnxTrackerModel, export_onnx
from tracking.flops import count_flops_params
from tracking.space import SearchSpace, lighttrack_mobile
from tracking.subnet import extract_subnet
from tracking.supernet import Supernet

_ERR = Console(stderr=True)  # progress on stderr, figures on stdout


def median_ms(fn: Callable[[], object], runs: int, warmup: int, label: str) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in track(range(runs), description=label, transient=True, console=_ERR):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--warmup", type=int, default=20)
    harness.add_arguments(ap)
    args = ap.parse_args()
    printed = harness.keep_stdout()

    arch, space = lighttrack_mobile(), SearchSpace.paper()
    macs, params = count_flops_params(arch, space)
    print(f"LightTrack-Mobile FLOPs (MACs, search branch @256): {macs / 1e6:.1f} M (paper 530 M)")
    print(f"LightTrack-Mobile params: {params / 1e6:.3f} M (paper 1.97 M)")

    torch.manual_seed(0)
    sub = extract_subnet(Supernet(space).eval(), arch)
    rng = np.random.default_rng(0)
    z = rng.standard_normal((1, 3, 128, 128), dtype=np.float32)
    x = rng.standard_normal((1, 3, 256, 256), dtype=np.float32)
    results: dict[str, float] = {}
    for threads in (1, 2):
        torch.set_num_threads(threads)
        with torch.no_grad():
            zf = sub.template_feature(torch.from_numpy(z))
            xt = torch.from_numpy(x)
            results[f"torch eager, {threads} thread(s)"] = median_ms(
                lambda zf=zf, xt=xt: sub.track(zf, xt), args.runs, args.warmup, f"torch {threads}t")
    with tempfile.TemporaryDirectory() as d:
        export_onnx(sub, d)
        for threads in (1, 2):
            model = OnnxTrackerModel(d, threads=threads)
            zf_np = model.template_feature(z)
            results[f"onnxruntime, {threads} thread(s)"] = median_ms(
                lambda model=model, zf_np=zf_np: model.track(zf_np, x), args.runs, args.warmup, f"ort {threads}t")
    for name, ms in results.items():
        print(f"search frame, {name}: {ms:.2f} ms median of {args.runs} ({1000 / ms:.1f} fps)")
    for threads in (1, 2):
        t, o = results[f"torch eager, {threads} thread(s)"], results[f"onnxruntime, {threads} thread(s)"]
        print(f"speed-up onnxruntime vs torch eager, {threads} thread(s): {t / o:.2f}x")
    print(f"speed-up onnxruntime 2 vs 1 thread(s): "
          f"{results['onnxruntime, 1 thread(s)'] / results['onnxruntime, 2 thread(s)']:.2f}x")
    print(f"speed-up torch eager 2 vs 1 thread(s): "
          f"{results['torch eager, 1 thread(s)'] / results['torch eager, 2 thread(s)']:.2f}x")
    harness.write_result("bench_model", {"macs": macs, "params": params, "search_frame_ms": results},
                         printed.getvalue(), harness.variant(ap, args), args.results_dir)


if __name__ == "__main__":
    main()
