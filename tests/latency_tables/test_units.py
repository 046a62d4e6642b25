"""Unit decomposition: coverage of every choice, key stability, shapes agreeing with the model,
and unit ONNX graphs holding exactly the ops of the exported subnet."""

from __future__ import annotations

from collections import Counter

import onnx
import pytest

from latency_tables.units import (
    adjust_unit,
    all_units,
    block_unit,
    export_unit_onnx,
    parse_key,
    units_of,
)
from tracking.space import (
    HEAD_KERNELS,
    MBCONV_CHOICES,
    SKIP,
    Architecture,
    Head,
    SearchSpace,
    lighttrack_mobile,
    sample_many,
)

MOBILE_KEYS = [
    "stem:in3x256x256:out16:k3:s2",
    "dsconv:in16x128x128:out16:k3:s1",
    "mbconv:in16x128x128:out24:k7:e4:s2",
    "mbconv:in24x64x64:out24:k7:e6:s1",
    "mbconv:in24x64x64:out40:k3:e4:s2",
    "mbconv:in40x32x32:out40:k5:e4:s1",
    "mbconv:in40x32x32:out40:k7:e6:s1",
    "mbconv:in40x32x32:out40:k3:e6:s1",
    "mbconv:in40x32x32:out80:k7:e4:s2",
    "mbconv:in80x16x16:out80:k3:e4:s1",
    "mbconv:in80x16x16:out80:k7:e4:s1",
    "mbconv:in80x16x16:out80:k7:e4:s1",
    "mbconv:in80x16x16:out96:k7:e6:s1",
    "mbconv:in96x16x16:out96:k5:e4:s1",
    "mbconv:in96x16x16:out96:k3:e6:s1",
    "adjust:in96x16x16:out96:s1",
    "neck:in96x16x16:out128:z96x8x8",
    "head:in128x16x16:out256:k5",
    "head:in256x16x16:out256:k5",
    "head:in256x16x16:out256:k3",
    "head:in256x16x16:out256:k3",
    "head:in256x16x16:out256:k3",
    "head:in256x16x16:out256:k3",
    "cls:in256x16x16:out1:k3",
    "head:in128x16x16:out192:k3",
    "head:in192x16x16:out192:k3",
    "head:in192x16x16:out192:k3",
    "head:in192x16x16:out192:k3",
    "head:in192x16x16:out192:k3",
    "head:in192x16x16:out192:k5",
    "head:in192x16x16:out192:k5",
    "head:in192x16x16:out192:k5",
    "reg:in192x16x16:out4:k3",
]


def test_mobile_keys_are_stable():
    assert [u.key for u in units_of(lighttrack_mobile())] == MOBILE_KEYS


def test_unit_counts_of_the_spaces():
    # paper: stem, ds, 48 MBConv (8 distinct input shapes x 6), 2 adjusts, neck, 10 head layers,
    # 3 cls + 3 reg outputs; code space adds the stride-8 (40-channel) adjust.
    assert len(all_units(SearchSpace.paper())) == 69
    assert len(all_units(SearchSpace.code())) == 70


def test_every_choice_is_a_unit(space):
    keys = {u.key for u in all_units(space)}
    for s, n in enumerate(space.stage_blocks):
        for b in range(n):
            for c in range(len(MBCONV_CHOICES)):
                assert block_unit(space, s, b, c).key in keys
    for s in space.output_stages:
        assert adjust_unit(space, s).key in keys
    for width in space.head_widths:
        for k in HEAD_KERNELS:
            assert f"head:in{space.neck_channels}x16x16:out{width}:k{k}" in keys
            assert f"head:in{width}x16x16:out{width}:k{k}" in keys
        assert f"cls:in{width}x16x16:out1:k3" in keys and f"reg:in{width}x16x16:out4:k3" in keys


def test_sampled_archs_use_only_enumerated_units_and_cover_them(space):
    keys = {u.key for u in all_units(space)}
    used = {u.key for a in sample_many(3000, 0, space) for u in units_of(a, space)}
    assert used <= keys
    assert used == keys  # 3000 uniform samples reach every unit


def test_skip_layers_and_inactive_blocks_are_not_units():
    a = lighttrack_mobile()
    units = units_of(a)
    assert sum(u.kind == "head" for u in units) == 6 + 8  # cls has 2 skips
    assert sum(u.kind == "mbconv" for u in units) == len(a.active_blocks()) == 13
    # A different choice for the unused 4th block of the last stage changes nothing.
    other = Architecture(a.backbone[:3] + (a.backbone[3][:3] + (4,),), a.out_stage, a.out_block, a.cls, a.reg)
    assert [u.key for u in units_of(other)] == [u.key for u in units]


def test_keys_parse_back(space):
    for u in all_units(space):
        assert parse_key(u.key) == u
    for bad in ("", "mbconv", "mbconv:in3x3:out4", "warp:in1x2x3:out4:k3", "head:in1x2x3:outx:k3"):
        with pytest.raises(ValueError):
            parse_key(bad)


def test_unit_shapes_are_the_topologys(space):
    """Units are the specs of tracking.space's topology (the torch side is checked against the
    same specs in tests/tracking/test_topology.py)."""
    from tracking.space import adjust_spec, backbone_positions

    for p in backbone_positions(space):
        u = block_unit(space, p.stage, p.block, 0)
        assert (u.shape, u.out_ch, u.stride) == ((p.in_ch, p.size, p.size), p.out_ch, p.stride)
    for s in space.output_stages:
        a = adjust_spec(space, s)
        assert adjust_unit(space, s).shape == (a.in_ch, a.size, a.size) and adjust_unit(space, s).stride == a.stride


def _op_counts(path) -> Counter:
    return Counter(n.op_type for n in onnx.load(str(path)).graph.node)


def test_unit_graphs_hold_exactly_the_subnet_ops(tmp_path):
    """The op multiset of the exported search graph equals the sum over its units' graphs
    (Identity nodes aside), for an arch with skips, a residual block and a code-space output."""
    from latency_tables.fidelity import export_search_graphs

    space = SearchSpace.code()
    arch = Architecture(((1, 4), (2, 5, 0, 3), (0, 0, 0, 0), (0, 0, 0, 0)), 1, 3,
                        Head(0, (1, SKIP, 0, SKIP, SKIP, 1, SKIP, SKIP)), Head(2, (0,) + (SKIP,) * 7))
    search = export_search_graphs([arch], tmp_path / "e2e", space)[0]
    total: Counter = Counter()
    exported: dict[str, Counter] = {}
    for u in units_of(arch, space):
        if u.key not in exported:
            exported[u.key] = _op_counts(export_unit_onnx(u, tmp_path / f"{len(exported)}.onnx"))
        total += exported[u.key]
    whole = _op_counts(search)
    total.pop("Identity", None)
    whole.pop("Identity", None)
    assert whole == total
    assert "BatchNormalization" in whole and whole["BatchNormalization"] == 1  # only the adjust's BN


def test_unit_onnx_bytes_run_with_the_named_inputs():
    from latency_tables.units import unit_onnx_bytes
    from profilers import get_backend

    data = unit_onnx_bytes("neck:in96x16x16:out128:z96x8x8")
    model = get_backend("onnxruntime").load(data)
    assert {k: v.shape for k, v in model.feeds.items()} == {"zf": (1, 96, 8, 8), "x": (1, 96, 16, 16)}
    model.run()
    assert model.outputs()[0].shape == (1, 128, 16, 16)
