"""Standard errors of validation scores: over pairs (pairs mode), over sequences (sequences mode)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tests.tracking.conftest import small_dataset
from tracking.metrics import got10k_scores
from tracking.space import lighttrack_mobile
from tracking.supernet import Supernet
from tracking.validate import ValidationScorer, mean_se, pooled_score_se

torch.set_num_threads(1)


def test_mean_se_hand_checked() -> None:
    assert mean_se(np.array([1.0, 3.0])) == pytest.approx(1.0)  # sd sqrt(2), over sqrt(2)
    assert mean_se(np.array([0.2, 0.2, 0.2])) == pytest.approx(0.0, abs=1e-15)
    assert mean_se(np.array([0.7])) is None and mean_se(np.zeros(0)) is None


def test_pooled_score_se_is_the_cluster_se_over_sequences() -> None:
    rng = np.random.default_rng(0)
    equal = [rng.random(30) for _ in range(5)]
    per_seq = np.array([got10k_scores([x])["score"] for x in equal])
    # equal lengths: the plain standard error of the per-sequence scores
    assert pooled_score_se(equal) == pytest.approx(per_seq.std(ddof=1) / np.sqrt(5), rel=1e-12)
    # unequal lengths, by hand: frame score (iou + [iou > 0.5]) / 2 is 1 for IoU 1, 0.25 for IoU 0.5
    # (0.5 is not > 0.5), 0 for IoU 0; sequence sums S = (1.25, 0) over n = (2, 1) frames
    a, b = np.array([1.0, 0.5]), np.array([0.0])
    s = np.array([1.25, 0.0])
    n = np.array([2.0, 1.0])
    m = s.sum() / n.sum()
    assert got10k_scores([a, b])["score"] == pytest.approx(m)
    expect = np.sqrt(2 / 1 * ((s - m * n) ** 2).sum()) / n.sum()
    assert pooled_score_se([a, b]) == pytest.approx(expect, rel=1e-12)
    assert pooled_score_se([a]) is None and pooled_score_se([a, np.zeros(0)]) is None
    # the standard error shrinks as independent sequences are added
    many = [rng.random(30) for _ in range(40)]
    assert pooled_score_se(many) < pooled_score_se(many[:5])


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return small_dataset(tmp_path_factory.mktemp("se") / "data", 3, 5, seed=11)


@pytest.fixture(scope="module")
def supernet(random_supernet: Supernet) -> Supernet:
    return random_supernet


def test_both_modes_report_score_se(supernet: Supernet, data: Path) -> None:
    mobile = lighttrack_mobile()
    pairs = ValidationScorer(supernet, data, "pairs", n_pairs=8, batch_size=4, bn_batches=0)
    r = pairs.score(mobile)
    assert isinstance(r["score_se"], float) and 0.0 <= r["score_se"] <= 0.5
    assert pairs.score(mobile)["score_se"] == r["score_se"]  # deterministic
    one = ValidationScorer(supernet, data, "pairs", n_pairs=1, bn_batches=0).score(mobile)
    assert one["score_se"] is None  # one pair: no spread to estimate
    seqs = ValidationScorer(supernet, data, "sequences", bn_batches=0, max_sequences=3, max_frames=4)
    s = seqs.score(mobile)
    assert s["sequences"] == 3 and isinstance(s["score_se"], float) and s["score_se"] >= 0.0
