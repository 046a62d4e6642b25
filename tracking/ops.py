"""Building blocks of the LightTrack tracker, each constructed from explicit shapes.

Every block is a plain ``nn.Module`` whose forward has no Python control flow on tensor values,
so ``latency_tables`` can build any unit alone and export it to ONNX exactly as it appears inside
an exported subnet. Swish is ``nn.SiLU`` (exported as Sigmoid + Mul: ONNX opset 17 has no Swish
op) and hard-sigmoid ``nn.Hardsigmoid`` (one HardSigmoid op). Convolutions followed by a BatchNorm have no bias (the exporter folds the BN into them).

Shapes (search branch, 256x256 input; the template branch is the same at 128x128):

* ``Stem``: 3 -> 16 channels, stride 2 (128x128).
* ``DSConv``: stage 0, 16 -> 16, stride 1.
* ``MBConv``: stages 1..4 (24, 40, 80, 96 channels; first block strides 2, 2, 2, 1).
* ``OutputAdjust``: BN + 1x1 conv from the output position's channels to the correlation width.
  Stride-16 positions keep the resolution (16x16 search / 8x8 template). Stride-8 positions (the
  40-channel stage, only in ``SearchSpace.code()``) use a stride-2 1x1 conv so the neck always
  sees a 16x16 search and an 8x8 template feature.
* ``Neck``: pixel-wise correlation (64 template pixels -> 64 channels), channel attention, 1x1
  conv 64 -> 128 + BN + ReLU.
* ``HeadLayer``: one tower layer (dw kxk, pw 1x1, BN, ReLU; identity shortcut at equal width);
  ``ClsOutput`` / ``RegOutput``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from tracking.geometry import (  # noqa: F401 - re-exported for the modules that build units
    CORR_CHANNELS,
    CORR_OUT_CHANNELS,
    STRIDE,
    TEMPLATE_FEATURE_SIZE,
    make_divisible,
)


def se_channels(mid_ch: int, ratio: float = 0.25) -> int:
    """SE bottleneck: 0.25 x the expanded channels, rounded to a multiple of 8."""
    return make_divisible(mid_ch * ratio, 8)


class Stem(nn.Module):
    """3x3 conv stride 2, BN, Swish."""

    def __init__(self, in_ch: int = 3, out_ch: int = 16) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, 3, 2, 1, bias=False)
        self.bn = nn.BatchNorm2d(out_ch)
        self.act = nn.SiLU()

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.bn(self.conv(x)))


class DSConv(nn.Module):
    """Stage 0 depthwise-separable conv: dw kxk, BN, Swish, pw 1x1, BN (+ residual when stride 1
    and in == out, as in EfficientNet's DepthwiseSeparable)."""

    def __init__(self, in_ch: int = 16, out_ch: int = 16, kernel: int = 3, stride: int = 1) -> None:
        super().__init__()
        self.conv_dw = nn.Conv2d(in_ch, in_ch, kernel, stride, kernel // 2, groups=in_ch, bias=False)
        self.bn1 = nn.BatchNorm2d(in_ch)
        self.act = nn.SiLU()
        self.conv_pw = nn.Conv2d(in_ch, out_ch, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.residual = stride == 1 and in_ch == out_ch

    def forward(self, x: Tensor) -> Tensor:
        y = self.bn2(self.conv_pw(self.act(self.bn1(self.conv_dw(x)))))
        return y + x if self.residual else y


class SqueezeExcite(nn.Module):
    """Global pool, 1x1 reduce, ReLU, 1x1 expand, hard-sigmoid gate."""

    def __init__(self, ch: int, reduced: int) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.conv_reduce = nn.Conv2d(ch, reduced, 1)
        self.act = nn.ReLU()
        self.conv_expand = nn.Conv2d(reduced, ch, 1)
        self.gate = nn.Hardsigmoid()

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gate(self.conv_expand(self.act(self.conv_reduce(self.pool(x)))))


class MBConv(nn.Module):
    """Inverted residual: expand 1x1, BN, Swish, dw kxk, BN, Swish, SE, project 1x1, BN.

    Residual when stride 1 and in == out channels.
    """

    def __init__(self, in_ch: int, out_ch: int, kernel: int, expansion: int, stride: int) -> None:
        super().__init__()
        mid = in_ch * expansion
        self.in_ch, self.out_ch, self.kernel, self.expansion, self.stride = in_ch, out_ch, kernel, expansion, stride
        self.conv_pw = nn.Conv2d(in_ch, mid, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.act1 = nn.SiLU()
        self.conv_dw = nn.Conv2d(mid, mid, kernel, stride, kernel // 2, groups=mid, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.act2 = nn.SiLU()
        self.se = SqueezeExcite(mid, se_channels(mid))
        self.conv_pwl = nn.Conv2d(mid, out_ch, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_ch)
        self.residual = stride == 1 and in_ch == out_ch

    def forward(self, x: Tensor) -> Tensor:
        y = self.act1(self.bn1(self.conv_pw(x)))
        y = self.se(self.act2(self.bn2(self.conv_dw(y))))
        y = self.bn3(self.conv_pwl(y))
        return y + x if self.residual else y


class OutputAdjust(nn.Module):
    """Per-output-position BN + 1x1 conv to the correlation width.

    ``stride`` is 1 for stride-16 positions and 2 for stride-8 positions (40-channel stage), so the
    result is always 16x16 for the search image and 8x8 for the template.
    """

    def __init__(self, in_ch: int, out_ch: int = CORR_CHANNELS, stride: int = 1) -> None:
        super().__init__()
        self.in_ch, self.out_ch, self.stride = in_ch, out_ch, stride
        self.bn = nn.BatchNorm2d(in_ch)
        self.conv = nn.Conv2d(in_ch, out_ch, 1, stride)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(self.bn(x))


class PixelCorrelation(nn.Module):
    """Pixel-wise correlation by matrix product: out[b, t, y, x] = <zf[b, :, t], xf[b, :, y, x]>,
    one output channel per template pixel ``t`` (row-major over the 8x8 template feature)."""

    def forward(self, zf: Tensor, xf: Tensor) -> Tensor:
        b, c, h, w = xf.shape
        z = zf.flatten(2).transpose(1, 2)  # [B, 64, C]
        return torch.matmul(z, xf.flatten(2)).reshape(b, z.shape[1], h, w)


class ChannelAttention(nn.Module):
    """Global pool, 1x1, ReLU, 1x1, sigmoid gate (reduction 1, as in LightTrack's CAModule)."""

    def __init__(self, ch: int = CORR_OUT_CHANNELS, reduction: int = 1) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(ch, ch // reduction, 1)
        self.act = nn.ReLU()
        self.fc2 = nn.Conv2d(ch // reduction, ch, 1)
        self.gate = nn.Sigmoid()

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gate(self.fc2(self.act(self.fc1(self.pool(x)))))


class Neck(nn.Module):
    """Pixel-wise correlation -> channel attention -> 1x1 conv 64 -> ``out_ch`` + BN + ReLU."""

    def __init__(self, corr_ch: int = CORR_OUT_CHANNELS, out_ch: int = 128) -> None:
        super().__init__()
        self.corr = PixelCorrelation()
        self.ca = ChannelAttention(corr_ch)
        self.conv = nn.Conv2d(corr_ch, out_ch, 1, bias=False)
        self.bn = nn.BatchNorm2d(out_ch)
        self.act = nn.ReLU()

    def forward(self, zf: Tensor, xf: Tensor) -> Tensor:
        return self.act(self.bn(self.conv(self.ca(self.corr(zf, xf)))))


RESIDUAL_BN_SCALE = 0.1  # initial BN scale of a width-preserving head layer's branch


class HeadLayer(nn.Module):
    """Head tower layer (LightTrack's DSConv): dw kxk, pw 1x1, BN, ReLU; plus an identity
    shortcut when the width is unchanged (every layer after a tower's first).

    The shortcut is our addition to LightTrack's towers: with uniformly sampled layer choices
    (3x3 / 5x5 / skip) a plain 8-layer stack never learned in single-path training here (the
    classification loss stayed at chance), while with ``x + layer(x)`` and a small initial BN
    scale every sampled depth starts as nearly the same function and the loss falls from the
    first iterations (docs/validation.md). It costs one add per layer (a measured part of the unit).
    """

    def __init__(self, ch_in: int, ch_out: int, kernel: int) -> None:
        super().__init__()
        self.ch_in, self.ch_out, self.kernel = ch_in, ch_out, kernel
        self.residual = ch_in == ch_out
        self.conv_dw = nn.Conv2d(ch_in, ch_in, kernel, 1, kernel // 2, groups=ch_in, bias=False)
        self.conv_pw = nn.Conv2d(ch_in, ch_out, 1, bias=False)
        self.bn = nn.BatchNorm2d(ch_out)
        if self.residual:
            # Near-identity start, but not zero: with BN -> ReLU, a zero scale (and zero shift)
            # makes the branch output exactly 0, where ReLU passes no gradient, so the layer
            # would never learn (measured: every residual layer's scale still 0.0 after training).
            nn.init.constant_(self.bn.weight, RESIDUAL_BN_SCALE)
        self.act = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        y = self.act(self.bn(self.conv_pw(self.conv_dw(x))))
        return x + y if self.residual else y


class ClsOutput(nn.Module):
    """3x3 conv to one channel of classification logits."""

    def __init__(self, ch_in: int) -> None:
        super().__init__()
        self.ch_in = ch_in
        self.conv = nn.Conv2d(ch_in, 1, 3, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)


REG_OUTPUT_SCALE = 0.1  # initial scale of the regression conv inside the exp


class RegOutput(nn.Module):
    """3x3 conv to 4 channels; distances (l, t, r, b) = 16 * exp(scale * conv + bias) in
    search-image pixels. ``scale`` (init 0.1) and per-side ``bias`` (init ln 2: 32 px, about half a
    template-sized target) are learnable. exp as in LightTrack/Ocean: distances stay positive and,
    unlike a ReLU, never stop receiving gradient (a ReLU output died at peak LR 0.04)."""

    def __init__(self, ch_in: int) -> None:
        super().__init__()
        self.ch_in = ch_in
        self.conv = nn.Conv2d(ch_in, 4, 3, 1, 1)
        self.scale = nn.Parameter(torch.full((1,), REG_OUTPUT_SCALE))
        self.bias = nn.Parameter(torch.full((1, 4, 1, 1), math.log(2.0)))

    def forward(self, x: Tensor) -> Tensor:
        # The clamp bounds distances to 16 * e^6 (~6,500 px, far beyond any search image): an
        # untrained or badly normalised path must not overflow to inf.
        return float(STRIDE) * torch.exp(torch.clamp(self.scale * self.conv(x) + self.bias, max=6.0))
