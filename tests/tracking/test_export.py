"""ONNX export of subnets: onnxruntime parity with PyTorch, BN folding, and checkpoints."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from tracking.checkpoint import load_supernet, save_checkpoint
from tracking.export import OnnxTrackerModel, export_onnx
from tracking.space import SearchSpace, lighttrack_mobile, sample_many
from tracking.subnet import extract_subnet
from tracking.supernet import Supernet

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def supernet() -> Supernet:
    torch.manual_seed(0)
    net = Supernet(SearchSpace.code())
    g = torch.Generator().manual_seed(0)
    for m in net.modules():  # non-trivial BN so that folding is exercised
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
    return net.eval()


def _parity(subnet, out_dir) -> None:
    paths = export_onnx(subnet, out_dir)
    assert set(paths) == {"template", "search"} and all(p.is_file() for p in paths.values())
    model = OnnxTrackerModel(out_dir, threads=1)
    g = torch.Generator().manual_seed(3)
    z, x = torch.randn(1, 3, 128, 128, generator=g), torch.randn(1, 3, 256, 256, generator=g)
    with torch.no_grad():
        zf = subnet.template_feature(z)
        cls, reg = subnet.track(zf, x)
    zf_o = model.template_feature(z.numpy())
    np.testing.assert_allclose(zf_o, zf.numpy(), atol=1e-4, rtol=0)
    cls_o, reg_o = model.track(zf_o, x.numpy())
    np.testing.assert_allclose(cls_o, cls.numpy(), atol=1e-4, rtol=0)
    np.testing.assert_allclose(reg_o, reg.numpy(), atol=1e-4, rtol=0)

    search = onnx.load(str(paths["search"]))
    assert [i.name for i in search.graph.input] == ["search", "zf"]
    assert [o.name for o in search.graph.output] == ["cls", "reg"]
    assert search.opset_import[0].version == 17
    # BN folded into convs: only OutputAdjust's leading BN (not after a conv) may remain
    n_bn = sum(n.op_type == "BatchNormalization" for n in search.graph.node)
    assert n_bn <= 1


def test_mobile_onnx_matches_pytorch(supernet, tmp_path):
    _parity(extract_subnet(supernet, lighttrack_mobile()), tmp_path)
    assert (tmp_path / "arch.json").is_file()


def test_random_arch_onnx_matches_pytorch(supernet, tmp_path):
    # a stride-8 output position exercises the stride-2 adjust
    arch = next(a for a in sample_many(100, seed=4, space=supernet.space) if a.out_stage == 1)
    _parity(extract_subnet(supernet, arch), tmp_path)


def test_export_leaves_subnet_mode_unchanged(supernet, tmp_path):
    sub = extract_subnet(supernet, lighttrack_mobile()).train()
    export_onnx(sub, tmp_path)
    assert sub.training


def test_onnx_model_missing_dir(tmp_path):
    with pytest.raises(FileNotFoundError):
        OnnxTrackerModel(tmp_path / "nope")


def test_checkpoint_round_trip(supernet, tmp_path):
    path = save_checkpoint(tmp_path / "ck" / "super.pt", supernet, {"epoch": 3, "config": {"lr": 0.1}})
    net, meta = load_supernet(path)
    assert meta["epoch"] == 3 and meta["space"] == SearchSpace.code().to_dict()
    assert net.space == supernet.space and not net.training
    arch = sample_many(1, seed=9, space=net.space)[0]
    g = torch.Generator().manual_seed(5)
    z, x = torch.randn(1, 3, 128, 128, generator=g), torch.randn(1, 3, 256, 256, generator=g)
    with torch.no_grad():
        a, b = supernet(z, x, arch), net(z, x, arch)
    torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_load_checkpoint_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_supernet(tmp_path / "missing.pt")
    bad = tmp_path / "bad.pt"
    bad.write_text("not a checkpoint")
    with pytest.raises(ValueError, match="not a lutnas supernet checkpoint"):
        load_supernet(bad)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, other)
    with pytest.raises(ValueError, match="not a lutnas supernet checkpoint"):
        load_supernet(other)
