"""The ``command`` backend: models timed by a configured command (here the shipped onnxruntime
runner, run as a real subprocess), its timings parsed with the declared pattern."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from latency_tables.cli import _backend_from_runtime
from latency_tables.profile import profile_units
from latency_tables.store import LatencyStore
from latency_tables.units import export_unit_onnx, parse_key
from profilers import Protocol, get_backend, identity_model, measure
from profilers.backends import CommandError

RUNNER = f"{shlex.quote(sys.executable)} -m profilers.runners.ort_runner {{model}} --runs {{runs}} --warmup {{warmup}}"
HEAD = "head:in128x16x16:out192:k3"
FAST = Protocol(warmup_runs=2, min_runs=5, min_time_s=0.02, max_time_s=0.1)
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def unit_model(tmp_path_factory) -> Path:
    return export_unit_onnx(parse_key(HEAD), tmp_path_factory.mktemp("cmd") / "head.onnx")


def test_runner_timings_are_parsed(unit_model) -> None:
    backend = get_backend("command", command=RUNNER, runs=15, warmup=2, provider="local-ort")
    m = measure(backend, unit_model)
    assert m.count == 15 and 0 < m.p10_ms <= m.median_ms <= m.p90_ms <= m.p99_ms
    assert m.env["backend"] == "command" and m.env["provider"] == "local-ort"
    # The same model in-process: the runner's median is in the same range (both time the same
    # onnxruntime graph; generous bounds, the host is shared).
    direct = measure(get_backend("onnxruntime"), unit_model, FAST)
    assert direct.median_ms / 5 < m.median_ms < direct.median_ms * 5
    # A tool that prints only a summary: one figure per call.
    summary = get_backend("command", command=RUNNER + " --summary", pattern=r"^avg: ([0-9.]+) ms$", runs=5,
                          time_unit="ms")
    s = measure(summary, identity_model())  # bytes: written to a temporary file for the command
    assert s.count == 1 and s.median_ms > 0


def test_profile_through_command_and_rebuild_from_table(tmp_path) -> None:
    store = LatencyStore(tmp_path / "lut.db")
    backend = get_backend("command", command=RUNNER, runs=10, warmup=1, provider="board-ort")
    rep = profile_units(store, backend, [parse_key(HEAD)], protocol=FAST)
    assert rep.measured == [HEAD] and rep.table.runtime["backend"] == "command"
    assert rep.table.runtime["command"] == RUNNER and "board-ort" in rep.table.name
    assert rep.table.overhead_ms is not None and rep.table.overhead_ms > 0
    assert store.layouts(rep.table.id) == {}  # a device tool gives no node trace: no layout correction
    again = _backend_from_runtime(rep.table.runtime)  # what validate/calibrate/verify measure with
    assert again.config() == backend.config()


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"command": "runner --runs {runs}"}, "must contain {model}"),
    ({"command": "runner {model} {device}"}, "unknown placeholder"),
    ({"command": "runner '{model}"}, "command"),
    ({"command": "runner {model}", "pattern": "(a)(b)"}, "exactly one group"),
    ({"command": "runner {model}", "pattern": "("}, "pattern"),
    ({"command": "runner {model}", "time_unit": "min"}, "time_unit"),
])
def test_bad_configuration(kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        get_backend("command", **kwargs)


def test_failing_commands_say_why(unit_model) -> None:
    with pytest.raises(CommandError, match="exited with 2"):
        measure(get_backend("command", command=f"{shlex.quote(sys.executable)} -m profilers.runners.ort_runner "
                                               "{model} --runs 0"), unit_model)
    with pytest.raises(CommandError, match="matched nothing"):
        measure(get_backend("command", command=RUNNER, pattern=r"^took ([0-9.]+)$", runs=2), unit_model)
    with pytest.raises(CommandError, match="not found"):
        measure(get_backend("command", command="no-such-benchmark-tool {model}"), unit_model)


def test_cli_bad_command_is_one_line(tmp_path) -> None:
    out = subprocess.run([str(BIN / "lutnas"), "profile", "--out", str(tmp_path / "t.db"), "--backend", "command",
                          "--command", "benchmark --graph model.onnx", "--quiet"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "{model}" in out.stderr and "Traceback" not in out.stderr
