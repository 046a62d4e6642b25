"""Single-object tracking loop with LightTrack/Ocean-style post-processing.

``init`` crops a template around the first box (context 0.5, mean-colour padding) and computes its
feature once; every ``update`` crops a search region of twice the template's side around the
previous position, runs the search branch, and picks the cell maximising
``score * penalty`` blended with a cosine window, where the penalty discourages changes of scale
and aspect ratio. The size is smoothed with a learning rate scaled by that cell's penalised score.
Score-map geometry (cell centres, l/t/r/b distances) follows ``tracking/supernet.py``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from tracking.crop import context_size, crop_square, mean_colour, normalise

Box = tuple[float, float, float, float]


class TrackerConfig(BaseModel):
    """Hyper-parameters (LightTrack's VOT values by default)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    penalty_k: float = Field(0.007, ge=0)
    window_influence: float = Field(0.225, ge=0, le=1)
    lr: float = Field(0.616, ge=0, le=1)
    context_amount: float = Field(0.5, ge=0)
    template_size: int = Field(128, gt=0)
    search_size: int = Field(256, gt=0)
    stride: int = Field(16, gt=0)
    min_size: float = Field(10.0, gt=0, description="smallest box side kept, in frame pixels")
    calibrate_size: bool = Field(
        False, description="divide predicted sizes by the network's error on the first frame, where the size is known")

    @property
    def score_size(self) -> int:
        return self.search_size // self.stride


class _TorchModel:
    """Adapter: numpy in/out around a torch ``TrackerPath`` (a ``Subnet`` or a supernet path)."""

    def __init__(self, net: Any) -> None:
        import torch

        self.torch = torch
        self.net = net.eval()  # BN must use running statistics while tracking
        p = next(net.parameters(), None)
        self.device = p.device if p is not None else torch.device("cpu")

    def template_feature(self, z: np.ndarray) -> Any:
        with self.torch.no_grad():
            return self.net.template_feature(self.torch.from_numpy(z).to(self.device))

    def track(self, zf: Any, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with self.torch.no_grad():
            cls, reg = self.net.track(zf, self.torch.from_numpy(x).to(self.device))
        return cls.float().cpu().numpy(), reg.float().cpu().numpy()


def _adapt(model: Any) -> Any:
    if isinstance(model, tuple):
        if len(model) != 2:
            raise ValueError("model tuple must be (Supernet, Architecture)")
        supernet, arch = model
        # The path's forward runs the shared supernet modules (put in eval mode for tracking).
        return _TorchModel(supernet.path(arch))
    if hasattr(model, "search_session"):  # OnnxTrackerModel: already numpy in/out
        return model
    if hasattr(model, "template_feature") and hasattr(model, "parameters"):
        return _TorchModel(model)
    raise TypeError(f"unsupported tracker model {type(model).__name__}: expected a Subnet, "
                    "(Supernet, Architecture) or OnnxTrackerModel")


def _change(r: np.ndarray | float) -> np.ndarray | float:
    return np.maximum(r, 1.0 / r)


def _sz(w: np.ndarray | float, h: np.ndarray | float) -> np.ndarray | float:
    pad = (w + h) * 0.5
    return np.sqrt((w + pad) * (h + pad))


def _check_frame(frame: np.ndarray) -> None:
    if not isinstance(frame, np.ndarray) or frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        shape = getattr(frame, "shape", None)
        raise ValueError(f"frame must be an HxWx3 uint8 RGB array, got {type(frame).__name__} {shape}")


class Tracker:
    """``Tracker(model, config)``; ``init(frame, box)`` then ``update(frame) -> (box, score)``.

    ``model``: a :class:`tracking.subnet.Subnet`, a ``(Supernet, Architecture)`` pair or a
    :class:`tracking.export.OnnxTrackerModel`. Torch models are switched to eval mode.
    """

    def __init__(self, model: Any, config: TrackerConfig | None = None) -> None:
        self.model = _adapt(model)
        self.config = config or TrackerConfig()
        n = self.config.score_size
        hann = np.hanning(n + 2)[1:-1]  # strictly positive cosine window
        self.window = np.outer(hann, hann).astype(np.float32)
        c = np.arange(n, dtype=np.float32) * self.config.stride + self.config.stride / 2
        self.grid_x, self.grid_y = np.meshgrid(c, c)  # cell centres (x, y) in search-image pixels
        self.centre: np.ndarray | None = None
        self.size: np.ndarray | None = None

    def init(self, frame: np.ndarray, box: Box) -> None:
        _check_frame(frame)
        x, y, w, h = (float(v) for v in box)
        if not (w > 0 and h > 0) or not np.isfinite([x, y, w, h]).all():
            raise ValueError(f"initial box must have positive width and height, got {box}")
        cfg = self.config
        self.frame_hw = frame.shape[:2]
        self.centre = np.array([x + w / 2, y + h / 2], np.float64)
        self.size = np.array([w, h], np.float64)
        self.pad = mean_colour(frame)
        s_z = context_size(w, h, cfg.context_amount)
        z = crop_square(frame, tuple(self.centre), s_z, cfg.template_size, self.pad)
        self.zf = self.model.template_feature(normalise(z)[None])
        self.size_gain = np.ones(2)
        if cfg.calibrate_size:
            # A regressor that is biased for this target (typical of short training: it leans to
            # the data's usual size and aspect) makes the box grow or shrink every frame, since
            # each frame's crop is scaled by the last estimate. The first frame's size is known:
            # its prediction there gives the bias, which later frames divide out, so only the
            # network's response to a size *change* moves the box.
            scale = cfg.template_size / s_z
            _, pred, _ = self._predict(frame, scale)
            if np.isfinite(pred).all() and (pred > 0).all():
                self.size_gain = np.clip(self.size * scale / pred, 0.5, 2.0)

    def update(self, frame: np.ndarray) -> tuple[Box, float]:
        if self.centre is None or self.size is None:
            raise RuntimeError("Tracker.update called before init")
        _check_frame(frame)
        cfg = self.config
        s_z = context_size(*self.size, cfg.context_amount)
        scale = cfg.template_size / s_z  # search-image pixels per frame pixel
        (i, j), pred, (score, penalty, pred_cx, pred_cy) = self._predict(frame, scale)
        pred_w, pred_h = pred * self.size_gain
        half = cfg.search_size / 2
        offset = np.array([pred_cx[i, j] - half, pred_cy[i, j] - half]) / scale
        lr = penalty[i, j] * score[i, j] * cfg.lr
        new_size = self.size * (1 - lr) + np.array([pred_w, pred_h]) / scale * lr
        fh, fw = self.frame_hw = frame.shape[:2]
        if not (np.isfinite(offset).all() and np.isfinite(new_size).all()):
            return self._box_in_frame(), 0.0  # a non-finite output must not corrupt the state: keep it
        self.centre = np.clip(self.centre + offset, 0, [fw, fh])
        self.size = np.clip(new_size, cfg.min_size, [max(fw, cfg.min_size), max(fh, cfg.min_size)])
        return self._box_in_frame(), float(score[i, j])

    def _predict(self, frame: np.ndarray, scale: float) -> tuple[tuple[int, int], np.ndarray, tuple[np.ndarray, ...]]:
        """Run the network on the search region around the current centre at ``scale`` (search
        pixels per frame pixel) and pick a cell: ``((i, j), (w, h) predicted there in search pixels
        (calibration gain not applied), (score, penalty, pred_cx, pred_cy) maps)``."""
        cfg = self.config
        x = crop_square(frame, tuple(self.centre), cfg.search_size / scale, cfg.search_size, self.pad)
        cls, reg = self.model.track(self.zf, normalise(x)[None])
        score = 0.5 * (1.0 + np.tanh(0.5 * np.nan_to_num(cls[0, 0].astype(np.float64))))  # sigmoid, no overflow
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):  # handled by the caller
            left, top, right, bottom = reg[0].astype(np.float64)
            pred_cx = self.grid_x + (right - left) / 2
            pred_cy = self.grid_y + (bottom - top) / 2
            # the calibrated size is what the scale/ratio penalty compares with the last size
            pred_w = np.maximum(left + right, 1e-6) * self.size_gain[0]
            pred_h = np.maximum(top + bottom, 1e-6) * self.size_gain[1]

            target = self.size * scale  # previous size in search-image pixels
            s_c = _change(_sz(pred_w, pred_h) / _sz(*target))
            r_c = _change((target[0] / target[1]) / (pred_w / pred_h))
            penalty = np.exp(-(r_c * s_c - 1) * cfg.penalty_k)
            pscore = penalty * score
            pscore = pscore * (1 - cfg.window_influence) + self.window * cfg.window_influence
            pscore = np.nan_to_num(pscore, nan=-1.0)  # cells with non-finite outputs never win
        i, j = np.unravel_index(int(np.argmax(pscore)), pscore.shape)
        pred = np.array([pred_w[i, j], pred_h[i, j]]) / self.size_gain
        return (int(i), int(j)), pred, (score, penalty, pred_cx, pred_cy)

    def _box_in_frame(self) -> Box:
        fh, fw = self.frame_hw
        x1, y1 = np.maximum(self.centre - self.size / 2, 0)
        x2, y2 = np.minimum(self.centre + self.size / 2, [fw, fh])
        return float(x1), float(y1), float(max(x2 - x1, 0.0)), float(max(y2 - y1, 0.0))


def track_sequence(tracker: Tracker, seq: Any, max_frames: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One-pass tracking of ``seq`` (a :class:`tracking.data.Sequence`) from its first box.

    Returns ``(boxes [N,4], sizes [N,2])``: the reported ``(x, y, w, h)`` per frame (clipped to
    the frame) and the tracker's own ``(w, h)`` estimate (unclipped, what a size error is measured
    on); row 0 is the initial box."""
    n = len(seq) if not max_frames else min(len(seq), max_frames)
    tracker.init(seq.load_frame(0), tuple(seq.boxes[0]))
    boxes, sizes = [np.asarray(seq.boxes[0], np.float64)], [np.asarray(seq.boxes[0][2:], np.float64)]
    for i in range(1, n):
        box, _ = tracker.update(seq.load_frame(i))
        boxes.append(np.asarray(box, np.float64))
        sizes.append(tracker.size.copy())
    return np.stack(boxes), np.stack(sizes)


def log_area_errors(sizes: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """``|log(predicted area / true area)|`` per frame after the first (``sizes`` [N,2] w,h;
    ``gt`` [N,4] x,y,w,h boxes)."""
    gt = np.asarray(gt, np.float64)[: len(sizes)]
    return np.abs(np.log(sizes[1:, 0] * sizes[1:, 1] / (gt[1:, 2] * gt[1:, 3])))
