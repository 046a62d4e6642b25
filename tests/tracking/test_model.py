"""Supernet, subnet extraction, building blocks and the analytic FLOPs/params count."""

from __future__ import annotations

import random

import pytest
import torch
from torch import nn

from tracking.flops import count_flops_params
from tracking.ops import MBConv, OutputAdjust, PixelCorrelation, se_channels
from tracking.space import ArchitectureError, SearchSpace, lighttrack_mobile, sample, sample_many
from tracking.subnet import Subnet, extract_subnet
from tracking.supernet import Supernet, cell_centres

torch.set_num_threads(1)


def _randomise_bn(model: nn.Module, seed: int) -> None:
    """Non-trivial BN statistics so that equality tests exercise them."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.1)


@pytest.fixture(scope="module")
def supernets() -> dict[str, Supernet]:
    torch.manual_seed(0)
    nets = {"paper": Supernet(SearchSpace.paper()), "code": Supernet(SearchSpace.code())}
    for i, net in enumerate(nets.values()):
        _randomise_bn(net, i)
        net.eval()
    return nets


@pytest.fixture(scope="module")
def images() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randn(2, 3, 128, 128, generator=g), torch.randn(2, 3, 256, 256, generator=g)


def hook_count(model: nn.Module, zf: torch.Tensor, x: torch.Tensor) -> int:
    """MACs of one search-branch pass counted by forward hooks on the real modules (thop's rules)."""
    total = 0

    def hook(m: nn.Module, inp: tuple, out: torch.Tensor) -> None:
        nonlocal total
        if isinstance(m, nn.Conv2d):
            k = m.kernel_size[0] * m.kernel_size[1]
            total += out.numel() * (m.in_channels // m.groups) * k
        elif isinstance(m, nn.BatchNorm2d):
            total += 2 * out.numel()
        elif isinstance(m, nn.AdaptiveAvgPool2d):
            total += out.numel() * (inp[0].shape[2] * inp[0].shape[3] + 1)
        elif isinstance(m, PixelCorrelation):
            total += out.numel() * inp[1].shape[1]

    handles = [m.register_forward_hook(hook) for m in model.modules()]
    try:
        with torch.no_grad():
            model.track(zf, x)
    finally:
        for h in handles:
            h.remove()
    return total


def test_output_shapes_and_ranges(supernets, images):
    z, x = images
    net = supernets["paper"]
    arch = lighttrack_mobile()
    with torch.no_grad():
        zf = net.template_feature(z, arch)
        cls, reg = net.track(zf, x, arch)
    assert zf.shape == (2, 96, 8, 8)
    assert cls.shape == (2, 1, 16, 16)
    assert reg.shape == (2, 4, 16, 16)
    assert (reg >= 0).all()
    centres = cell_centres()
    assert centres[:, 0, 0].tolist() == [8.0, 8.0]
    assert centres[:, 2, 5].tolist() == [5 * 16 + 8, 2 * 16 + 8]  # (x, y) of row 2, column 5


@pytest.mark.parametrize("space_name", ["paper", "code"])
def test_extracted_subnet_matches_supernet_path(supernets, images, space_name):
    z, x = images
    net = supernets[space_name]
    archs = sample_many(3, seed=7, space=net.space)
    if space_name == "code":  # make sure a stride-8 output position is covered
        rng = random.Random(3)
        while archs[0].out_stage != 1:
            archs[0] = sample(rng, net.space)
    for arch in archs:
        sub = extract_subnet(net, arch)
        assert isinstance(sub, Subnet) and sub.arch == arch and not sub.training
        with torch.no_grad():
            cls_a, reg_a = net(z, x, arch)
            cls_b, reg_b = sub(z, x)
        torch.testing.assert_close(cls_a, cls_b, rtol=0, atol=1e-6)
        torch.testing.assert_close(reg_a, reg_b, rtol=0, atol=1e-6)
        # the copy is independent of the supernet
        sub_params = {id(p) for p in sub.parameters()}
        assert not sub_params & {id(p) for p in net.parameters()}


def test_subnet_has_only_the_path(supernets):
    net = supernets["paper"]
    arch = lighttrack_mobile()
    sub = extract_subnet(net, arch)
    assert len(sub.blocks) == len(arch.active_blocks()) == 13
    assert len(sub.cls_tower) == 6 and len(sub.reg_tower) == 8  # Mobile's cls tower skips 2 layers
    n_path = sum(p.numel() for m in net.path_modules(arch) for p in m.parameters())
    assert sum(p.numel() for p in sub.parameters()) == n_path


def test_subnet_rejects_other_arch(supernets, images):
    sub = extract_subnet(supernets["paper"], lighttrack_mobile())
    other = sample_many(1, seed=1)[0]
    with pytest.raises(ArchitectureError):
        sub.template_feature(images[0], other)


def test_supernet_rejects_arch_outside_space(supernets):
    code_arch = next(a for a in sample_many(200, seed=0, space=SearchSpace.code()) if a.out_stage == 1)
    with pytest.raises(ArchitectureError):
        supernets["paper"].path(code_arch)


def test_mbconv_se_and_residual():
    block = MBConv(40, 40, 5, 6, 1)
    assert block.residual and block.se.conv_reduce.out_channels == se_channels(240) == 64
    assert not MBConv(24, 40, 3, 4, 2).residual
    y = MBConv(24, 40, 7, 4, 2)(torch.randn(1, 24, 32, 32))
    assert y.shape == (1, 40, 16, 16)
    # stride-8 output positions are brought to 16x16 by their adjust layer
    assert OutputAdjust(40, 96, stride=2)(torch.randn(1, 40, 32, 32)).shape == (1, 96, 16, 16)


def test_lighttrack_mobile_flops_and_params_match_paper():
    macs, params = count_flops_params(lighttrack_mobile(), SearchSpace.paper())
    assert abs(macs - 530e6) / 530e6 < 0.05, macs
    assert abs(params - 1.97e6) / 1.97e6 < 0.05, params


@pytest.mark.parametrize("space_name", ["paper", "code"])
def test_analytic_count_agrees_with_hooks_on_real_subnet(supernets, images, space_name):
    z, x = images[0][:1], images[1][:1]
    net = supernets[space_name]
    archs = [*sample_many(3, seed=11, space=net.space)]
    if space_name == "paper":
        archs.append(lighttrack_mobile())
    else:
        archs.append(next(a for a in sample_many(200, seed=5, space=net.space) if a.out_stage == 1))
    for arch in archs:
        sub = extract_subnet(net, arch)
        with torch.no_grad():
            zf = sub.template_feature(z)
        hooked = hook_count(sub, zf, x)
        macs, params = count_flops_params(arch, net.space)
        assert macs == hooked, (arch.to_string(), macs, hooked)  # same convention, exact
        assert params == sum(p.numel() for p in sub.parameters()), arch.to_string()


def test_flops_grow_with_wider_heads():
    small = lighttrack_mobile()
    from dataclasses import replace

    from tracking.space import Head

    wide = replace(small, cls=Head(2, (1,) * 8), reg=Head(2, (1,) * 8))
    assert count_flops_params(wide)[0] > count_flops_params(small)[0]


def test_residual_head_layer_learns_from_the_start():
    # BN -> ReLU with a zero BN scale outputs exactly 0, where ReLU passes no gradient: the layer
    # would stay the identity forever. Its scale and weights must get gradients at initialisation.
    from tracking.ops import RESIDUAL_BN_SCALE, HeadLayer

    layer = HeadLayer(16, 16, 3).train()
    assert layer.residual and torch.allclose(layer.bn.weight, torch.full((16,), RESIDUAL_BN_SCALE))
    x = torch.randn(2, 16, 8, 8, generator=torch.Generator().manual_seed(0))
    (layer(x) * torch.randn(2, 16, 8, 8, generator=torch.Generator().manual_seed(1))).sum().backward()
    assert layer.bn.weight.grad.abs().sum() > 0 and layer.conv_dw.weight.grad.abs().sum() > 0
