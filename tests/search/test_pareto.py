import numpy as np
import pytest
from pymoo.indicators.hv import HV

from search.pareto import (
    crowding_distance,
    hypervolume,
    hypervolume_2d,
    non_dominated_ranks,
    pareto_mask,
    rank_and_crowding_order,
)


def test_hypervolume_2d_hand_computed():
    F = np.array([[0.2, 0.6], [0.5, 0.3]])
    # (1-0.2)*(1-0.6) + (1-0.5)*(0.6-0.3) = 0.32 + 0.15
    assert hypervolume(F, [1, 1]) == pytest.approx(0.47)
    assert hypervolume_2d(F, np.array([1.0, 1.0])) == pytest.approx(0.47)


def test_hypervolume_ignores_dominated_and_outside_points():
    F = np.array([[0.2, 0.6], [0.5, 0.3], [0.6, 0.7], [1.5, 0.1], [0.1, 1.0]])
    assert hypervolume(F, [1, 1]) == pytest.approx(0.47)
    assert hypervolume(np.array([[2.0, 2.0]]), [1, 1]) == 0.0
    assert hypervolume(np.zeros((0, 2)), [1, 1]) == 0.0


def test_hypervolume_3d_hand_computed():
    assert hypervolume(np.array([[0.5, 0.5, 0.5]]), [1, 1, 1]) == pytest.approx(0.125)
    # two boxes 0.5*0.5*1 + 1*0.5*0.5 minus their overlap 0.5*0.5*0.5
    F = np.array([[0.5, 0.5, 0.0], [0.0, 0.5, 0.5]])
    assert hypervolume(F, [1, 1, 1]) == pytest.approx(0.25 + 0.25 - 0.125)


def test_hypervolume_matches_pymoo_on_random_sets():
    rng = np.random.default_rng(0)
    for m in (2, 3):
        F = rng.random((40, m))
        assert hypervolume(F, np.ones(m)) == pytest.approx(float(HV(ref_point=np.ones(m))(F)))


def test_pareto_mask_and_ranks():
    F = np.array([[1, 5], [2, 3], [3, 4], [4, 1], [2, 3]], dtype=float)
    assert pareto_mask(F).tolist() == [True, True, False, True, True]
    ranks = non_dominated_ranks(F)
    assert ranks.tolist() == [0, 0, 1, 0, 0]


def test_crowding_boundaries_infinite_and_order_prefers_first_front():
    F = np.array([[0.0, 1.0], [0.5, 0.5], [1.0, 0.0], [0.6, 0.6]])
    d = crowding_distance(F[:3])
    assert np.isinf(d[0]) and np.isinf(d[2]) and d[1] == pytest.approx(2.0)
    order = rank_and_crowding_order(F)
    assert order[-1] == 3
