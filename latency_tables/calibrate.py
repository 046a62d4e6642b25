"""Calibration of LUT predictions against a few measured end-to-end subnets.

When raw unit sums are biased (cache state, layout changes between units, a runtime fusing
across unit boundaries), a correction fitted on a few measured subnets removes the bias: by
default a robust scale factor, or a linear ``a * raw_ms + b_blocks * n_blocks +
b_head * n_head_layers + c`` fitted with scikit-learn. It stays linear in
the units, so :class:`~latency_tables.predict.LatencyPredictor` folds it into its lookup arrays.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.linear_model import HuberRegressor, LinearRegression
from sklearn.model_selection import LeaveOneOut, cross_val_predict

from latency_tables.fidelity import agreement
from latency_tables.predict import CALIBRATION_FEATURES, LatencyPredictor
from tracking.space import Architecture


def fit_calibration(predictor: LatencyPredictor, archs: Sequence[Architecture], measured: Sequence[float],
                    features: Sequence[str] = ("raw_ms",), method: str = "scale") -> dict[str, Any]:
    """Fit the correction on measured subnets; returns the calibration dict (to store with the
    table) with ``before``/``after`` agreement figures and leave-one-out ``after_cv`` figures.

    ``method``: ``scale`` (default) multiplies the raw sum by the median ratio measured/raw: one
    robust parameter, safe with the handful of noisy end-to-end runs a device gives; ``linear``
    fits ``features`` plus an intercept with a Huber regression (scikit-learn), for biases that
    are not proportional (needs more subnets); ``ols`` the same by least squares.
    """
    unknown = set(features) - set(CALIBRATION_FEATURES)
    if unknown or "raw_ms" not in features:
        raise ValueError(f"features must include raw_ms and be among {', '.join(CALIBRATION_FEATURES)}")
    if method not in ("scale", "linear", "ols"):
        raise ValueError("method must be scale, linear or ols")
    if method == "scale":
        features = ("raw_ms",)
    y = np.asarray(measured, float)
    need = 2 if method == "scale" else len(features) + 3
    if len(y) < need:
        raise ValueError(f"need at least {need} measured subnets for a {method} calibration")
    rows = [predictor.features(a) for a in archs]
    x = np.array([[r[f] for f in features] for r in rows])
    raw = x[:, 0]
    model = (_Scale() if method == "scale" else HuberRegressor(max_iter=1000) if method == "linear"
             else LinearRegression())
    model.fit(x, y)
    fitted = model.predict(x)
    cv = cross_val_predict(model, x, y, cv=LeaveOneOut()) if len(y) >= 5 else fitted
    return {
        "method": method,
        "features": list(features),
        "coef": {f: float(c) for f, c in zip(features, np.atleast_1d(model.coef_), strict=True)},
        "intercept": float(model.intercept_),
        "n": int(len(y)),
        "before": agreement(raw, y),
        "after": agreement(fitted, y),
        "after_cv": agreement(cv, y),
    }


class _Scale(RegressorMixin, BaseEstimator):
    """y = a * raw with a = median(y / raw): a scikit-learn estimator (for cross-validation)."""

    def fit(self, x: np.ndarray, y: np.ndarray) -> _Scale:
        self.coef_ = np.array([float(np.median(np.asarray(y) / np.asarray(x)[:, 0]))])
        self.intercept_ = 0.0
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x)[:, 0] * self.coef_[0]
