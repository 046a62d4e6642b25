"""Checkpoints: weights-only reading, plain metadata, and the owner-run conversion of version 1."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tracking.checkpoint import CheckpointError, convert_checkpoint, load_supernet, save_checkpoint
from tracking.space import SearchSpace
from tracking.supernet import Supernet
from tracking.train import TrainConfig, make_optimizer

LUTNAS = str(Path(sys.executable).parent / "lutnas")


def _write_v1(path: Path, net: Supernet, meta: dict) -> None:
    """A checkpoint exactly as lutnas 0.1 wrote it: torch.save of this dict, meta unrestricted."""
    torch.save({"format": "lutnas-supernet", "version": 1, "state_dict": net.state_dict(),
                "meta": {**meta, "space": net.space.to_dict()}}, path)


@pytest.fixture()
def trained_like(tmp_path: Path) -> tuple[Supernet, dict]:
    torch.manual_seed(0)
    net = Supernet(SearchSpace.code())
    opt = make_optimizer(net.parameters(), TrainConfig())
    loss = sum(p.sum() for p in list(net.parameters())[:3])
    loss.backward()
    opt.step()  # momentum buffers: tensors under int keys, as a resumable checkpoint holds them
    meta = {"config": TrainConfig(lr=0.02), "iteration": 7, "optimizer": opt.state_dict(),
            "history": [[0, 1.0, 0.5, 0.5]], "data": Path("/some/where")}
    return net, meta


def test_v1_refused_then_converted(tmp_path: Path, trained_like: tuple[Supernet, dict]) -> None:
    net, meta = trained_like
    old = tmp_path / "old.pt"
    _write_v1(old, net, meta)
    with pytest.raises(CheckpointError, match="lutnas supernet convert"):
        load_supernet(old)
    res = convert_checkpoint(old)
    assert res["converted"] and res["from_version"] == 1
    assert (tmp_path / "old.pt.v1.bak").read_bytes()[:2] == b"PK"
    loaded, new_meta = load_supernet(old)
    weights = loaded.state_dict()  # once: building it per key made this test take a minute
    for k, v in net.state_dict().items():
        assert torch.equal(weights[k], v), k
    assert new_meta["config"]["lr"] == 0.02 and new_meta["iteration"] == 7 and new_meta["data"] == "/some/where"
    # the optimizer state survives with its int keys, so a converted run resumes exactly
    opt = make_optimizer(loaded.parameters(), TrainConfig(**new_meta["config"]))
    opt.load_state_dict(new_meta["optimizer"])
    assert len(opt.state) == len(meta["optimizer"]["state"]) > 0
    again = convert_checkpoint(old)
    assert not again["converted"]


def test_convert_cli(tmp_path: Path, trained_like: tuple[Supernet, dict]) -> None:
    net, meta = trained_like
    old, new = tmp_path / "old.pt", tmp_path / "new.pt"
    _write_v1(old, net, meta)
    r = subprocess.run([LUTNAS, "supernet", "convert", str(old), "--out", str(new)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "version 2" in r.stdout
    load_supernet(new)
    with pytest.raises(CheckpointError):
        load_supernet(old)  # --out leaves the source as it was
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"nothing")
    r = subprocess.run([LUTNAS, "supernet", "convert", str(junk)], capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.startswith("error: ") and "Traceback" not in r.stderr


def test_meta_must_be_plain(tmp_path: Path) -> None:
    net = Supernet(SearchSpace.code())
    with pytest.raises(TypeError, match="TrainConfig"):
        save_checkpoint(tmp_path / "x.pt", net, {"config": TrainConfig()})
    save_checkpoint(tmp_path / "x.pt", net, {"config": TrainConfig().model_dump(), "t": torch.zeros(2), "k": {3: [1.5]}})
    _, meta = load_supernet(tmp_path / "x.pt")
    assert meta["k"] == {3: [1.5]} and torch.equal(meta["t"], torch.zeros(2))


def test_hostile_spaces_and_weights_refused(tmp_path: Path) -> None:
    net = Supernet(SearchSpace.code())
    path = save_checkpoint(tmp_path / "ok.pt", net)
    payload = torch.load(path, weights_only=True)
    huge = {**payload, "meta": {"space": {**payload["meta"]["space"], "stage_channels": [24, 40, 80, 10**6]}}}
    torch.save(huge, tmp_path / "huge.pt")
    with pytest.raises(CheckpointError, match="outside the sizes"):
        load_supernet(tmp_path / "huge.pt")
    name = next(iter(payload["state_dict"]))
    nan = {**payload, "state_dict": {**payload["state_dict"], name: payload["state_dict"][name] * float("nan")}}
    torch.save(nan, tmp_path / "nan.pt")
    with pytest.raises(CheckpointError, match="NaN"):
        load_supernet(tmp_path / "nan.pt")


def test_frames_beyond_the_pixel_limit_are_not_decoded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import numpy as np
    from PIL import Image

    from tracking.data import got10k

    Image.fromarray(np.zeros((30, 40, 3), np.uint8)).save(tmp_path / "f.png")
    assert got10k.load_image(tmp_path / "f.png").shape == (30, 40, 3)
    monkeypatch.setattr(got10k, "MAX_IMAGE_PIXELS", 40 * 30 - 1)
    with pytest.raises(ValueError, match="40x30, beyond"):
        got10k.load_image(tmp_path / "f.png")
