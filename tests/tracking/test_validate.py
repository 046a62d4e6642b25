"""Validation scores: BN recalibration leaves the supernet unchanged, determinism, both modes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.tracking.conftest import small_dataset
from tracking.bn import path_batchnorms, recalibrated
from tracking.checkpoint import save_checkpoint
from tracking.space import LIGHTTRACK_MOBILE, lighttrack_mobile, sample_many
from tracking.supernet import Supernet
from tracking.validate import ValidationScorer, box_iou_xyxy, decode_boxes

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return small_dataset(tmp_path_factory.mktemp("val") / "data", 2, 4, seed=7)


@pytest.fixture(scope="module")
def supernet(random_supernet: Supernet) -> Supernet:
    return random_supernet



def test_decode_boxes_hand_checked():
    cls = torch.zeros(1, 1, 16, 16)
    cls[0, 0, 2, 3] = 5.0
    reg = torch.zeros(1, 4, 16, 16)
    reg[0, :, 2, 3] = torch.tensor([1.0, 2.0, 3.0, 4.0])
    # cell (2, 3) is centred at (3*16+8, 2*16+8) = (56, 40)
    assert decode_boxes(cls, reg).tolist() == [[55.0, 38.0, 59.0, 44.0]]
    assert box_iou_xyxy(torch.tensor([[0.0, 0, 10, 10]]), torch.tensor([[5.0, 5, 15, 15]])).item() == pytest.approx(25 / 175)


def test_recalibration_is_undone(supernet, data):
    arch = lighttrack_mobile()
    before = {k: v.clone() for k, v in supernet.state_dict().items()}
    bns = path_batchnorms(supernet, arch)
    assert len(bns) > 20
    z, x = torch.randn(2, 3, 128, 128), torch.randn(2, 3, 256, 256)
    supernet.train()
    with recalibrated(supernet, arch, [(z, x)]):
        assert not supernet.training
        assert not torch.equal(bns[0].running_mean, before["stem.bn.running_mean"])
        assert bns[0].num_batches_tracked.item() == 2  # template and search branch
    assert supernet.training and bns[0].momentum == 0.1
    after = supernet.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    supernet.eval()


def test_pairs_mode_deterministic_and_order_independent(supernet, data):
    before = {k: v.clone() for k, v in supernet.state_dict().items()}
    scorer = ValidationScorer(supernet, data, "pairs", n_pairs=4, batch_size=2, bn_batches=1, bn_batch_size=2)
    mobile, other = lighttrack_mobile(), sample_many(1, seed=3)[0]
    first = scorer.score(mobile)
    many = scorer.score_many([other, mobile])
    assert 0.0 <= first["score"] <= 1.0 and first["pairs"] == 4 and first["arch"] == LIGHTTRACK_MOBILE
    assert many[1]["score"] == first["score"]
    again = ValidationScorer(supernet, data, "pairs", n_pairs=4, batch_size=2, bn_batches=1, bn_batch_size=2)
    assert again.score(other)["score"] == many[0]["score"]
    after = supernet.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_sequences_mode(supernet, data):
    scorer = ValidationScorer(supernet, data, "sequences", max_sequences=1, max_frames=3, bn_batches=1,
                              bn_batch_size=2)
    res = scorer.score(lighttrack_mobile())
    assert res["frames"] == 2 and res["sequences"] == 1
    assert res["score"] == pytest.approx((res["ao"] + res["sr50"]) / 2)
    assert 0 <= res["sr75"] <= res["sr50"] <= 1
    assert scorer.score(lighttrack_mobile())["score"] == res["score"]
    assert 0 <= res["static_ao"] <= 1 and res["static_score"] == scorer.static["score"]


def test_onnx_runtime_tracks_the_recalibrated_path(supernet, data):
    """runtime="onnx" exports the candidate's path with its recalibrated BN statistics and tracks
    on onnxruntime: the same boxes as eager torch (float32 rounding apart), the supernet unchanged.
    One update only: an untrained net's score map is nearly flat, so later frames may pick another
    of two near-equal cells on either runtime (a trained one's ranking is in docs/validation.md)."""
    before = {k: v.clone() for k, v in supernet.state_dict().items()}
    kw = {"max_sequences": 2, "max_frames": 2, "bn_batches": 1, "bn_batch_size": 2}
    by = {rt: ValidationScorer(supernet, data, "sequences", runtime=rt, **kw) for rt in ("torch", "onnx")}
    res = {rt: sc.score(lighttrack_mobile()) for rt, sc in by.items()}
    assert res["onnx"]["runtime"] == "onnx" and res["torch"]["runtime"] == "torch"
    for name, boxes in by["torch"].predictions.items():
        assert boxes.shape == (2, 4)
        assert abs(by["onnx"].predictions[name] - boxes).max() < 1e-3  # pixels
    assert res["onnx"]["score"] == pytest.approx(res["torch"]["score"], abs=1e-3)
    assert all(torch.equal(before[k], v) for k, v in supernet.state_dict().items())


def test_bad_mode(supernet, data):
    with pytest.raises(ValueError, match="mode"):
        ValidationScorer(supernet, data, "frames")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="runtime"):
        ValidationScorer(supernet, data, "sequences", runtime="tflite")  # type: ignore[arg-type]


def test_cli_evaluate(supernet, data, tmp_path, lutnas_main):
    ckpt = save_checkpoint(tmp_path / "s.pt", supernet, {})
    code, _, err = lutnas_main("supernet", "evaluate", LIGHTTRACK_MOBILE, "--supernet", str(tmp_path / "no.pt"),
                       "--data", str(data))
    assert code == 2 and "does not exist" in err and err.count("\n") == 1
    code, _, err = lutnas_main("supernet", "evaluate", LIGHTTRACK_MOBILE, "--supernet", str(ckpt),
                       "--data", str(data), "--mode", "video")
    assert code == 2 and "pairs or sequences" in err
    code, out, err = lutnas_main("supernet", "evaluate", LIGHTTRACK_MOBILE, "--supernet", str(ckpt),
                         "--data", str(data), "--pairs", "2", "--bn-batches", "1", "--bn-batch-size", "2", "--json")
    assert code == 0, err
    assert '"mode": "pairs"' in out


def test_cli_tune_tracker_stores_the_best_setting(supernet, data, tmp_path, lutnas_main):
    import json

    from tracking.checkpoint import load_supernet
    from tracking.tune import GRID, tracker_config_from_meta

    ckpt = save_checkpoint(tmp_path / "s.pt", supernet, {"iteration": 3})
    code, _, err = lutnas_main("supernet", "tune-tracker", "--supernet", str(ckpt), "--data", str(tmp_path / "none"))
    assert code == 2 and "does not exist" in err and err.count("\n") == 1
    small = ["--sequences", "1", "--frames", "3", "--bn-batches", "1"]
    code, out, err = lutnas_main("supernet", "tune-tracker", "--supernet", str(ckpt), "--data", str(data), *small,
                         "--json")
    assert code == 0, err
    res = json.loads(out)
    trials = res["trials"]
    assert res["default"] == trials[0] and trials[0]["config"]["lr"] == 0.616  # LightTrack's values first
    assert 1 < len(trials) <= 1 + sum(len(v) for v in GRID.values())
    assert res["score"] == max(t["score"] for t in trials)
    assert all(res["config"][k] in v for k, v in GRID.items())
    _, meta = load_supernet(ckpt)
    assert meta["tracker"] == res and meta["iteration"] == 3  # stored beside what was there
    assert tracker_config_from_meta(meta).lr == res["config"]["lr"]
    # evaluate uses the tuned settings (same data and calibration: the same score), or LightTrack's
    evaluate = ["supernet", "evaluate", LIGHTTRACK_MOBILE, "--supernet", str(ckpt), "--data", str(data),
                "--mode", "sequences", *small, "--json"]
    code, out, err = lutnas_main(*evaluate)
    assert code == 0, err
    tuned = json.loads(out)
    assert tuned["tracker"] == "tuned" and tuned["score"] == pytest.approx(res["score"])
    code, out, err = lutnas_main(*evaluate, "--default-tracker")
    default = json.loads(out)
    assert default["tracker"] == "default" and default["score"] == pytest.approx(res["default"]["score"])


def test_static_box_baseline_hand_checked():
    import numpy as np

    from tracking.validate import static_box_scores

    class Seq:
        boxes = np.array([[0.0, 0, 10, 10], [5, 0, 10, 10], [0, 0, 10, 10]])

        def __len__(self) -> int:
            return 3

        def load_frame(self, i: int) -> np.ndarray:
            return np.zeros((20, 20, 3), np.uint8)

    res = static_box_scores([Seq()])  # frames after the first: IoU 50/150, then 1
    assert res["ao"] == pytest.approx((1 / 3 + 1) / 2) and res["sr50"] == 0.5 and res["frames"] == 2
    assert static_box_scores([Seq()], max_frames=2)["ao"] == pytest.approx(1 / 3)
