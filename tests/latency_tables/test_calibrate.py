"""Calibration: a proportional bias is recovered and folded into the predictor."""

from __future__ import annotations

import numpy as np
import pytest

from latency_tables.calibrate import fit_calibration
from latency_tables.predict import LatencyPredictor
from tracking.space import SearchSpace, sample_many


@pytest.mark.parametrize("method,features", [("scale", ("raw_ms",)), ("linear", ("raw_ms", "n_blocks")),
                                             ("ols", ("raw_ms", "n_blocks", "n_head_layers"))])
def test_biased_sums_are_corrected(method, features, synthetic_medians):
    space = SearchSpace.paper()
    raw = LatencyPredictor(synthetic_medians(space), space, 0.003)
    archs = sample_many(12, 3, space)
    noise = np.random.default_rng(0).normal(0, 0.005, len(archs))
    measured = raw.predict_batch(archs) * 1.08 * (1 + noise)  # a device 8% slower than its units say
    calib = fit_calibration(raw, archs, measured, features, method)
    assert calib["before"]["mean_error"] == pytest.approx(-0.074, abs=0.01)
    assert calib["after"]["rmspe"] < 0.02 < calib["before"]["rmspe"]
    assert calib["after_cv"]["within_5"] == 1.0
    fixed = LatencyPredictor(raw.medians, space, raw.overhead_ms, calib)
    np.testing.assert_allclose(fixed.predict_batch(archs), [fixed.predict(a) for a in archs], rtol=1e-12)
    held_out = sample_many(50, 4, space)
    rel = fixed.predict_batch(held_out) / (raw.predict_batch(held_out) * 1.08) - 1
    assert np.abs(rel).max() < 0.03


def test_bad_calibration_requests(synthetic_medians):
    space = SearchSpace.paper()
    raw = LatencyPredictor(synthetic_medians(space), space)
    archs = sample_many(3, 0, space)
    with pytest.raises(ValueError, match="at least"):
        fit_calibration(raw, archs, [1.0, 2.0, 3.0], ("raw_ms", "n_blocks"), "linear")
    with pytest.raises(ValueError, match="features"):
        fit_calibration(raw, archs, [1.0, 2.0, 3.0], ("flops",))
    with pytest.raises(ValueError, match="method"):
        fit_calibration(raw, archs, [1.0, 2.0, 3.0], method="magic")
