"""Calibration of LUT predictions against a few measured end-to-end subnets.

When raw unit sums are biased (layout changes between units, cache effects, a runtime fusing
across unit boundaries), a linear correction ``a * raw_ms + b_blocks * n_blocks +
b_head * n_head_layers + c`` fitted with scikit-learn usually removes the bias. It stays linear in
the units, so :class:`~latency_tables.predict.LatencyPredictor` folds it into its lookup arrays.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.linear_model import HuberRegressor, LinearRegression
from sklearn.model_selection import LeaveOneOut, cross_val_predict

from latency_tables.fidelity import agreement
from latency_tables.predict import CALIBRATION_FEATURES, LatencyPredictor
from tracking.space import Architecture


def fit_calibration(predictor: LatencyPredictor, archs: Sequence[Architecture], measured: Sequence[float],
                    features: Sequence[str] = ("raw_ms",), robust: bool = True) -> dict[str, Any]:
    """Fit the correction on measured subnets; returns the calibration dict (to store with the
    table) with ``before``/``after`` agreement figures, and leave-one-out ``after_cv`` figures."""
    unknown = set(features) - set(CALIBRATION_FEATURES)
    if unknown or "raw_ms" not in features:
        raise ValueError(f"features must include raw_ms and be among {', '.join(CALIBRATION_FEATURES)}")
    y = np.asarray(measured, float)
    if len(y) < len(features) + 2:
        raise ValueError(f"need at least {len(features) + 2} measured subnets to fit {len(features)} feature(s)")
    rows = [predictor.features(a) for a in archs]
    x = np.array([[r[f] for f in features] for r in rows])
    raw = x[:, list(features).index("raw_ms")]
    # Huber: a single run disturbed by another process on a shared machine should not set the fit.
    model = HuberRegressor(max_iter=1000) if robust else LinearRegression()
    model.fit(x, y)
    fitted = model.predict(x)
    cv = cross_val_predict(model, x, y, cv=LeaveOneOut()) if len(y) >= 5 else fitted
    return {
        "method": "huber" if robust else "ols",
        "features": list(features),
        "coef": {f: float(c) for f, c in zip(features, model.coef_, strict=True)},
        "intercept": float(model.intercept_),
        "n": int(len(y)),
        "before": agreement(raw, y),
        "after": agreement(fitted, y),
        "after_cv": agreement(cv, y),
    }
