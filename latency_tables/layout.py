"""A unit's cost inside the search graph, from its cost measured alone and its boundary reorders.

A unit measured alone reorders its input into the runtime's blocked layout and its output back
(``profilers.layout``). In the whole graph that happens only at a boundary where one side cannot
take the blocked layout. Which boundaries those are follows from the graph's fixed order of unit
kinds (:data:`NEXT_KINDS`) and, per kind, whether its units begin with an input reorder
(*accept* the blocked layout) and end with an output reorder (*emit* it), as measured:

* a unit's input reorder is dropped when every kind that can precede it emits;
* its output reorder is dropped when every kind that can follow it accepts (graph outputs keep it).

On 2026-12-01's Intel host (onnxruntime CPU EP, level ``all``) that left the adjust's output
reorder (the neck's correlation is a MatMul in plain layout) and the two output convs' ones, as
onnxruntime's profiler shows in a whole graph, and took the unit sum's bias from +13.6% to +1.6%
(docs/latency.md). Units without a recorded layout, and runtimes without reorders, keep their
measured cost.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from latency_tables.units import parse_key

# Kinds that can directly follow each kind in a search graph (head layer 1 is never a skip, so
# the neck always feeds head layers; the output convs end the graph).
NEXT_KINDS: dict[str, tuple[str, ...]] = {
    "stem": ("dsconv",),
    "dsconv": ("mbconv",),
    "mbconv": ("mbconv", "adjust"),
    "adjust": ("neck",),
    "neck": ("head",),
    "head": ("head", "cls", "reg"),
    "cls": (),
    "reg": (),
}
PREV_KINDS: dict[str, tuple[str, ...]] = {
    k: tuple(p for p, nxt in NEXT_KINDS.items() if k in nxt) for k in NEXT_KINDS
}

Layout = Mapping[str, float]  # {"reorder_in": share, "reorder_out": share}


def kind_layouts(layouts: Mapping[str, Layout]) -> tuple[dict[str, bool], dict[str, bool]]:
    """Per kind: (accepts, emits) the blocked layout, i.e. every unit of that kind in
    ``layouts`` begins with an input reorder / ends with an output reorder."""
    accepts: dict[str, bool] = {}
    emits: dict[str, bool] = {}
    for key, lay in layouts.items():
        kind = parse_key(key).kind
        accepts[kind] = accepts.get(kind, True) and float(lay.get("reorder_in", 0.0)) > 0
        emits[kind] = emits.get(kind, True) and float(lay.get("reorder_out", 0.0)) > 0
    return accepts, emits


def dropped_share(kind: str, layout: Layout, accepts: Mapping[str, bool], emits: Mapping[str, bool]) -> float:
    """Share of a ``kind`` unit's measured (net) time that does not happen inside a graph."""
    share = 0.0
    prev, nxt = PREV_KINDS[kind], NEXT_KINDS[kind]
    if prev and accepts.get(kind, False) and all(emits.get(p, False) for p in prev):
        share += float(layout.get("reorder_in", 0.0))
    if nxt and emits.get(kind, False) and all(accepts.get(n, False) for n in nxt):
        share += float(layout.get("reorder_out", 0.0))
    return share


def in_graph_costs(net_ms: Mapping[str, float], layouts: Mapping[str, Layout] | None) -> dict[str, float]:
    """Each unit's net cost (overhead removed) as it runs inside a search graph."""
    if not layouts:
        return dict(net_ms)
    accepts, emits = kind_layouts(layouts)
    out = {}
    for key, ms in net_ms.items():
        lay = layouts.get(key)
        out[key] = ms if lay is None else ms * (1.0 - dropped_share(parse_key(key).kind, lay, accepts, emits))
    return out


def layout_summary(layouts: Mapping[str, Layout] | None) -> dict[str, Any]:
    """What a report says about the correction: how many units carry a layout, which kinds
    accept and emit the blocked layout."""
    if not layouts:
        return {"units": 0}
    accepts, emits = kind_layouts(layouts)
    return {"units": len(layouts), "accepts": sorted(k for k, v in accepts.items() if v),
            "emits": sorted(k for k, v in emits.items() if v)}
