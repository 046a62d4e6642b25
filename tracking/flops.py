"""Analytic FLOPs (multiply-accumulates) and parameter count of an architecture.

Pure Python: no torch, no model build, so searches can price thousands of candidates cheaply.

Counting convention (the way the thop counter counts LightTrack's modules, as in the paper):

* search branch only: one 256x256 search image, the template feature precomputed;
* conv: ``out_elems * (in_ch / groups) * k * k`` (bias not counted);
* BatchNorm (affine): 2 per output element; adaptive average pool: ``(H*W + 1)`` per output
  element; ReLU, SiLU, hard-sigmoid, sigmoid, residual sums and SE/attention products: 0;
* the pixel-wise correlation (a matrix product, which thop does not see): 64 * 16 * 16 * C MACs.

Parameters: every learnable parameter of the subnet (template and search share weights), BN
affine weights included, running statistics excluded. ``tests/tracking/test_model.py`` checks both
figures against a hook-based count on the real torch subnet.
"""

from __future__ import annotations

from dataclasses import dataclass

from tracking.geometry import make_divisible
from tracking.space import Architecture, BlockSpec, SearchSpace, blocks


@dataclass
class _Count:
    macs: int = 0
    params: int = 0

    def conv(self, h_out: int, c_in: int, c_out: int, k: int, groups: int = 1, bias: bool = False) -> None:
        self.macs += h_out * h_out * c_out * (c_in // groups) * k * k
        self.params += c_out * (c_in // groups) * k * k + (c_out if bias else 0)

    def bn(self, h: int, c: int) -> None:
        self.macs += 2 * h * h * c
        self.params += 2 * c

    def pool(self, h: int, c: int) -> None:
        self.macs += c * (h * h + 1)


def _mbconv(n: _Count, spec: BlockSpec) -> None:
    mid = spec.in_ch * spec.expansion
    n.conv(spec.size, spec.in_ch, mid, 1)
    n.bn(spec.size, mid)
    h = spec.out_size
    n.conv(h, mid, mid, spec.kernel, groups=mid)
    n.bn(h, mid)
    r = make_divisible(mid * 0.25, 8)
    n.pool(h, mid)
    n.conv(1, mid, r, 1, bias=True)
    n.conv(1, r, mid, 1, bias=True)
    n.conv(h, mid, spec.out_ch, 1)
    n.bn(h, spec.out_ch)


def _count(n: _Count, spec: BlockSpec) -> None:
    """Add one module of the search graph (``tracking.space.blocks``) to the count."""
    h, c_in, c_out, k = spec.out_size, spec.in_ch, spec.out_ch, spec.kernel
    if spec.kind == "stem":
        n.conv(h, c_in, c_out, k)
        n.bn(h, c_out)
    elif spec.kind == "dsconv":
        n.conv(h, c_in, c_in, k, groups=c_in)
        n.bn(h, c_in)
        n.conv(h, c_in, c_out, 1)
        n.bn(h, c_out)
    elif spec.kind == "mbconv":
        _mbconv(n, spec)
    elif spec.kind == "adjust":  # BN on the backbone feature, 1x1 conv (stride 2 at stride-8 positions)
        n.bn(spec.size, c_in)
        n.conv(h, c_in, c_out, 1, bias=True)
    elif spec.kind == "neck":  # correlation, channel attention, 1x1 conv + BN
        corr = spec.template * spec.template
        n.macs += corr * h * h * c_in
        n.pool(h, corr)
        n.conv(1, corr, corr, 1, bias=True)
        n.conv(1, corr, corr, 1, bias=True)
        n.conv(h, corr, c_out, 1)
        n.bn(h, c_out)
    elif spec.kind == "head":  # depthwise k x k, pointwise to the tower width, BN
        n.conv(h, c_in, c_in, k, groups=c_in)
        n.conv(h, c_in, c_out, 1)
        n.bn(h, c_out)
    else:  # the cls / reg output conv
        n.conv(h, c_in, c_out, k, bias=True)
        if spec.kind == "reg":
            n.params += 1 + 4  # learnable scale and per-side bias


def count_flops_params(arch: Architecture, space: SearchSpace | None = None) -> tuple[int, int]:
    """``(macs, params)`` of ``arch``'s subnet under the convention in the module docstring."""
    space = space or SearchSpace.paper()
    arch.validate(space)
    n = _Count()
    for spec in blocks(arch, space):
        _count(n, spec)
    return n.macs, n.params
