"""Layout reorders at a unit's boundaries, parsed from a runtime's per-node trace.

On x86 CPUs onnxruntime (graph optimisation level ``all``) runs convolutions in a blocked NCHWc
layout and inserts ``ReorderInput`` / ``ReorderOutput`` nodes where tensors enter or leave it. A
unit measured alone pays a reorder at its input and at its output; inside a whole search graph
consecutive units hand the blocked tensor straight on, and the reorders happen only where a
neighbour cannot take the blocked layout (the neck's correlation, the graph's outputs). That is
the bias of a plain unit sum (+6-14% with 1 thread, +15-21% with 2 on 2026-12-01's Intel hosts).

Int8 (QDQ) units have the same kind of boundary: a lone unit quantizes its float input and
transposes it to NHWC, and transposes and dequantizes its output, while a whole int8 graph hands
uint8 NHWC tensors from unit to unit (measured 2026-12-02: up to a third of a head layer's time
alone; an int8 table without this correction over-predicted whole graphs by 16%).

This module measures, for one unit, the share of its node time spent in those two boundary
reorders (the SE block's inner reorders stay: they happen in the whole graph too), so the
predictor can remove them where the neighbours keep the blocked layout
(``latency_tables.predict``). Running (the backend's ``node_trace``) is separate from parsing
(here), as for timings; numpy and the standard library only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from profilers.measure import Measurement

REORDER_IN, REORDER_OUT = "ReorderInput", "ReorderOutput"
# Boundary work of a lone unit: fp32 (level all) reorders into and out of the blocked layout; an
# int8 QDQ unit quantizes its float input and transposes it to NHWC, and transposes back and
# dequantizes its output, where inside a whole int8 graph uint8 NHWC tensors pass between units.
BOUNDARY_IN = (REORDER_IN, "QuantizeLinear", "Transpose")
BOUNDARY_OUT = (REORDER_OUT, "DequantizeLinear", "Transpose")
ENV_KEY = "layout"  # where a measurement's env carries its unit's boundary shares
# Ops before the first / after the last of which boundary ops count as the unit's own.
_COMPUTE = ("Conv", "FusedConv", "NchwcConv", "QLinearConv")


@dataclass(frozen=True)
class Boundary:
    """Share of a unit's node time spent reordering its input into the blocked layout
    (``reorder_in``) and its output out of it (``reorder_out``); 0 where there is none."""

    reorder_in: float
    reorder_out: float

    def as_dict(self) -> dict[str, float]:
        return {"reorder_in": self.reorder_in, "reorder_out": self.reorder_out}


def _shape(arg: Any) -> tuple[int, ...] | None:
    """First tensor shape of a trace's ``input_type_shape`` / ``output_type_shape``."""
    if not arg:
        return None
    first = arg[0]
    dims = next(iter(first.values()), None) if isinstance(first, dict) else None
    return tuple(int(d) for d in dims) if dims is not None else None


def _runs(events: Sequence[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Node events grouped per inference, in execution order (a Chrome-trace list as written by
    onnxruntime's profiler: node ``*_kernel_time`` events inside each ``model_run`` span)."""
    spans = sorted((e["ts"], e["ts"] + e["dur"]) for e in events
                   if e.get("cat") == "Session" and e.get("name") == "model_run")
    nodes = sorted((e for e in events if e.get("cat") == "Node" and str(e.get("name", "")).endswith("_kernel_time")),
                   key=lambda e: e["ts"])
    runs: list[list[dict[str, Any]]] = [[] for _ in spans]
    i = 0
    for e in nodes:
        while i < len(spans) and e["ts"] > spans[i][1]:
            i += 1
        if i < len(spans) and e["ts"] >= spans[i][0]:
            runs[i].append(e)
    return runs


def _run_boundary(nodes: list[dict[str, Any]], inputs: set[tuple[int, ...]],
                  outputs: set[tuple[int, ...]]) -> tuple[float, float, float]:
    """(input reorder, output reorder, all nodes) durations of one inference, in microseconds."""
    ops = [e["args"].get("op_name", "") for e in nodes]
    first_compute = next((i for i, op in enumerate(ops) if op in _COMPUTE), len(ops))
    last_compute = max((i for i, op in enumerate(ops) if op in _COMPUTE), default=-1)
    t_in = sum(e["dur"] for i, e in enumerate(nodes[:first_compute])
               if ops[i] in BOUNDARY_IN and _shape(e["args"].get("input_type_shape")) in inputs)
    t_out = sum(e["dur"] for i, e in enumerate(nodes) if i > last_compute
                and ops[i] in BOUNDARY_OUT and _shape(e["args"].get("output_type_shape")) in outputs)
    return float(t_in), float(t_out), float(sum(e["dur"] for e in nodes))


def boundary_reorders(trace: dict[str, Any], skip: int = 2) -> Boundary:
    """Median shares of a unit's boundary reorders over the traced runs (the first ``skip`` runs,
    warm-up, left out). ``trace``: ``{"events": [...], "inputs": [shape...], "outputs":
    [shape...]}`` as a backend's ``node_trace`` returns it."""
    inputs = {tuple(int(d) for d in s) for s in trace["inputs"]}
    outputs = {tuple(int(d) for d in s) for s in trace["outputs"]}
    runs = _runs(trace["events"])
    runs = runs[skip:] if len(runs) > skip else runs
    if not runs:
        raise ValueError("the trace holds no inference runs")
    parts = np.array([_run_boundary(r, inputs, outputs) for r in runs])
    total = np.maximum(parts[:, 2], 1e-9)
    return Boundary(float(np.median(parts[:, 0] / total)), float(np.median(parts[:, 1] / total)))


def measure_boundary(backend: Any, model: Any, runs: int = 20, seed: int = 0,
                     flush_bytes: int = 0) -> Boundary | None:
    """Trace ``model`` on ``backend`` (reading ``flush_bytes`` before each run, as the timed runs
    do) and parse its boundary reorders; None when the backend cannot trace nodes (then no
    layout correction applies)."""
    flush = np.ones(flush_bytes // 8) if flush_bytes else None
    trace = backend.node_trace(model, runs=runs, seed=seed, flush=flush)
    return None if trace is None else boundary_reorders(trace)


def with_layout(m: Measurement, backend: Any, model: Any, flush_bytes: int = 0, seed: int = 0) -> Measurement:
    """``m`` with the unit's boundary reorder shares in its env (unchanged where the backend
    cannot trace nodes). Traced after timing, in a session of its own: timed runs carry no
    profiler. The trace only refines the table, so a provider whose profiler fails keeps the
    measurement, with the reason under ``layout_error`` (and no correction for that unit)."""
    return replace(m, env={**m.env, **layout_env(backend, model, flush_bytes, seed)})


def layout_env(backend: Any, model: Any, flush_bytes: int = 0, seed: int = 0) -> dict[str, Any]:
    """``{"layout": shares}``, ``{"layout_error": reason}`` if tracing failed, or ``{}`` where the
    backend cannot trace nodes."""
    try:
        b = measure_boundary(backend, model, seed=seed, flush_bytes=flush_bytes)
    except Exception as e:  # noqa: BLE001 - any runtime's profiler failure; the timing stands
        return {"layout_error": f"{type(e).__name__}: {e}"[:300]}
    return {} if b is None else {ENV_KEY: b.as_dict()}


def valid_layout(value: Any) -> dict[str, float] | None:
    """``value`` as boundary shares if it is one (both shares numbers in [0, 1), summing below
    1), else None: entries uploaded by agents are data, and a bad one must not break predictions."""
    if not isinstance(value, dict):
        return None
    try:
        shares = {k: float(value[k]) for k in ("reorder_in", "reorder_out")}
    except (KeyError, TypeError, ValueError):
        return None
    ok = all(0.0 <= v < 1.0 for v in shares.values()) and sum(shares.values()) < 1.0
    return shares if ok else None
