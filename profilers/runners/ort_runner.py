"""Time one ONNX model with onnxruntime and print one line per run: ``run 3: 1.2345 ms``.

The reference runner for the ``command`` backend: what a device's own benchmark tool does, in a
form that runs here (and on any board with Python and onnxruntime). Inputs are seeded random
arrays of the model's declared shapes; sessions as the onnxruntime backend builds them (intra-op
``--threads``, inter-op 1, sequential, optimisation level ``all``).

    python -m profilers.runners.ort_runner model.onnx --runs 50 --warmup 5 --threads 1
"""

from __future__ import annotations

import argparse
import sys
import time

from profilers.backends import get_backend


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Time an ONNX model with onnxruntime; one line per run.")
    ap.add_argument("model")
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--provider", default="CPUExecutionProvider")
    ap.add_argument("--summary", action="store_true", help="Print only the mean (as some device tools do).")
    args = ap.parse_args(argv)
    if args.runs < 1 or args.warmup < 0:
        print("error: need --runs >= 1 and --warmup >= 0", file=sys.stderr)
        return 2
    try:
        model = get_backend("onnxruntime", provider=args.provider, threads=args.threads).load(args.model)
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for _ in range(args.warmup):
        model.run()
    times = []
    for _ in range(args.runs):
        t0 = time.perf_counter_ns()
        model.run()
        times.append((time.perf_counter_ns() - t0) / 1e6)
    if args.summary:
        print(f"avg: {sum(times) / len(times):.4f} ms")
    else:
        for i, ms in enumerate(times):
            print(f"run {i}: {ms:.4f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
