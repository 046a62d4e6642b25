"""Extraction of one architecture from the supernet as a standalone module (inherited weights)."""

from __future__ import annotations

import copy

from torch import Tensor

from tracking.space import Architecture, ArchitectureError, SearchSpace
from tracking.supernet import Supernet, TrackerPath


class Subnet(TrackerPath):
    """Only the chosen path of a supernet, with its own copy of the weights.

    Same ``template_feature`` / ``track`` / ``forward`` as :class:`Supernet`; the ``arch`` argument
    is optional here (a subnet is one network) and, if given, must name the same network.
    """

    def __init__(self, path: TrackerPath, arch: Architecture, space: SearchSpace) -> None:
        super().__init__(path.stem, path.ds, list(path.blocks), path.adjust, path.neck,
                         list(path.cls_tower), path.cls_out, list(path.reg_tower), path.reg_out)
        self.arch = arch
        self.space = space

    def _check(self, arch: Architecture | None) -> None:
        if arch is not None and not arch.same_network(self.arch):
            raise ArchitectureError(f"this subnet is {self.arch}, not {arch}")

    def template_feature(self, z: Tensor, arch: Architecture | None = None) -> Tensor:
        self._check(arch)
        return super().template_feature(z)

    def track(self, zf: Tensor, x: Tensor, arch: Architecture | None = None) -> tuple[Tensor, Tensor]:
        self._check(arch)
        return super().track(zf, x)

    def forward(self, z: Tensor, x: Tensor, arch: Architecture | None = None) -> tuple[Tensor, Tensor]:
        self._check(arch)
        return super().track(super().template_feature(z), x)


def extract_subnet(supernet: Supernet, arch: Architecture) -> Subnet:
    """Deep copy of the modules ``arch`` uses; the subnet keeps the supernet's train/eval mode."""
    path = copy.deepcopy(supernet.path(arch))
    sub = Subnet(path, arch, supernet.space)
    sub.train(supernet.training)
    return sub
