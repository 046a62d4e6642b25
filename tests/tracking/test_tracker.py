"""Tracking loop: crops, box decoding geometry, and runs with torch and onnxruntime models."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tracking.crop import IMAGENET_MEAN, IMAGENET_STD, context_size, crop_square, normalise
from tracking.export import OnnxTrackerModel, export_onnx
from tracking.space import SearchSpace, lighttrack_mobile
from tracking.subnet import extract_subnet
from tracking.supernet import Supernet
from tracking.tracker import Tracker, TrackerConfig

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def supernet() -> Supernet:
    torch.manual_seed(0)
    net = Supernet(SearchSpace.paper())
    # At init the head layers' residual branches are scaled by zero (identity layers), so score
    # maps are nearly flat and their argmax ties; random BN scales make it a generic network.
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
    return net.eval()


def moving_square(n: int = 8, h: int = 240, w: int = 320, seed: int = 0) -> tuple[list[np.ndarray], list]:
    """Frames of a red square moving right and down over textured noise, with its true boxes."""
    rng = np.random.default_rng(seed)
    frames, boxes = [], []
    for t in range(n):
        f = rng.integers(60, 120, size=(h, w, 3), dtype=np.uint8)
        x, y = 100 + 6 * t, 80 + 3 * t
        f[y : y + 40, x : x + 40] = (220, 30, 30)
        frames.append(f)
        boxes.append((x, y, 40, 40))
    return frames, boxes


def test_crop_identity_and_padding():
    img = np.arange(20 * 30 * 3, dtype=np.uint8).reshape(20, 30, 3)
    # a crop of side 10 centred on (15, 10) at 10 pixels is a plain slice
    out = crop_square(img, (15.0, 10.0), 10, 10)
    np.testing.assert_allclose(out, img[5:15, 10:20].astype(np.float32), atol=1e-4)
    pad = np.array([1.0, 2.0, 3.0], np.float32)
    out = crop_square(img, (0.0, 0.0), 10, 10, pad)
    np.testing.assert_allclose(out[:5, :5], np.broadcast_to(pad, (5, 5, 3)))
    np.testing.assert_allclose(out[5:, 5:], img[:5, :5].astype(np.float32), atol=1e-4)
    out = crop_square(img, (30.0, 20.0), 10, 10, pad)  # straddles the bottom-right corner
    np.testing.assert_allclose(out[:5, :5], img[15:, 25:].astype(np.float32), atol=1e-4)
    np.testing.assert_allclose(out[5:], np.broadcast_to(pad, (5, 10, 3)))
    # downscaling by 2 averages pixel pairs (bilinear samples between them)
    out = crop_square(img, (15.0, 10.0), 20, 10)
    expected = img[0:20, 5:25].astype(np.float32).reshape(10, 2, 10, 2, 3).mean(axis=(1, 3))
    np.testing.assert_allclose(out, expected, atol=1.0)  # uint8 output: rounding
    assert context_size(40, 40) == pytest.approx(80.0)


def test_normalise():
    img = np.full((4, 4, 3), 255, np.uint8)
    x = normalise(img)
    assert x.shape == (3, 4, 4) and x.dtype == np.float32
    np.testing.assert_allclose(x[:, 0, 0], (1 - IMAGENET_MEAN) / IMAGENET_STD, rtol=1e-6)


def test_box_decoding_geometry(supernet):
    """Constant heads: logits 0 everywhere and l=t=r=b=32 search pixels. The cosine window then
    picks a centre cell (centred 8 px off the image centre), and the predicted size equals the
    target's, so the box moves by 8 / scale frame pixels per axis and keeps its size."""
    sub = extract_subnet(supernet, lighttrack_mobile())
    with torch.no_grad():
        for out, bias in ((sub.cls_out.conv, 0.0), (sub.reg_out.conv, 0.0)):
            out.weight.zero_()
            out.bias.fill_(bias)
        sub.reg_out.bias.fill_(math.log(2.0))  # 16 * exp(ln 2) = 32
    frames, boxes = moving_square(2)
    tracker = Tracker(sub)
    tracker.init(frames[0], boxes[0])
    (x, y, w, h), score = tracker.update(frames[1])
    scale = 128 / context_size(40, 40)  # 1.6 search pixels per frame pixel; target 64 px wide
    assert score == pytest.approx(0.5)
    assert (w, h) == pytest.approx((40.0, 40.0))
    assert abs(x - 100) == pytest.approx(8 / scale) and abs(y - 80) == pytest.approx(8 / scale)


def test_tracks_moving_square_inside_frame_deterministically(supernet):
    frames, boxes = moving_square(8)
    sub = extract_subnet(supernet, lighttrack_mobile())
    runs = []
    for _ in range(2):
        tracker = Tracker(sub, TrackerConfig())
        tracker.init(frames[0], boxes[0])
        out = [tracker.update(f) for f in frames[1:]]
        runs.append(out)
    assert runs[0] == runs[1]
    fh, fw = frames[0].shape[:2]
    for (x, y, w, h), score in runs[0]:
        assert 0 <= x and 0 <= y and w > 0 and h > 0 and x + w <= fw + 1e-6 and y + h <= fh + 1e-6
        assert 0.0 <= score <= 1.0


def test_supernet_pair_and_onnx_models_agree_with_subnet(supernet, tmp_path):
    frames, boxes = moving_square(3)
    arch = lighttrack_mobile()
    sub = extract_subnet(supernet, arch)
    export_onnx(sub, tmp_path)
    results = []
    for model in (sub, (supernet, arch), OnnxTrackerModel(tmp_path, threads=1)):
        tracker = Tracker(model)
        tracker.init(frames[0], boxes[0])
        results.append([tracker.update(f) for f in frames[1:]])
    for other in results[1:]:
        for (box_a, s_a), (box_b, s_b) in zip(results[0], other, strict=True):
            np.testing.assert_allclose(box_a, box_b, atol=1e-3)
            assert s_a == pytest.approx(s_b, abs=1e-4)


def test_bad_input(supernet):
    tracker = Tracker(extract_subnet(supernet, lighttrack_mobile()))
    frame = np.zeros((50, 60, 3), np.uint8)
    with pytest.raises(RuntimeError):
        tracker.update(frame)
    with pytest.raises(ValueError):
        tracker.init(frame, (10, 10, 0, 5))
    with pytest.raises(ValueError):
        tracker.init(frame.astype(np.float32), (10, 10, 5, 5))
    with pytest.raises(TypeError):
        Tracker(object())


class _BrokenModel:
    """numpy model (the OnnxTrackerModel interface) whose outputs go non-finite from a frame on."""

    search_session = None

    def __init__(self, bad_from: int) -> None:
        self.calls, self.bad_from = 0, bad_from

    def template_feature(self, z):
        return z

    def track(self, zf, x):
        self.calls += 1
        cls = np.zeros((1, 1, 16, 16), np.float32)
        cls[0, 0, 8, 8] = 1e5  # huge logit: the sigmoid must not overflow
        reg = np.full((1, 4, 16, 16), 32.0, np.float32)
        if self.calls >= self.bad_from:
            reg[:] = np.inf if self.calls % 2 else np.nan
        return cls, reg


def test_non_finite_outputs_keep_the_last_box():
    frames, boxes = moving_square(6)
    tracker = Tracker(_BrokenModel(bad_from=3))
    tracker.init(frames[0], boxes[0])
    with np.errstate(all="raise"):
        good = [tracker.update(f) for f in frames[1:3]]
    later = [tracker.update(f) for f in frames[3:]]
    assert all(np.isfinite(b).all() for b, _ in good + later)
    assert all(b == good[-1][0] and s == 0.0 for b, s in later)  # state kept, zero confidence


def growing_square(n: int = 25, h: int = 240, w: int = 320) -> tuple[list[np.ndarray], list]:
    """A red square that moves right and grows from 30 to 54 px over ``n`` frames."""
    frames, boxes = [], []
    for t in range(n):
        f = np.full((h, w, 3), 90, np.uint8)
        side = 30 + t
        x, y = 80 + 2 * t, 90 - t // 2
        f[y:y + side, x:x + side] = (220, 30, 30)
        frames.append(f)
        boxes.append((x, y, side, side))
    return frames, boxes


class _OracleModel:
    """numpy model that reads the red square off the search crop and answers, on every cell, the
    exact l, t, r, b distances to it (and a confident logit at the cell nearest its centre): what a
    network that measures size would output, so the test checks the tracker's own size update."""

    search_session = None

    def template_feature(self, z):
        return z

    def track(self, zf, x):
        img = x[0].transpose(1, 2, 0) * IMAGENET_STD + IMAGENET_MEAN  # back to 0..1 RGB
        ys, xs = np.nonzero((img[..., 0] > 0.6) & (img[..., 1] < 0.3))
        x1, y1, x2, y2 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
        c = np.arange(16, dtype=np.float32) * 16 + 8
        gx, gy = np.meshgrid(c, c)
        reg = np.stack([gx - x1, gy - y1, x2 - gx, y2 - gy])[None].astype(np.float32)
        d = (gx - (x1 + x2) / 2) ** 2 + (gy - (y1 + y2) / 2) ** 2
        cls = np.where(d == d.min(), 8.0, -8.0)[None, None].astype(np.float32)
        return cls, reg


def test_tracker_follows_a_size_change():
    frames, boxes = growing_square()
    finals = {}
    sizing = TrackerConfig(lr=0.3, window_influence=0.5, penalty_k=0.05, calibrate_size=True)
    for name, cfg in (("sizing", sizing), ("frozen size", TrackerConfig(lr=0.0))):
        tracker = Tracker(_OracleModel(), cfg)
        tracker.init(frames[0], boxes[0])
        for f in frames[1:]:
            tracker.update(f)
        finals[name] = tracker.size.copy()
    true = boxes[-1][2]
    assert finals["frozen size"] == pytest.approx([30, 30])
    assert np.abs(np.log(finals["sizing"] / true)).max() < 0.12  # within 12% of 54 px, from 30


class _BiasedOracle(_OracleModel):
    """The oracle, 15% too large and too wide: the bias of a briefly trained regressor."""

    def track(self, zf, x):
        cls, reg = super().track(zf, x)
        reg[:, [0, 2]] *= 1.3
        reg[:, [1, 3]] *= 1.15
        return cls, reg


def test_size_calibration_removes_a_regressor_bias():
    """A biased regressor makes the size grow every frame (each crop is scaled by the last
    estimate); calibrated on the first frame, the same regressor follows the true size."""
    frames, boxes = growing_square()
    finals = {}
    for calibrate in (False, True):
        tracker = Tracker(_BiasedOracle(), TrackerConfig(lr=0.3, penalty_k=0.05, calibrate_size=calibrate))
        tracker.init(frames[0], boxes[0])
        for f in frames[1:]:
            tracker.update(f)
        finals[calibrate] = np.log(tracker.size / boxes[-1][2])
    assert finals[False][0] > 0.2  # drifted larger than the bias itself
    assert np.abs(finals[True]).max() < 0.12
