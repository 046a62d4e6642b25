"""Local profiling: export units to ONNX, measure them on this machine, store them in a table.

Resumable: units already in the table are skipped, and each result is committed as soon as it is
measured, so an interrupted run loses at most one unit.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from latency_tables.store import LatencyStore, TableInfo, default_table_name
from latency_tables.units import Unit, export_unit_onnx, unit_filename
from profilers.backends import Backend
from profilers.env import environment
from profilers.measure import Protocol, measure, measure_overhead

Progress = Callable[[str, int, int], None]  # (phase, done, total)


@dataclass
class ProfileReport:
    table: TableInfo
    measured: list[str]
    skipped: list[str]
    export_s: float
    measure_s: float


def hardware_of_this_machine(label: str | None = None) -> dict[str, Any]:
    env = environment()
    return {"label": label or f"{env['cpu']} x{env['usable_cores']}", "cpu": env["cpu"],
            "cores": env["cores"], "machine": env["machine"], "system": env["system"]}


def profile_units(store: LatencyStore, backend: Backend, units: Sequence[Unit], name: str | None = None,
                  hardware: dict[str, Any] | None = None, protocol: Protocol = Protocol(), seed: int = 0,
                  workdir: str | Path | None = None, progress: Progress | None = None) -> ProfileReport:
    """Measure every unit not yet in the table ``name`` (default: derived from hardware and
    runtime) and store the results; also measures the per-run overhead once per table."""
    hardware = hardware or hardware_of_this_machine()
    runtime = {**backend.config(), "clock": protocol.clock, "flush_bytes": protocol.flush_bytes}
    info = store.get_or_create(name or default_table_name(hardware, runtime), hardware, runtime)
    have = store.keys(info.id)
    todo = list({u.key: u for u in units if u.key not in have}.values())
    skipped = sorted({u.key for u in units if u.key in have})
    if info.overhead_ms is None:
        info = store.update(info.id, overhead_ms=measure_overhead(backend, protocol).median_ms)
    with tempfile.TemporaryDirectory(prefix="lutnas-units-") as tmp:
        out = Path(workdir or tmp)
        t0 = time.perf_counter()
        paths = {}
        for i, u in enumerate(todo):
            # Exports first, measurements after: no exporter work interleaves with timing.
            paths[u.key] = export_unit_onnx(u, out / unit_filename(u), seed)
            if progress:
                progress("export", i + 1, len(todo))
        t1 = time.perf_counter()
        for i, u in enumerate(todo):
            store.put(info.id, {u.key: measure(backend, paths[u.key], protocol, seed)})
            if progress:
                progress("measure", i + 1, len(todo))
        t2 = time.perf_counter()
    return ProfileReport(info, [u.key for u in todo], skipped, t1 - t0, t2 - t1)
