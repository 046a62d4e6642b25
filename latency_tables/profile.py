"""Local profiling: export units (ONNX, or .tflite for LiteRT backends), measure them on this machine, store them in a table.

Resumable: units already in the table are skipped, and each result is committed as soon as it is
measured, so an interrupted run loses at most one unit. With ``rounds`` > 1 a unit is committed in
the last round, so an interruption before it loses the earlier rounds of the uncommitted units.
"""

from __future__ import annotations

import random
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from latency_tables.store import LatencyStore, TableInfo, default_table_name
from latency_tables.units import Unit, export_overhead_model, export_unit, unit_filename
from profilers.backends import Backend
from profilers.env import environment
from profilers.layout import ENV_KEY as LAYOUT_ENV_KEY
from profilers.layout import layout_env, with_layout
from profilers.measure import Protocol, check_round_stat, measure, measure_overhead, pick_round
from tracking.progress import Progress


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
                  workdir: str | Path | None = None, progress: Progress | None = None,
                  rounds: int = 1, round_stat: str = "min") -> ProfileReport:
    """Measure every unit not yet in the table ``name`` (default: derived from hardware and
    runtime) and store the results; also measures the per-run overhead once per table.

    ``rounds`` > 1 measures the whole set that many times, each round in a new seeded order, and
    keeps each unit's fastest round (``round_stat="min"``, see ``profilers.measure.ROUND_STATS``)
    or its median round: a slow spell of a shared host then has to hit every round of a unit to
    bias the table (one 40 s pass here came out 36% slow). Both are recorded in the table's
    runtime, so ``latency validate`` measures whole subnets the same way.

    Each unit's boundary reorders (``profilers.layout``) are traced too, once, and recorded in its
    entry's env; units already in the table that lack them are traced as well (a second or two for
    the whole space), so older tables gain the layout correction by profiling again."""
    if rounds < 1:
        raise ValueError("rounds must be >= 1")
    check_round_stat(round_stat)
    hardware = hardware or hardware_of_this_machine()
    runtime = {**backend.config(), "clock": protocol.clock, "flush_bytes": protocol.flush_bytes,
               "warm_inputs": protocol.warm_inputs, "rounds": rounds, "round_stat": round_stat}
    info = store.get_or_create(name or default_table_name(hardware, runtime), hardware, runtime)
    have = store.keys(info.id)
    todo = list({u.key: u for u in units if u.key not in have}.values())
    have_layout = set(store.layouts(info.id))
    retrace = list({u.key: u for u in units if u.key in have and u.key not in have_layout}.values())
    skipped = sorted({u.key for u in units if u.key in have})
    fmt = backend.model_format  # ONNX, or .tflite for LiteRT (latency_tables.litert)
    with tempfile.TemporaryDirectory(prefix="lutnas-units-") as tmp:
        out = Path(workdir or tmp)
        if info.overhead_ms is None:
            overhead = export_overhead_model(out / f"overhead.{fmt}", fmt)
            info = store.update(info.id, overhead_ms=measure_overhead(backend, protocol, overhead).median_ms)
        t0 = time.perf_counter()
        paths = {}
        for i, u in enumerate(todo + retrace):
            # Exports first, measurements after: no exporter work interleaves with timing.
            paths[u.key] = export_unit(u, out / unit_filename(u, fmt), seed, runtime.get("precision", "fp32"), fmt)
            if progress:
                progress("export", i + 1, len(todo) + len(retrace))
        t1 = time.perf_counter()
        _measure_rounds(store, info.id, backend, todo, paths, protocol, seed, rounds, round_stat, progress)
        traced = {u.key: layout_env(backend, paths[u.key], protocol.flush_bytes, seed) for u in retrace}
        store.set_layouts(info.id, {k: env[LAYOUT_ENV_KEY] for k, env in traced.items() if LAYOUT_ENV_KEY in env})
        t2 = time.perf_counter()
    return ProfileReport(info, [u.key for u in todo], skipped, t1 - t0, t2 - t1)


def _measure_rounds(store: LatencyStore, table_id: int, backend: Backend, todo: list[Unit], paths: dict[str, Path],
                    protocol: Protocol, seed: int, rounds: int, round_stat: str, progress: Progress | None) -> None:
    """Every unit of ``todo`` measured ``rounds`` times, each round after the first in a new seeded
    order; each unit's representative round stored (with its layout) as its last round ends."""
    rng = random.Random(seed)  # seeded measurement order, not a secret  # nosec B311
    results: dict[str, list[Any]] = {u.key: [] for u in todo}
    done = 0
    for r in range(rounds):
        order = list(todo) if r == 0 else rng.sample(todo, len(todo))
        for u in order:
            results[u.key].append(measure(backend, paths[u.key], protocol, seed))
            if r == rounds - 1:  # last round: keep the representative round and commit
                store.put(table_id, {u.key: with_layout(pick_round(results[u.key], round_stat), backend,
                                                        paths[u.key], protocol.flush_bytes, seed)})
            done += 1
            if progress:
                progress("measure", done, rounds * len(todo))
