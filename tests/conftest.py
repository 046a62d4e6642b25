"""Fixtures shared by every test package."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest


@pytest.fixture
def lutnas_main(capsys) -> Callable[..., tuple[int, str, str]]:
    """Run ``lutnas ARGS`` in this process: ``lutnas_main("arch", "sample") -> (exit code, stdout,
    stderr)`` (the CLI's own error handling included, as a user meets it)."""
    from lutnas.cli import main

    def run(*argv: str) -> tuple[int, str, str]:
        with pytest.raises(SystemExit) as exc:
            main(list(argv))
        out, err = capsys.readouterr()
        return exc.value.code, out, err

    return run


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RayCluster:
    """A real one-node Ray cluster (``ray start --head --block``) in its own process group, without
    auth (loopback test clusters: their drivers set ``RAY_AUTH_MODE=disabled`` too)."""

    def __init__(self, port: int, logs: Path) -> None:
        self.port, self.logs, self.proc = port, logs, None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, tries: int = 3) -> None:
        """Started once ``ray start`` says so; Ray gives the raylet a fixed 30 s to register, which a
        busy machine can miss, so a failed start is tried again."""
        from search.ray_pool import gcs_reachable

        ray = Path(sys.executable).parent / "ray"
        for _ in range(tries):
            log = self.logs / f"ray-{time.monotonic_ns()}.log"
            with open(log, "w") as out:
                self.proc = subprocess.Popen(
                    [str(ray), "start", "--head", "--block", f"--port={self.port}", "--num-cpus=2",
                     "--node-ip-address=127.0.0.1", "--include-dashboard=false", "--disable-usage-stats"],
                    stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                    env={**os.environ, "RAY_AUTH_MODE": "disabled"})
            deadline = time.monotonic() + 180
            while self.proc.poll() is None and time.monotonic() < deadline:
                if "Ray runtime started" in log.read_text() and gcs_reachable(self.address, 0.5):
                    return
                time.sleep(0.5)
            self.kill()
        raise AssertionError(f"ray start failed {tries} times: {log.read_text()[-2000:]}")

    def kill(self) -> None:
        """The whole cluster dies at once, as a lost head node does."""
        from search.ray_pool import gcs_reachable

        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        deadline = time.monotonic() + 30
        while gcs_reachable(self.address, 0.5) and time.monotonic() < deadline:
            time.sleep(0.2)
