"""Experimental levers for the size-blind regressor (docs/validation.md, issue 17 item 1), applied
by ``bench_learning_curve.py --lever NAME`` before any network is built. They patch the model or
the loss for that one process only: none of them is part of the recipe (none moved the regression
slope within the budget), so they live here, beside the measurement, not in ``tracking/``.

* ``reg-scale-1``: the regression output's learnable scale inside the exp starts at 1.0 instead of
  0.1 (ten times larger steps of the predicted log-distances per update).
* ``centre-size``: the log-size loss weighted by each cell's centreness (FCOS: cells near the box
  centre, whose receptive field holds the whole target, count most; border cells see part of it).
* ``neck-search``: the neck passes the (batch-normalised) search feature beside the correlation, so
  the heads see the size information the pixel-wise correlation drops (linear probe R^2 0.36 in the
  search feature vs 0.07 after the correlation).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn


def _reg_scale_1() -> None:
    import tracking.ops as ops

    ops.REG_OUTPUT_SCALE = 1.0


def _centre_size() -> None:
    import tracking.train as train

    def centred_size_loss(pred: Tensor, target: Tensor, mask: Tensor, count: Tensor | None = None) -> Tensor:
        pos = mask[:, 0] > 0.5
        if not pos.any():
            return pred.sum() * 0
        p, t = pred.permute(0, 2, 3, 1)[pos], target.permute(0, 2, 3, 1)[pos]
        lw = torch.log((p[:, 0] + p[:, 2]) / (t[:, 0] + t[:, 2]))
        lh = torch.log((p[:, 1] + p[:, 3]) / (t[:, 1] + t[:, 3]))
        c = torch.sqrt((torch.minimum(t[:, 0], t[:, 2]) / torch.maximum(t[:, 0], t[:, 2]))
                       * (torch.minimum(t[:, 1], t[:, 3]) / torch.maximum(t[:, 1], t[:, 3])))
        return ((lw.abs() + lh.abs()) * c).sum() / c.sum().clamp(min=1e-6)

    train.size_loss = centred_size_loss


def _neck_search() -> None:
    import tracking.ops as ops
    import tracking.supernet as supernet

    class NeckWithSearch(ops.Neck):
        def __init__(self, corr_ch: int = ops.CORR_OUT_CHANNELS, out_ch: int = 128) -> None:
            super().__init__(corr_ch, out_ch)
            self.xbn = nn.BatchNorm2d(ops.CORR_CHANNELS)
            self.conv = nn.Conv2d(corr_ch + ops.CORR_CHANNELS, out_ch, 1, bias=False)

        def forward(self, zf: Tensor, xf: Tensor) -> Tensor:
            c = self.ca(self.corr(zf, xf))
            return self.act(self.bn(self.conv(torch.cat([c, self.xbn(xf)], 1))))

    supernet.Neck = NeckWithSearch


LEVERS: dict[str, Callable[[], None]] = {
    "reg-scale-1": _reg_scale_1, "centre-size": _centre_size, "neck-search": _neck_search}


def apply(name: str) -> None:
    LEVERS[name]()
