"""Closed loop: measure the architectures a search put on its front end to end, on the table's own
target and protocol, next to what the table predicted; flag those whose measurement breaks the
budget; refit the table's calibration from these measurements.

What the search relied on is exactly what is checked: the front's architectures, not random
subnets. The refit is the table's usual calibration (``latency_tables.calibrate``, a robust scale
by default), fitted on the front's measurements, with the figures before and after stored in the
calibration under ``verified`` (the table's fidelity on what was actually searched).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from latency_tables.fidelity import agreement
from latency_tables.predict import LatencyPredictor
from profilers.measure import Protocol
from tracking.space import Architecture, SearchSpace

Progress = Callable[[str, int, int], None]


def backend_for_runtime(runtime: dict[str, Any]) -> Any:
    """The backend a table's recorded runtime describes (onnxruntime, command, litert or torch)."""
    from profilers.backends import get_backend

    name = runtime.get("backend", "onnxruntime")
    keys = {"onnxruntime": ("provider", "threads", "graph_optimization", "precision"),
            "command": ("provider", "threads", "graph_optimization", "precision", "command", "pattern", "time_unit",
                        "runs", "warmup"),
            "litert": ("provider", "threads", "precision", "graph_optimization", "delegate_library"),
            "torch": ("threads", "precision")}.get(name, ())
    if name == "command" and "model_format" in runtime:
        keys = (*keys, "model_format")
    return get_backend(name, **{k: runtime[k] for k in keys if k in runtime})


def protocol_for_runtime(runtime: dict[str, Any], min_time_s: float = 0.15, max_time_s: float = 0.5) -> Protocol:
    """The measurement protocol a table was profiled with (whole subnets must use the same)."""
    return Protocol(min_time_s=min(min_time_s, max_time_s), max_time_s=max_time_s,
                    clock=runtime.get("clock", "wall"), flush_bytes=int(runtime.get("flush_bytes", 0)),
                    warm_inputs=bool(runtime.get("warm_inputs", False)))


def verify_archs(store: Any, name: str | None, archs: Sequence[Architecture], predicted: Sequence[float] | None = None,
                 budget_ms: float | None = None, space: SearchSpace | None = None, refit: bool = True,
                 repeats: int | None = None, seed: int = 0, progress: Progress | None = None,
                 measured: Sequence[float] | None = None) -> dict[str, Any]:
    """Measure ``archs`` end to end with the table's runtime (or take ``measured``, e.g. from agents),
    compare with ``predicted`` (what the search used; default: the table's current prediction),
    flag budget breaks, and (``refit``) store a calibration fitted on them with its figures."""
    from latency_tables.calibrate import fit_calibration
    from latency_tables.transfer import measure_subnets

    space = space or SearchSpace.paper()
    info = store.find(name)
    current = LatencyPredictor.from_store(store, info.name, space)
    table_pred = current.predict_batch(list(archs))
    pred = np.asarray(predicted if predicted is not None else table_pred, float)
    if measured is None:
        rounds = repeats or int(info.runtime.get("rounds", 1))
        measured = measure_subnets(archs, backend_for_runtime(info.runtime), protocol_for_runtime(info.runtime),
                                   space, rounds, seed, str(info.runtime.get("precision", "fp32")),
                                   str(info.runtime.get("round_stat", "median")), progress=progress)
    y = np.asarray(measured, float)
    points = [{"arch": a.to_string(), "canonical_id": a.canonical_id(), "predicted_ms": float(p),
               "table_ms": float(t), "measured_ms": float(m), "error": float(p / m - 1),
               "over_budget": bool(budget_ms is not None and m > budget_ms),
               "predicted_within_budget": bool(budget_ms is None or p <= budget_ms)}
              for a, p, t, m in zip(archs, pred, table_pred, y, strict=True)]
    report: dict[str, Any] = {"table": info.name, "budget_ms": budget_ms, "points": points,
                              "predicted": agreement(pred, y) if len(y) > 1 else None,
                              "broken": sum(p["over_budget"] for p in points), "refit": None}
    if refit and len(y) >= 2:
        raw = LatencyPredictor.from_store(store, info.name, space, calibrated=False)
        calib = fit_calibration(raw, list(archs), y)
        calib["verified"] = {"n": int(len(y)), "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                             "before": agreement(table_pred, y), "after": calib["after"],
                             "after_cv": calib["after_cv"]}
        store.update(info.id, calibration=calib)
        after = raw.with_calibration(calib).predict_batch(list(archs))
        for p, v in zip(points, after, strict=True):
            p["refit_ms"] = float(v)
        report["refit"] = {"scale": calib["coef"]["raw_ms"], "before": calib["verified"]["before"],
                           "after": calib["after"], "after_cv": calib["after_cv"]}
    return report
