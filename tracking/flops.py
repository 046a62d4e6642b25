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

from tracking.geometry import CORR_CHANNELS, CORR_OUT_CHANNELS, STRIDE, make_divisible
from tracking.space import HEAD_KERNELS, MBCONV_CHOICES, SKIP, Architecture, Head, SearchSpace


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


def _out(h: int, stride: int) -> int:
    return -(-h // stride)  # 'same' padding with odd kernels: ceil(h / stride)


def _mbconv(n: _Count, h: int, c_in: int, c_out: int, k: int, e: int, s: int) -> int:
    mid = c_in * e
    n.conv(h, c_in, mid, 1)
    n.bn(h, mid)
    h = _out(h, s)
    n.conv(h, mid, mid, k, groups=mid)
    n.bn(h, mid)
    r = make_divisible(mid * 0.25, 8)
    n.pool(h, mid)
    n.conv(1, mid, r, 1, bias=True)
    n.conv(1, r, mid, 1, bias=True)
    n.conv(h, mid, c_out, 1)
    n.bn(h, c_out)
    return h


def _head(n: _Count, head: Head, space: SearchSpace, h: int, reg: bool) -> None:
    w = space.head_widths[head.width]
    c_in = space.neck_channels
    for c in head.layers:
        if c == SKIP:
            continue
        k = HEAD_KERNELS[c]
        n.conv(h, c_in, c_in, k, groups=c_in)
        n.conv(h, c_in, w, 1)
        n.bn(h, w)
        c_in = w
    n.conv(h, w, 4 if reg else 1, 3, bias=True)
    if reg:
        n.params += 1 + 4  # learnable scale and per-side bias


def count_flops_params(arch: Architecture, space: SearchSpace | None = None) -> tuple[int, int]:
    """``(macs, params)`` of ``arch``'s subnet under the convention in the module docstring."""
    space = space or SearchSpace.paper()
    arch.validate(space)
    n = _Count()
    h = _out(space.search_size, 2)
    n.conv(h, 3, space.stem_channels, 3)
    n.bn(h, space.stem_channels)
    c = space.stem_channels
    n.conv(h, c, c, 3, groups=c)
    n.bn(h, c)
    n.conv(h, c, c, 1)
    n.bn(h, c)
    for s, b, choice in arch.active_blocks():
        k, e = MBCONV_CHOICES[choice]
        c_out = space.stage_channels[s]
        stride = space.stage_strides[s] if b == 0 else 1
        h = _mbconv(n, h, c, c_out, k, e, stride)
        c = c_out
    # output adjust: BN on the backbone feature, 1x1 conv (stride 2 at stride-8 positions)
    n.bn(h, c)
    h = _out(h, STRIDE // space.stage_stride_total(arch.out_stage))
    n.conv(h, c, CORR_CHANNELS, 1, bias=True)
    # neck: correlation, channel attention, 1x1 conv + BN
    n.macs += CORR_OUT_CHANNELS * h * h * CORR_CHANNELS
    n.pool(h, CORR_OUT_CHANNELS)
    n.conv(1, CORR_OUT_CHANNELS, CORR_OUT_CHANNELS, 1, bias=True)
    n.conv(1, CORR_OUT_CHANNELS, CORR_OUT_CHANNELS, 1, bias=True)
    n.conv(h, CORR_OUT_CHANNELS, space.neck_channels, 1)
    n.bn(h, space.neck_channels)
    _head(n, arch.cls, space, h, reg=False)
    _head(n, arch.reg, space, h, reg=True)
    return n.macs, n.params
