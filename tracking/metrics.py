"""Tracking metrics, as the GOT-10k and OTB toolkits define them (vectorised numpy).

Boxes are ``(x, y, w, h)`` in pixels, one row per frame. IoU follows the toolkits' ``rect_iou``:
the box covers ``[x, x + w) x [y, y + h)`` (no ``+1``), optionally clipped to the image first.

* GOT-10k: per sequence the first frame (the initialisation) is dropped; IoUs of all sequences are
  pooled; ``AO`` is their mean and ``SR@t`` the share of frames with IoU ``> t`` (strictly).
* OTB: success curve = share of frames with IoU ``> thr`` for 21 thresholds ``0, 0.05, ..., 1``;
  success AUC = its mean. Precision curve = share of frames with centre error ``<= thr`` px for
  ``thr = 0..50``; precision@20 px is its value at 20.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

OTB_IOU_THRESHOLDS = np.linspace(0, 1, 21)
OTB_CE_THRESHOLDS = np.arange(0, 51)


def _as_boxes(boxes: np.ndarray | Sequence) -> np.ndarray:
    arr = np.asarray(boxes, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise ValueError(f"boxes must have shape [N, 4] (x, y, w, h), got {arr.shape}")
    return arr


def rect_iou(a: np.ndarray | Sequence, b: np.ndarray | Sequence,
             bound: tuple[float, float] | None = None) -> np.ndarray:
    """IoU of matching rows of two ``[N, 4]`` box arrays; ``bound=(width, height)`` clips both to
    the image first (as the GOT-10k toolkit does with the sequence resolution)."""
    a, b = _as_boxes(a), _as_boxes(b)
    if a.shape != b.shape:
        raise ValueError(f"box arrays differ in shape: {a.shape} vs {b.shape}")
    if bound is not None:
        a, b = clip_boxes(a, bound), clip_boxes(b, bound)
    x1 = np.maximum(a[:, 0], b[:, 0])
    y1 = np.maximum(a[:, 1], b[:, 1])
    x2 = np.minimum(a[:, 0] + a[:, 2], b[:, 0] + b[:, 2])
    y2 = np.minimum(a[:, 1] + a[:, 3], b[:, 1] + b[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    union = a[:, 2] * a[:, 3] + b[:, 2] * b[:, 3] - inter
    eps = np.finfo(np.float64).eps
    return np.clip(inter / np.maximum(union, eps), 0.0, 1.0)


def clip_boxes(boxes: np.ndarray, bound: tuple[float, float]) -> np.ndarray:
    """Clip ``(x, y, w, h)`` boxes to an image of size ``bound = (width, height)``."""
    boxes = _as_boxes(boxes).copy()
    w, h = bound
    x1 = np.clip(boxes[:, 0], 0, w)
    y1 = np.clip(boxes[:, 1], 0, h)
    x2 = np.clip(boxes[:, 0] + boxes[:, 2], 0, w)
    y2 = np.clip(boxes[:, 1] + boxes[:, 3], 0, h)
    return np.stack([x1, y1, x2 - x1, y2 - y1], axis=1)


def center_error(a: np.ndarray | Sequence, b: np.ndarray | Sequence) -> np.ndarray:
    """Euclidean distance in pixels between the centres of matching boxes."""
    a, b = _as_boxes(a), _as_boxes(b)
    ca = a[:, :2] + a[:, 2:] / 2
    cb = b[:, :2] + b[:, 2:] / 2
    return np.sqrt(((ca - cb) ** 2).sum(axis=1))


def sequence_ious(pred: np.ndarray | Sequence, gt: np.ndarray | Sequence,
                  bound: tuple[float, float] | None = None, skip_first: bool = True) -> np.ndarray:
    """Per-frame IoU of one sequence; the first (initialisation) frame is dropped by default."""
    ious = rect_iou(pred, gt, bound)
    return ious[1:] if skip_first else ious


def got10k_scores(ious: np.ndarray | Sequence[np.ndarray]) -> dict[str, float]:
    """``ao``, ``sr50``, ``sr75`` from per-frame IoUs (one array, or one per sequence, pooled as
    the GOT-10k toolkit pools them) plus ``score = (ao + sr50) / 2`` (LightTrack's search score)."""
    if isinstance(ious, np.ndarray):
        pooled = ious.ravel()
    else:
        parts = [np.asarray(x, dtype=np.float64).ravel() for x in ious]
        pooled = np.concatenate(parts) if parts else np.zeros(0)
    if pooled.size == 0:
        raise ValueError("no frames to score")
    ao = float(pooled.mean())
    sr50 = float((pooled > 0.5).mean())
    sr75 = float((pooled > 0.75).mean())
    return {"ao": ao, "sr50": sr50, "sr75": sr75, "score": (ao + sr50) / 2, "frames": int(pooled.size)}


def success_curve(ious: np.ndarray, thresholds: np.ndarray = OTB_IOU_THRESHOLDS) -> np.ndarray:
    ious = np.asarray(ious, dtype=np.float64).ravel()
    return (ious[None, :] > thresholds[:, None]).mean(axis=1)


def success_auc(ious: np.ndarray) -> float:
    """OTB success AUC: mean of the success curve over 21 IoU thresholds 0..1."""
    return float(success_curve(ious).mean())


def precision_curve(errors: np.ndarray, thresholds: np.ndarray = OTB_CE_THRESHOLDS) -> np.ndarray:
    errors = np.asarray(errors, dtype=np.float64).ravel()
    return (errors[None, :] <= thresholds[:, None]).mean(axis=1)


def precision_at(errors: np.ndarray, px: float = 20.0) -> float:
    """OTB precision: share of frames whose centre error is ``<= px`` (20 px by convention)."""
    errors = np.asarray(errors, dtype=np.float64).ravel()
    return float((errors <= px).mean())


def otb_scores(pred: np.ndarray | Sequence, gt: np.ndarray | Sequence) -> dict[str, float]:
    """Success AUC and precision@20px of one sequence (all frames, OTB style)."""
    ious = rect_iou(pred, gt)
    return {"success_auc": success_auc(ious), "precision20": precision_at(center_error(pred, gt))}
