"""Batch-norm recalibration for one path of the supernet.

Shared weights are trained over many paths, so the running BN statistics stored in the supernet
are a mix over paths; before scoring a candidate its BN statistics are recomputed on training data
(LightTrack, SPOS). :func:`recalibrated` does it in place on the path's BN layers only and puts
every statistic back afterwards, so the supernet is unchanged for the next candidate.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from tracking.space import Architecture


def path_batchnorms(supernet: nn.Module, arch: Architecture) -> list[nn.modules.batchnorm._BatchNorm]:
    """The distinct BN layers that ``arch``'s path runs through."""
    seen: dict[int, nn.modules.batchnorm._BatchNorm] = {}
    for mod in supernet.path_modules(arch):
        for m in mod.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                seen.setdefault(id(m), m)
    return list(seen.values())


@contextmanager
def recalibrated(supernet: nn.Module, arch: Architecture, batches: Iterable[tuple[Tensor, Tensor]]) -> Iterator[None]:
    """Inside the block, ``arch``'s BN layers hold statistics recomputed on ``batches`` (pairs of
    template and search tensors), forwarded in train mode without gradients with a cumulative
    average (``momentum=None``), and the supernet is in eval mode. On exit every BN statistic,
    momentum and train/eval flag is restored; weights are never touched (no gradients)."""
    bns = path_batchnorms(supernet, arch)
    saved = [(bn.running_mean.clone(), bn.running_var.clone(), bn.num_batches_tracked.clone(), bn.momentum)
             for bn in bns]
    was_training = {id(m): m.training for m in supernet.modules()}
    try:
        supernet.eval()
        batches = list(batches)
        if batches:
            for bn in bns:
                bn.reset_running_stats()
                bn.momentum = None
                bn.train()
            with torch.no_grad():
                for z, x in batches:
                    supernet(z, x, arch)
            for bn in bns:
                bn.eval()
        yield
    finally:
        with torch.no_grad():
            for bn, (mean, var, n, momentum) in zip(bns, saved, strict=True):
                bn.running_mean.copy_(mean)
                bn.running_var.copy_(var)
                bn.num_batches_tracked.copy_(n)
                bn.momentum = momentum
        for m in supernet.modules():
            m.training = was_training[id(m)]
