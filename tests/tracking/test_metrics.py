"""Tracking metrics against hand-computed values (GOT-10k and OTB definitions)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tracking.metrics import (
    center_error,
    clip_boxes,
    got10k_scores,
    otb_scores,
    precision_at,
    rect_iou,
    sequence_ious,
    success_auc,
)


def test_rect_iou_hand_cases():
    a = [[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 4, 10]]
    b = [[5, 5, 10, 10], [0, 0, 10, 10], [10, 0, 10, 10], [0, 0, 10, 10]]
    np.testing.assert_allclose(rect_iou(a, b), [25 / 175, 1.0, 0.0, 0.4])


def test_rect_iou_bound_clips_the_toolkits_way():
    # the GOT-10k toolkit clamps the corner into the image and keeps the size that fits: a box
    # 5 px left of the image is shifted in (x=0, w=10), not cut to w=5
    assert rect_iou([[-5, 0, 10, 10]], [[0, 0, 5, 10]], bound=(100, 100))[0] == pytest.approx(0.5)
    assert rect_iou([[-5, 0, 10, 10]], [[0, 0, 5, 10]])[0] == pytest.approx(0.5)  # cut, it would be 1.0
    # past the right border the width is cut to what fits: [95, 100) vs [90, 100)
    assert rect_iou([[95, 0, 10, 10]], [[90, 0, 10, 10]], bound=(100, 100))[0] == pytest.approx(0.5)
    np.testing.assert_allclose(clip_boxes([[-5, 120, 10, 10], [50, 50, 80, -3]], (100, 100)),
                               [[0, 100, 10, 0], [50, 50, 50, 0]])


def test_rect_iou_rejects_bad_shapes():
    with pytest.raises(ValueError, match="shape"):
        rect_iou(np.zeros((3, 3)), np.zeros((3, 3)))


def test_got10k_drops_first_frame_and_thresholds_strictly():
    gt = np.array([[0, 0, 10, 10]] * 4, dtype=float)
    # IoUs: frame 0 (init) 0.0 ignored; then 0.8 (=8x10 overlap), 0.5 exactly, 0.2
    pred = np.array([[50, 50, 10, 10], [0, 0, 8, 10], [0, 0, 5, 10], [0, 0, 2, 10]], dtype=float)
    ious = sequence_ious(pred, gt)
    np.testing.assert_allclose(ious, [0.8, 0.5, 0.2])
    s = got10k_scores(ious)
    assert s["ao"] == pytest.approx(0.5)
    assert s["sr50"] == pytest.approx(1 / 3)  # 0.5 is not > 0.5
    assert s["sr75"] == pytest.approx(1 / 3)
    assert s["score"] == pytest.approx((0.5 + 1 / 3) / 2)
    assert s["frames"] == 3


def test_got10k_pools_frames_across_sequences():
    s = got10k_scores([np.array([0.6, 0.4]), np.array([1.0])])
    assert s["ao"] == pytest.approx(2.0 / 3)  # frame-weighted, not the mean of per-sequence means
    assert s["sr50"] == pytest.approx(2 / 3)
    with pytest.raises(ValueError):
        got10k_scores([])


def test_success_auc_21_thresholds():
    # > thr: thresholds 0..0.45 (10 of them) -> 2/3, 0.5..0.95 (10) -> 1/3, 1.0 -> 0
    assert success_auc(np.array([0.0, 0.5, 1.0])) == pytest.approx(10 / 21)
    assert success_auc(np.ones(5)) == pytest.approx(20 / 21)


def test_center_error_and_precision():
    assert center_error([[0, 0, 10, 10]], [[3, 4, 10, 10]])[0] == pytest.approx(5.0)
    assert center_error([[0, 0, 10, 10]], [[0, 0, 20, 20]])[0] == pytest.approx(math.sqrt(50))
    assert precision_at(np.array([0.0, 20.0, 20.0001, 50.0])) == pytest.approx(0.5)


def test_otb_scores_perfect_tracking():
    boxes = np.array([[10, 10, 20, 30], [12, 11, 20, 30]], dtype=float)
    s = otb_scores(boxes, boxes)
    assert s["precision20"] == 1.0
    assert s["success_auc"] == pytest.approx(20 / 21)
