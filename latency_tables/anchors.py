"""Anchor subnets: a few whole search graphs measured with the table, the gauge of later drift.

A shared VM changes speed by several percent over minutes (2026-12-06, this host: a fresh 1-thread
table's subnets ran 11% slower than predicted 2 minutes after profiling and as predicted 40 minutes
later), and it does not change the speed of lone units and of whole graphs alike: probe *units*
re-measured between graphs ran about 4.5% slower than their profiled time in both of those runs,
so they misjudge the graphs' drift. Anchors are whole graphs, measured at the end of ``lutnas
profile`` with the table's protocol and stored in the table's runtime (``runtime["anchors"]``);
``validate`` measures them again between its subnets, and their ratio now / then is the host's
speed for whole graphs: the same models in the same context, so the ratio compares like with like.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np

from tracking.space import Architecture, SearchSpace, sample_many

ANCHOR_SEED = 90_001  # disjoint from the seeds validate and calibrate sample with by default
DEFAULT_ANCHORS = 6


def anchor_archs(predictor: Any, k: int = DEFAULT_ANCHORS, seed: int = ANCHOR_SEED) -> list[Architecture]:
    """``k`` seeded subnets spread evenly over the table's predicted latency range."""
    if k <= 0:
        return []
    pool = sample_many(max(8 * k, 24), seed, predictor.space)
    ordered = sorted(pool, key=lambda a: (predictor.predict(a), a.to_string()))
    idx = np.unique(np.linspace(0, len(ordered) - 1, k).round().astype(int))
    return [ordered[i] for i in idx]


def export_anchors(archs: list[Architecture], out_dir: str | Path, space: SearchSpace, seed: int = 0,
                   precision: str = "fp32", fmt: str = "onnx") -> list[Path]:
    from latency_tables.fidelity import export_search_graphs

    return export_search_graphs(archs, out_dir, space, seed, precision=precision, fmt=fmt)


def anchor_record(archs: list[Architecture], measured_ms: np.ndarray, predicted_ms: np.ndarray) -> dict[str, Any]:
    """What the table keeps: the anchors, their measured and predicted times, and when."""
    return {"archs": [a.to_string() for a in archs], "measured_ms": [float(m) for m in measured_ms],
            "predicted_ms": [float(p) for p in predicted_ms],
            "measured_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}


def measure_table_anchors(store: Any, info: Any, backend: Any, protocol: Any, space: SearchSpace, k: int,
                          rounds: int, round_stat: str, seed: int = 0, workdir: str | Path | None = None) -> Any:
    """Measure ``k`` anchors of the table ``info`` (its rounds and statistic) and store them in its
    runtime; returns the updated table info."""
    import tempfile

    from latency_tables.fidelity import measure_models
    from latency_tables.predict import LatencyPredictor

    pred = LatencyPredictor.from_store(store, info.name, space, calibrated=False)
    archs = anchor_archs(pred, k)
    precision = str(info.runtime.get("precision", "fp32"))
    with tempfile.TemporaryDirectory(prefix="lutnas-anchors-") as tmp:
        paths = export_anchors(archs, workdir or tmp, space, seed, precision, backend.model_format)
        measured = measure_models(backend, paths, protocol, rounds, seed=seed, round_stat=round_stat)
    record = anchor_record(archs, measured, pred.predict_batch(archs))
    calibration = anchor_calibration(pred, archs, measured, info.calibration)
    return store.update(info.id, runtime={**info.runtime, "anchors": record}, calibration=calibration)


def anchor_calibration(predictor: Any, archs: list[Architecture], measured: np.ndarray,
                       current: dict[str, Any] | None) -> dict[str, Any] | None:
    """The table's calibration after its anchors were measured: a scale fitted on them
    (``latency_tables.calibrate``, ``"source": "anchors"``) unless ``current`` is one a user fitted
    on purpose (``lutnas latency calibrate``), which is kept.

    Why: whole graphs do not run at the sum of their units measured alone. On this 2-core host a
    fresh 1-thread table's anchors ran 3.7% to 7.6% slower than it predicted, the same minute and
    at the same host speed (2026-12-07), and the bias moves from one profile to the next (2% to 6%);
    the anchors measure it for each table, so ``validate`` right after profiling compares like with
    like."""
    from latency_tables.calibrate import fit_calibration

    if current is not None and current.get("source") != "anchors":
        return current
    if len(archs) < 3:  # too few to trust one number: leave the table uncalibrated
        return None
    return {**fit_calibration(predictor, archs, measured, method="scale"), "source": "anchors"}


def with_drift(calibration: dict[str, Any] | None, drift: dict[str, Any] | None) -> dict[str, Any] | None:
    """``calibration`` (a ``latency_tables.calibrate`` dict, or None) times the host speed a
    drift-probe round applied (``drift["applied"]``, ``server.measurements.drift``): every coefficient and the
    intercept scaled, so predictions are the table's at the host's speed now."""
    scale = float((drift or {}).get("applied", 1.0))
    if scale == 1.0:
        return calibration
    base = dict(calibration) if calibration else {"method": "scale", "features": ["raw_ms"],
                                                  "coef": {"raw_ms": 1.0}, "intercept": 0.0}
    return {**base, "coef": {f: float(c) * scale for f, c in base.get("coef", {}).items()},
            "intercept": float(base.get("intercept", 0.0)) * scale, "drift_scale": scale}


def anchor_speed(now_ms: np.ndarray, then_ms: np.ndarray) -> tuple[float, float, bool]:
    """``(speed, se, moved)``: the median ratio now / then over the anchors (> 1: the host runs whole
    graphs slower than when the table was profiled), the standard error of the log ratios, and
    whether the anchors agree that it moved (``|log speed| > 2 se`` and more than 2%, at least 3)."""
    ratios = np.asarray(now_ms, float) / np.asarray(then_ms, float)
    if not len(ratios):
        return 1.0, float("nan"), False
    speed = float(np.median(ratios))
    if len(ratios) < 3:
        return speed, float("nan"), False
    se = float(np.std(np.log(ratios), ddof=1) / np.sqrt(len(ratios)))
    return speed, se, bool(abs(np.log(speed)) > max(2 * se, np.log(1.02)))
