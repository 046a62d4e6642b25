"""Validation score of a candidate architecture on the trained supernet.

For each candidate: recalibrate the BN statistics of its path on a fixed set of training pairs
(:mod:`tracking.bn`), then score it

* ``pairs`` mode (fast proxy): mean IoU of the predicted box (highest-scoring cell, its l,t,r,b
  box) against the true box on a fixed, seeded set of validation template/search pairs, batched;
* ``sequences`` mode (the paper's score): one-pass tracking of the validation sequences with the
  real :class:`tracking.tracker.Tracker`; GOT-10k AO, SR@0.5, SR@0.75; score = (AO + SR@0.5) / 2;
  plus ``static_ao`` / ``static_score``, the same for a box that never leaves the first frame's
  position (:func:`static_box_scores`), so a score can be read against doing nothing.

``runtime="onnx"`` tracks sequences on onnxruntime: each candidate's path, with its recalibrated
BN statistics, extracted and exported to ONNX (about 1.6x faster per candidate on CPU; float
rounding then moves scores by about a quarter of their standard error, docs/validation.md).

BN statistics are restored after every candidate and no weight is ever updated, so candidates
are scored independently of their order. Crops and calibration batches are prepared once, in
the constructor, from seeds; a score depends only on (supernet, data, settings, arch).

Cost per candidate (CPU): ``bn_batches * bn_batch_size`` (default 32) template+search forwards in
train mode, each about 2.3x a bare eval forward of one pair, plus ``n_pairs`` (256) forwards
batched (pairs mode) or one batch-1 forward per frame plus the tracker's crop (sequences mode,
20 x 50 frames). Measured with the defaults: 1.10x the bare subnet forward (pairs; ~25 s per
candidate for LightTrack-Mobile on 2 CPU threads) and 1.32x (sequences, ~137 s; 1.22x of it is the
tracker's per-frame crop). ``benchmarks/bench_validation.py`` prints the figures; ``docs/validation.md`` has them.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from tracking.bn import recalibrated
from tracking.data.got10k import Dataset, read_dataset
from tracking.data.pairs import PairConfig, PairDataset, collate
from tracking.metrics import got10k_scores, sequence_ious
from tracking.progress import Progress
from tracking.space import Architecture
from tracking.supernet import cell_centres

Mode = Literal["pairs", "sequences"]
Runtime = Literal["torch", "onnx"]


def decode_boxes(cls: torch.Tensor, reg: torch.Tensor) -> torch.Tensor:
    """Box ``(x1, y1, x2, y2)`` in search pixels of the highest-scoring cell of each sample."""
    b = cls.shape[0]
    idx = cls.reshape(b, -1).argmax(dim=1)
    centres = cell_centres(cls.shape[-1]).reshape(2, -1).to(cls.device)  # [2, 256]
    cx, cy = centres[0, idx], centres[1, idx]
    ltrb = reg.reshape(b, 4, -1)[torch.arange(b), :, idx]  # [B, 4]
    return torch.stack([cx - ltrb[:, 0], cy - ltrb[:, 1], cx + ltrb[:, 2], cy + ltrb[:, 3]], dim=1)


def box_iou_xyxy(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    x1 = torch.maximum(a[:, 0], b[:, 0])
    y1 = torch.maximum(a[:, 1], b[:, 1])
    x2 = torch.minimum(a[:, 2], b[:, 2])
    y2 = torch.minimum(a[:, 3], b[:, 3])
    inter = (x2 - x1).clamp(min=0) * (y2 - y1).clamp(min=0)
    area = lambda r: (r[:, 2] - r[:, 0]).clamp(min=0) * (r[:, 3] - r[:, 1]).clamp(min=0)  # noqa: E731
    return inter / (area(a) + area(b) - inter).clamp(min=1e-9)


def toolkit_frames(seq: Any, n: int) -> dict[str, Any]:
    """``bound`` and ``visible`` for :func:`sequence_ious` as the GOT-10k toolkit scores the first
    ``n`` frames of ``seq``: its resolution (``meta_info.ini`` or the first frame) and its scored
    frames (target visible). Sequence-like objects without them: first frame's size, every frame."""
    bound = getattr(seq, "resolution", None)
    if bound is None:
        h, w = seq.load_frame(0).shape[:2]
        bound = (w, h)
    scored = getattr(seq, "scored", None)
    return {"bound": bound, "visible": None if scored is None else scored[:n]}


def static_box_scores(sequences: list[Any], max_frames: int | None = None) -> dict[str, float]:
    """GOT-10k metrics of a "tracker" that keeps the first frame's box: the bar a real tracker must
    clear on these sequences (slow targets make it high; reported beside every sequences score)."""
    ious = []
    for seq in sequences:
        n = len(seq) if not max_frames else min(len(seq), max_frames)
        ious.append(sequence_ious(np.repeat(seq.boxes[:1], n, axis=0), seq.boxes[:n], **toolkit_frames(seq, n)))
    return got10k_scores(ious)


def mean_se(values: np.ndarray) -> float | None:
    """Standard error of the mean of independent ``values`` (sample sd, ddof=1, over sqrt(n));
    None for fewer than two values."""
    v = np.asarray(values, dtype=np.float64).ravel()
    return float(v.std(ddof=1) / np.sqrt(v.size)) if v.size >= 2 else None


def pooled_score_se(ious: list[np.ndarray]) -> float | None:
    """Standard error over sequences of the pooled GOT-10k score ``(AO + SR@0.5) / 2``.

    The score pools frames of all sequences, so it is a ratio ``sum_i S_i / sum_i n_i`` (``S_i``:
    the sum of per-frame ``(iou + [iou > 0.5]) / 2`` of sequence i, ``n_i`` its frames); frames
    of one sequence are not independent, sequences are. Its cluster-robust (sandwich) standard
    error with sequences as clusters is ``sqrt(k / (k - 1) * sum_i (S_i - m n_i)^2) / sum_i n_i``,
    which is the plain sd / sqrt(k) of per-sequence scores when all sequences have equal length.
    None for fewer than two sequences with frames."""
    parts = [np.asarray(x, dtype=np.float64).ravel() for x in ious]
    parts = [x for x in parts if x.size]
    k = len(parts)
    if k < 2:
        return None
    s = np.array([((x + (x > 0.5)) / 2).sum() for x in parts])
    n = np.array([x.size for x in parts], dtype=np.float64)
    m = s.sum() / n.sum()
    return float(np.sqrt(k / (k - 1) * ((s - m * n) ** 2).sum()) / n.sum())


class ValidationScorer:
    """Scores architectures on one supernet: ``score(arch) -> dict``, ``score_many(archs)``.

    ``data_dir``: validation data (GOT-10k layout). ``bn_data_dir``: training data for BN
    recalibration (default: ``data_dir``). ``bn_batches=0`` skips recalibration. ``device``: where
    the supernet and the prepared crops go (auto, cpu, cuda, cuda:N; None: where the supernet is).
    """

    def __init__(self, supernet: torch.nn.Module, data_dir: str | Path, mode: Mode = "pairs", *,
                 bn_data_dir: str | Path | None = None, bn_batches: int = 1, bn_batch_size: int = 32,
                 n_pairs: int = 256, batch_size: int = 64, max_sequences: int | None = 20,
                 max_frames: int | None = 50, seed: int = 0, tracker_config: Any = None,
                 pair_config: PairConfig | None = None, progress: Progress | None = None,
                 device: str | torch.device | None = None, runtime: Runtime = "torch") -> None:
        if mode not in ("pairs", "sequences"):
            raise ValueError(f"mode must be 'pairs' or 'sequences', got {mode!r}")
        if runtime not in ("torch", "onnx"):
            raise ValueError(f"runtime must be 'torch' or 'onnx', got {runtime!r}")
        if device is not None:
            from tracking.devices import resolve_device

            supernet.to(device if isinstance(device, torch.device) else resolve_device(device))
        p = next(supernet.parameters(), None)
        self.device = p.device if p is not None else torch.device("cpu")
        if runtime == "onnx" and self.device.type != "cpu":
            raise ValueError("runtime 'onnx' tracks on onnxruntime's CPU provider: use device 'cpu'")
        self.supernet, self.mode, self.seed, self.runtime = supernet, mode, seed, runtime
        self.batch_size, self.progress = batch_size, progress
        self.tracker_config = tracker_config
        self.data: Dataset = read_dataset(data_dir, on_error="skip")
        if len(self.data) == 0:
            raise ValueError(f"{data_dir}: no usable validation sequences")
        bn_data = self.data if bn_data_dir is None else read_dataset(bn_data_dir, on_error="skip")
        pcfg = pair_config or PairConfig()
        bn_pairs = PairDataset(bn_data, bn_batches * bn_batch_size, seed=seed + 1, config=pcfg)
        self.bn_batches = [
            (b["template"].to(self.device), b["search"].to(self.device))
            for b in (collate([bn_pairs[i * bn_batch_size + k] for k in range(bn_batch_size)])
                      for i in range(bn_batches))]
        if mode == "pairs":
            val = PairDataset(self.data, n_pairs, seed=seed, config=pcfg)
            self.pairs = {k: v.to(self.device) for k, v in collate([val[i] for i in range(n_pairs)]).items()}
        else:
            self.sequences = self.data.sequences[:max_sequences] if max_sequences else self.data.sequences
            self.max_frames = max_frames
            self.static = static_box_scores(self.sequences, max_frames)

    def score(self, arch: Architecture) -> dict[str, Any]:
        """``{"score", "score_se", ...}``; pairs mode adds ``mean_iou``, ``sr50``; sequences mode
        ``ao``, ``sr50``, ``sr75``, ``frames``. Also ``arch`` (LightTrack string) and ``seconds``.
        ``score_se``: standard error of ``score`` over pairs (pairs mode) or over sequences
        (sequences mode, :func:`pooled_score_se`); None with a single pair or sequence."""
        t0 = time.perf_counter()
        with self.calibrated(arch):
            res = self._score_pairs(arch) if self.mode == "pairs" else self._score_sequences(arch)
        res["arch"] = arch.to_string()
        res["mode"] = self.mode
        res["seconds"] = time.perf_counter() - t0
        return res

    def score_many(self, archs: list[Architecture]) -> list[dict[str, Any]]:
        """``score`` of each architecture; reports ``("score (<mode>)", done, total)`` to ``progress``."""
        out = []
        for a in archs:
            out.append(self.score(a))
            if self.progress:
                self.progress(f"score ({self.mode})", len(out), len(archs))
        return out

    # -- modes ---------------------------------------------------------------------------------
    @torch.no_grad()
    def _score_pairs(self, arch: Architecture) -> dict[str, Any]:
        n = self.pairs["box"].shape[0]
        ious = []
        for s in range(0, n, self.batch_size):
            z = self.pairs["template"][s:s + self.batch_size]
            x = self.pairs["search"][s:s + self.batch_size]
            cls, reg = self.supernet.track(self.supernet.template_feature(z, arch), x, arch)
            ious.append(box_iou_xyxy(decode_boxes(cls, reg), self.pairs["box"][s:s + self.batch_size]))
        iou = torch.cat(ious).cpu().numpy().astype(np.float64)
        return {"score": float(iou.mean()), "score_se": mean_se(iou), "mean_iou": float(iou.mean()),
                "sr50": float((iou > 0.5).mean()), "pairs": int(n)}

    def calibrated(self, arch: Architecture) -> Any:
        """Context in which ``arch``'s BN statistics are recalibrated (restored on exit)."""
        arch.validate(self.supernet.space)
        return recalibrated(self.supernet, arch, self.bn_batches)

    def _score_sequences(self, arch: Architecture) -> dict[str, Any]:
        return self.track_sequences(arch, self.tracker_config)

    def track_sequences(self, arch: Architecture, tracker_config: Any = None) -> dict[str, Any]:
        """Sequences-mode metrics of ``arch`` with the given tracker settings, without BN
        recalibration (run inside :meth:`calibrated` to compare settings on one calibration)."""
        from tracking.tracker import Tracker

        if self.mode != "sequences":
            raise ValueError("track_sequences needs a scorer in sequences mode")
        all_ious = []
        self.predictions: dict[str, np.ndarray] = {}  # per sequence, for --save-results
        with self._tracking_model(arch) as model:
            for seq in self.sequences:
                all_ious.append(self._track_one(Tracker(model, tracker_config), seq))
        res = got10k_scores(all_ious)
        res["score_se"] = pooled_score_se(all_ious)
        res["sequences"] = len(self.sequences)
        res["static_ao"], res["static_score"] = self.static["ao"], self.static["score"]
        res["runtime"] = self.runtime
        return res

    def _track_one(self, tracker: Any, seq: Any) -> np.ndarray:
        """Per-frame IoUs of one-pass tracking of ``seq`` (its boxes kept in ``predictions``)."""
        n = len(seq) if not self.max_frames else min(len(seq), self.max_frames)
        tracker.init(seq.load_frame(0), tuple(seq.boxes[0]))
        pred = [seq.boxes[0]]
        for i in range(1, n):
            box, _ = tracker.update(seq.load_frame(i))
            pred.append(box)
        self.predictions[seq.name] = np.asarray(pred, dtype=np.float64)
        return sequence_ious(self.predictions[seq.name], seq.boxes[:n], **toolkit_frames(seq, n))

    @contextlib.contextmanager
    def _tracking_model(self, arch: Architecture) -> Iterator[Any]:
        """What the tracker runs: the supernet's path (torch), or that path with its current (here:
        recalibrated) BN statistics extracted and exported to ONNX, run by onnxruntime on as many
        threads as torch uses. Batch-1 frames are where eager torch is slowest: onnxruntime runs
        them in about half the time (docs/validation.md), for an export of about a second."""
        if self.runtime == "torch":
            yield (self.supernet, arch)
            return
        from tracking.export import OnnxTrackerModel, export_onnx
        from tracking.subnet import extract_subnet

        with tempfile.TemporaryDirectory(prefix="lutnas-score-") as d:
            export_onnx(extract_subnet(self.supernet, arch), d)
            yield OnnxTrackerModel(d, threads=torch.get_num_threads())
