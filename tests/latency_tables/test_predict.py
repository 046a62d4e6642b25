"""LatencyPredictor: sums, vectorised genes, calibration folding, missing units, fastest."""

from __future__ import annotations

import numpy as np
import pytest

from latency_tables.predict import LatencyPredictor, MissingUnitsError, fastest_latency
from latency_tables.units import units_of
from tracking.space import SearchSpace, lighttrack_mobile, sample_many, to_genes

CALIB = {"coef": {"raw_ms": 1.08, "n_blocks": 0.02, "n_head_layers": -0.004}, "intercept": 0.3}


def test_sum_equals_per_unit_lookup(synthetic_medians):
    space = SearchSpace.paper()
    med = synthetic_medians(space)
    overhead = 0.004
    pred = LatencyPredictor(med, space, overhead_ms=overhead)
    arch = lighttrack_mobile()
    units = units_of(arch, space)
    expected = sum(med[u.key] for u in units) - (len(units) - 1) * overhead
    assert pred.predict(arch) == pytest.approx(expected, rel=1e-12)
    assert pred.raw_sum(arch) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("calibration", [None, CALIB])
def test_predict_genes_equals_predict(space, calibration, synthetic_medians):
    pred = LatencyPredictor(synthetic_medians(space, 1), space, 0.003, calibration)
    archs = sample_many(500, 7, space)
    one_by_one = np.array([pred.predict(a) for a in archs])
    genes = np.array([to_genes(a, space) for a in archs])
    np.testing.assert_allclose(pred.predict_genes(genes), one_by_one, rtol=1e-12)
    np.testing.assert_allclose(pred.predict_batch(archs), one_by_one, rtol=1e-12)


def test_calibration_is_applied_to_the_raw_sum(synthetic_medians):
    space = SearchSpace.paper()
    raw = LatencyPredictor(synthetic_medians(space), space)
    cal = LatencyPredictor(synthetic_medians(space), space, calibration=CALIB)
    arch = lighttrack_mobile()
    f = raw.features(arch)
    assert (f["n_blocks"], f["n_head_layers"]) == (13, 14)
    expected = 1.08 * f["raw_ms"] + 0.02 * 13 - 0.004 * 14 + 0.3
    assert cal.predict(arch) == pytest.approx(expected, rel=1e-12)


def test_missing_unit_names_itself(synthetic_medians):
    space = SearchSpace.paper()
    med = synthetic_medians(space)
    gone = "head:in192x16x16:out192:k5"
    del med[gone]
    pred = LatencyPredictor(med, space)
    with pytest.raises(MissingUnitsError) as e:
        pred.predict(lighttrack_mobile())  # its reg tower uses 5x5 layers at 192
    assert e.value.keys == [gone] and gone in str(e.value)
    assert isinstance(e.value, ValueError)
    with pytest.raises(MissingUnitsError) as e:
        pred.predict_batch(sample_many(200, 0, space))
    assert e.value.keys == [gone]
    assert pred.missing_units() == [gone]
    with pytest.raises(MissingUnitsError):
        pred.fastest()
    # An arch that does not use it is still predicted.
    arch = lighttrack_mobile()
    assert pred.predict(type(arch)(arch.backbone, 3, 2, arch.cls, arch.cls)) > 0


def test_bad_genes_are_rejected(synthetic_medians):
    space = SearchSpace.paper()
    pred = LatencyPredictor(synthetic_medians(space), space)
    genes = np.array([to_genes(lighttrack_mobile(), space)])
    with pytest.raises(ValueError, match="shape"):
        pred.predict_genes(genes[:, :10])
    bad = genes.copy()
    bad[0, 16] = 2  # cls layer 1 cannot be skip
    with pytest.raises(ValueError, match="gene 16"):
        pred.predict_genes(bad)
    bad = genes.copy()
    bad[0, 3] = -1
    with pytest.raises(ValueError, match="gene 3"):
        pred.predict_genes(bad)


@pytest.mark.parametrize("calibration", [None, CALIB])
def test_fastest_is_the_exact_minimum_of_a_small_space(calibration, synthetic_medians):
    """Brute force over every network of a reduced space."""
    space = SearchSpace(stage_blocks=(1, 1, 1, 1), output_stages=(2, 3), head_layers=2)
    pred = LatencyPredictor(synthetic_medians(space, 3), space, 0.002, calibration)
    sizes = [6] * 4 + [len(space.output_positions)] + [3, 2, 3] * 2
    genes = np.indices(sizes).reshape(len(sizes), -1).T  # every gene combination
    assert len(genes) == 6**4 * 2 * (3 * 2 * 3) ** 2
    best = pred.predict_genes(genes).min()
    ms, arch = pred.fastest()
    assert ms == pytest.approx(best, rel=1e-12)
    assert pred.predict(arch) == pytest.approx(ms, rel=1e-12)
    assert fastest_latency(pred) == pytest.approx(ms)


def test_fastest_bounds_samples_of_the_real_spaces(space, synthetic_medians):
    pred = LatencyPredictor(synthetic_medians(space, 5), space, 0.002)
    ms, arch = pred.fastest()
    genes = np.array([to_genes(a, space) for a in sample_many(5000, 1, space)])
    assert pred.predict_genes(genes).min() >= ms
    assert pred.predict(arch) == pytest.approx(ms)
