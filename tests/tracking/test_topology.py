"""The one topology (``tracking.space.blocks``): the torch modules the supernet runs for a path
see exactly the shapes the specs state, and latency units and gene encodings derive from them."""

from __future__ import annotations

import random
from functools import partial

import torch

from latency_tables.units import units_of
from tracking.space import (
    SKIP,
    SearchSpace,
    backbone_positions,
    blocks,
    enumerate_genes,
    lighttrack_mobile,
    sample,
    to_genes,
)
from tracking.supernet import Supernet


def _archs(space: SearchSpace, n: int) -> list:
    rng = random.Random(3)
    return [lighttrack_mobile(), *(sample(rng, space) for _ in range(n))]


def _shapes_seen(modules, run) -> list[tuple]:
    """(input shapes..., output shape) of each call of ``modules`` while ``run()`` runs, in order."""
    seen: list[tuple] = []
    hooks = [m.register_forward_hook(lambda _m, i, o: seen.append((*(t.shape[1:] for t in i), o.shape[1:])))
             for m in modules]
    try:
        run()
    finally:
        for h in hooks:
            h.remove()
    return seen


def test_the_modules_a_path_runs_see_the_shapes_its_specs_state():
    torch.manual_seed(0)
    for space in (SearchSpace.paper(), SearchSpace.code()):
        net = Supernet(space).eval()
        for arch in _archs(space, 4):
            path = net.path(arch)
            with torch.no_grad():
                zf = path.template_feature(torch.zeros(1, 3, space.template_size, space.template_size))
                x = torch.zeros(1, 3, space.search_size, space.search_size)
                seen = _shapes_seen(net.path_modules(arch), partial(path.track, zf, x))
            specs = blocks(arch, space)
            assert len(seen) == len(specs)
            for spec, shapes in zip(specs, seen, strict=True):
                *inputs, out = shapes
                assert tuple(inputs[-1]) == (spec.in_ch, spec.size, spec.size), spec
                assert tuple(out) == (spec.out_ch, spec.out_size, spec.out_size), spec
                if spec.kind == "neck":
                    assert tuple(inputs[0]) == (spec.in_ch, spec.template, spec.template)


def test_units_and_genes_derive_from_the_specs():
    space = SearchSpace.paper()
    for arch in _archs(space, 6):
        specs = blocks(arch, space)
        units = units_of(arch, space)
        assert [(u.kind, u.shape, u.out_ch, u.stride) for u in units] == \
            [(s.kind, (s.in_ch, s.size, s.size), s.out_ch, s.stride) for s in specs]
        # the skip layers of a tower run no module
        assert sum(s.kind == "head" for s in specs) == sum(c != SKIP for h in (arch.cls, arch.reg) for c in h.layers)
        genes = list(enumerate_genes(space))
        assert len(to_genes(arch, space)) == len(genes)
    positions = backbone_positions(space)
    genes = list(enumerate_genes(space))
    assert [g.name for g in genes if g.kind == "backbone"] == [f"backbone.{p.stage}.{p.block}" for p in positions]
    assert [g.layer for g in genes if g.kind == "layer"] == list(range(space.head_layers)) * 2
    # the Gene tuple still unpacks as (name, n), as encoders use it
    assert dict(enumerate_genes(space))["output"] == len(space.output_positions)
