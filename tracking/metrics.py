"""Tracking metrics, computed as the official toolkits compute them (vectorised numpy).

Boxes are ``(x, y, w, h)`` in pixels, one row per frame. The definitions follow the ``got10k``
package (the GOT-10k toolkit, 0.1.3), which ``tests/tracking/test_metrics_parity.py`` checks us
against to 1e-9:

* IoU (``rect_iou``): a box covers ``[x, x + w) x [y, y + h)`` (no ``+1``); intersection over
  ``union + eps`` clipped to ``[0, 1]``. With a ``bound = (width, height)`` both boxes are first
  clipped the toolkit's way (:func:`clip_boxes`): the corner is clamped into the image and the
  size to what fits right of / below the clamped corner. This is not a geometric intersection
  with the image: a box starting 10 px left of the image keeps its width (it is shifted in).
* GOT-10k (``sequence_ious`` + ``got10k_scores``): per sequence the first frame (the
  initialisation) is dropped, IoUs are taken against the ground truth clipped to the sequence's
  resolution, and only frames where the target is visible count (the toolkit's mask is
  ``cover.label > 0``). IoUs of all sequences are pooled; ``AO`` is their mean and ``SR@t`` the
  share of frames with IoU ``> t`` (strictly).
* OTB / LaSOT (``otb_curves`` + ``otb_scores``): the first frame's prediction is replaced by the
  ground truth (it is the initialisation), frames whose ground truth has a NaN are left out
  (LaSOT). Success curve = share of frames with IoU ``> thr`` for 21 thresholds ``0, 0.05, ..., 1``;
  precision curve = share of frames with centre error ``<= thr`` px for ``thr = 0..50``. Curves
  are averaged over sequences (each sequence weighs the same); success AUC = mean of the averaged
  success curve, precision = its precision curve at 20 px.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

OTB_IOU_THRESHOLDS = np.linspace(0, 1, 21)
OTB_CE_THRESHOLDS = np.arange(0, 51)
_EPS = np.finfo(float).eps


def _as_boxes(boxes: np.ndarray | Sequence) -> np.ndarray:
    arr = np.asarray(boxes, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise ValueError(f"boxes must have shape [N, 4] (x, y, w, h), got {arr.shape}")
    return arr


def clip_boxes(boxes: np.ndarray | Sequence, bound: tuple[float, float]) -> np.ndarray:
    """The GOT-10k toolkit's clipping to an image of size ``bound = (width, height)``: ``x``
    clamped to ``[0, width]``, then ``w`` to ``[0, width - x]`` (same for y, h). A new array."""
    b = _as_boxes(boxes).copy()
    width, height = float(bound[0]), float(bound[1])
    b[:, 0] = np.clip(b[:, 0], 0, width)
    b[:, 1] = np.clip(b[:, 1], 0, height)
    b[:, 2] = np.clip(b[:, 2], 0, width - b[:, 0])
    b[:, 3] = np.clip(b[:, 3], 0, height - b[:, 1])
    return b


def rect_iou(a: np.ndarray | Sequence, b: np.ndarray | Sequence,
             bound: tuple[float, float] | None = None) -> np.ndarray:
    """IoU of matching rows of two ``[N, 4]`` box arrays; ``bound=(width, height)`` clips both
    first (:func:`clip_boxes`). Inputs are never modified."""
    a, b = _as_boxes(a), _as_boxes(b)
    if a.shape != b.shape:
        raise ValueError(f"box arrays differ in shape: {a.shape} vs {b.shape}")
    if bound is not None:
        a, b = clip_boxes(a, bound), clip_boxes(b, bound)
    x1 = np.maximum(a[:, 0], b[:, 0])
    y1 = np.maximum(a[:, 1], b[:, 1])
    x2 = np.minimum(a[:, 0] + a[:, 2], b[:, 0] + b[:, 2])
    y2 = np.minimum(a[:, 1] + a[:, 3], b[:, 1] + b[:, 3])
    inter = np.maximum(x2 - x1, 0) * np.maximum(y2 - y1, 0)
    union = a[:, 2] * a[:, 3] + b[:, 2] * b[:, 3] - inter
    return np.clip(inter / (union + _EPS), 0.0, 1.0)


def center_error(a: np.ndarray | Sequence, b: np.ndarray | Sequence) -> np.ndarray:
    """Euclidean distance in pixels between the centres of matching boxes. The toolkits take the
    centre as ``x + (w - 1) / 2`` (pixel-index convention); the ``-1`` cancels in the distance
    but is kept so the floating-point result is the toolkit's to the last bit."""
    a, b = _as_boxes(a), _as_boxes(b)
    ca = a[:, :2] + (a[:, 2:] - 1) / 2
    cb = b[:, :2] + (b[:, 2:] - 1) / 2
    return np.sqrt(((ca - cb) ** 2).sum(axis=1))


def sequence_ious(pred: np.ndarray | Sequence, gt: np.ndarray | Sequence,
                  bound: tuple[float, float] | None = None, skip_first: bool = True,
                  visible: np.ndarray | Sequence | None = None) -> np.ndarray:
    """Per-frame IoU of one sequence, GOT-10k rules: the first (initialisation) frame dropped by
    default, boxes clipped to ``bound = (width, height)`` when given, and with ``visible`` (one
    flag per frame of ``gt``) only the frames where the target is visible kept."""
    pred, gt = _as_boxes(pred), _as_boxes(gt)
    start = 1 if skip_first else 0
    ious = rect_iou(pred[start:], gt[start:], bound)
    if visible is not None:
        mask = np.asarray(visible, dtype=bool).ravel()
        if mask.size != gt.shape[0]:
            raise ValueError(f"visibility has {mask.size} flags for {gt.shape[0]} frames")
        ious = ious[mask[start:]]
    return ious


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
    return (ious[:, None] > thresholds[None, :]).mean(axis=0)


def success_auc(ious: np.ndarray) -> float:
    """OTB success AUC of pooled IoUs: mean of the success curve over 21 IoU thresholds 0..1."""
    return float(success_curve(ious).mean())


def precision_curve(errors: np.ndarray, thresholds: np.ndarray = OTB_CE_THRESHOLDS) -> np.ndarray:
    errors = np.asarray(errors, dtype=np.float64).ravel()
    return (errors[:, None] <= thresholds[None, :]).mean(axis=0)


def precision_at(errors: np.ndarray, px: float = 20.0) -> float:
    """OTB precision: share of frames whose centre error is ``<= px`` (20 px by convention)."""
    errors = np.asarray(errors, dtype=np.float64).ravel()
    return float((errors <= px).mean())


def otb_curves(pred: np.ndarray | Sequence, gt: np.ndarray | Sequence) -> tuple[np.ndarray, np.ndarray]:
    """Success (21 points) and precision (51 points) curves of one sequence, OTB/LaSOT rules: the
    first prediction is the given ground truth, rows whose ground truth has a NaN are left out."""
    pred, gt = _as_boxes(pred).copy(), _as_boxes(gt)
    if pred.shape != gt.shape:
        raise ValueError(f"{pred.shape[0]} predicted boxes for {gt.shape[0]} ground-truth boxes")
    pred[0] = gt[0]  # the initialisation frame counts as tracked
    valid = ~np.isnan(gt).any(axis=1)
    return (success_curve(rect_iou(pred[valid], gt[valid])),
            precision_curve(center_error(pred[valid], gt[valid])))


def otb_scores(pred: np.ndarray | Sequence, gt: np.ndarray | Sequence) -> dict[str, float]:
    """``success_auc``, ``precision20`` and ``success_rate`` (success at IoU 0.5) as the OTB/LaSOT
    toolkits report them, for one sequence (two ``[N, 4]`` arrays) or several (two lists of
    arrays, per-sequence curves averaged with equal weight)."""
    single = len(pred) > 0 and np.ndim(pred[0]) <= 1  # rows of numbers, not a list of arrays
    preds, gts = ([pred], [gt]) if single else (list(pred), list(gt))
    if len(preds) != len(gts) or not preds:
        raise ValueError(f"{len(preds)} predicted sequences for {len(gts)} ground-truth sequences")
    curves = [otb_curves(p, g) for p, g in zip(preds, gts, strict=True)]
    succ = np.mean([c[0] for c in curves], axis=0)
    prec = np.mean([c[1] for c in curves], axis=0)
    return {"success_auc": float(succ.mean()), "precision20": float(prec[20]),
            "success_rate": float(succ[len(succ) // 2]), "sequences": len(curves)}
