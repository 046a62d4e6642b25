"""Client-side overhead of the SDK and the remote CLI against a real server on loopback.

Starts ``lutnas serve --no-worker`` on a temporary SQLite database, creates a team and N
hardware targets, then prints (one line a figure, medians):

* ``lutnas hardware --help`` and ``lutnas hardware list`` wall time (process start to exit: what a user
  waits for; dominated by Python imports);
* SDK round trip of ``GET /v1/me`` (one request on a kept-alive connection);
* SDK listing of all N targets at page sizes 1, 50 and 1000 (pagination cost).

    python benchmarks/bench_client.py [--targets 200] [--runs 5]

Figures on a busy machine are noisy; rerun on a quiet one. Writes what it prints to
benchmarks/results/bench_client/DATE.txt (and the run's variant to DATE.json).
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import harness  # same folder: where results are written
from rich.console import Console
from rich.progress import track

from client import Client

_ERR = Console(stderr=True)  # progress on stderr, figures on stdout
BIN = Path(sys.executable).parent


def median_s(fn: Callable[[], object], runs: int, label: str) -> float:
    times = []
    for _ in track(range(runs), description=label, transient=True, console=_ERR):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--targets", type=int, default=200, help="hardware targets to list")
    ap.add_argument("--runs", type=int, default=5, help="repetitions per figure (median)")
    harness.add_arguments(ap)
    args = ap.parse_args()
    printed = harness.keep_stdout()

    with tempfile.TemporaryDirectory(prefix="lutnas-bench-client-") as tmp:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("LUTNAS_")}
        env.update(LUTNAS_DATABASE_URL=f"sqlite:///{tmp}/db.sqlite", LUTNAS_ADMIN_TOKEN="bench-admin",
                   LUTNAS_DATA_DIR=f"{tmp}/data")
        server = subprocess.Popen([str(BIN / "lutnas"), "serve", "--host", "127.0.0.1", "--port", str(port),
                                   "--no-worker"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            with Client(url, "bench-admin", retries=40, backoff=0.25) as admin:
                admin.health()
                key = admin.teams.create("bench").api_key
            with Client(url, key) as c:
                for i in track(range(args.targets), description="registering targets", transient=True,
                               console=_ERR):
                    c.hardware.register(f"target-{i}")

                cli_env = dict(env, LUTNAS_SERVER=url, LUTNAS_API_KEY=key or "")

                def cli(*argv: str) -> Callable[[], object]:
                    return lambda: subprocess.run([str(BIN / "lutnas"), *argv], env=cli_env, check=True,
                                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

                t = median_s(cli('hardware', '--help'), args.runs, 'lutnas hardware --help')
                print(f"lutnas hardware --help: {t:.3f} s")
                t = median_s(cli("hardware", "list"), args.runs, "lutnas hardware list")
                print(f"lutnas hardware list ({args.targets} targets): {t:.3f} s")
                t = median_s(c.me, max(args.runs, 50), "GET /v1/me")
                print(f"SDK GET /v1/me round trip: {t * 1e3:.2f} ms")
                for size in (1, 50, 1000):
                    t = median_s(lambda size=size: sum(1 for _ in c.hardware.list(page_size=size)), args.runs,
                                 f"list page_size={size}")
                    print(f"SDK list {args.targets} targets, page_size={size}: {t * 1e3:.1f} ms "
                          f"({t / args.targets * 1e6:.0f} us per item)")
        finally:
            server.terminate()
            server.wait(timeout=30)
    harness.write_result("bench_client", {}, printed.getvalue(), harness.variant(ap, args), args.results_dir)


if __name__ == "__main__":
    main()
