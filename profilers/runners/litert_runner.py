"""Time one .tflite model with LiteRT here and print what LiteRT's ``benchmark_model`` prints last:

    Inference timings in us: Init: 5685, First inference: 18535, Warmup (avg): 14462.3, Inference (avg): 14575.2

A stand-in for ``benchmark_model`` (which runs on the phone, ``litert_adb.sh``), so the command
backend's ``BENCHMARK_MODEL_PATTERN`` path runs end to end on this host. Interpreter as the litert
backend builds it (``--delegate``, ``--threads``, seeded random inputs).

    python -m profilers.runners.litert_runner model.tflite --runs 50 --warmup 5 --threads 1
"""

from __future__ import annotations

import argparse
import sys
import time

from profilers.backends import get_backend


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Time a .tflite model with LiteRT; benchmark_model's summary line.")
    ap.add_argument("model")
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--delegate", default="xnnpack")
    args = ap.parse_args(argv)
    if args.runs < 1 or args.warmup < 1:
        print("error: need --runs >= 1 and --warmup >= 1", file=sys.stderr)
        return 2
    t0 = time.perf_counter_ns()
    try:
        model = get_backend("litert", delegate=args.delegate, threads=args.threads).load(args.model)
    except (ImportError, OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    init_us = (time.perf_counter_ns() - t0) / 1e3

    def timed(n: int) -> list[float]:
        out = []
        for _ in range(n):
            t = time.perf_counter_ns()
            model.run()
            out.append((time.perf_counter_ns() - t) / 1e3)
        return out

    first = timed(1)[0]
    warm = timed(args.warmup)
    runs = timed(args.runs)
    print(f"Inference timings in us: Init: {init_us:.0f}, First inference: {first:.0f}, "
          f"Warmup (avg): {sum(warm) / len(warm):.1f}, Inference (avg): {sum(runs) / len(runs):.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
