"""Latency prediction from a LUT: the sum of an architecture's units, corrected for the per-run
overhead (paid once per unit measurement, once per end-to-end run) and for layout reorders a
unit pays alone but not inside the graph (``latency_tables.layout``), and optionally calibrated.

Prediction is linear in the units, so a calibration of the form
``a * raw_ms + b_blocks * n_blocks + b_head * n_head_layers + c`` folds into per-gene lookup
arrays: :meth:`LatencyPredictor.predict_genes` is a handful of numpy gathers, and
:meth:`LatencyPredictor.fastest` is an exact per-gene minimisation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from latency_tables.layout import in_graph_costs
from latency_tables.units import (
    adjust_unit,
    block_unit,
    ds_unit,
    head_units,
    neck_unit,
    stem_unit,
    units_of,
)
from tracking.space import (
    HEAD_KERNELS,
    MBCONV_CHOICES,
    SKIP,
    Architecture,
    Head,
    SearchSpace,
    backbone_positions,
    enumerate_genes,
    from_genes,
    to_genes,
)

CALIBRATION_FEATURES = ("raw_ms", "n_blocks", "n_head_layers")


class MissingUnitsError(ValueError):
    """The table has no entry for some units; ``keys`` names them."""

    def __init__(self, keys: Sequence[str]) -> None:
        self.keys = sorted(set(keys))
        shown = ", ".join(self.keys[:5]) + (f" and {len(self.keys) - 5} more" if len(self.keys) > 5 else "")
        super().__init__(f"latency table has no entry for {len(self.keys)} unit(s): {shown}")


class LatencyPredictor:
    """Predicts search-graph latency (ms per frame) from unit medians.

    ``medians``: unit key -> median ms as measured alone; ``overhead_ms``: per-run overhead that
    each of those measurements includes once; ``calibration``: ``{"coef": {feature: value},
    "intercept": value}`` over :data:`CALIBRATION_FEATURES`, or None; ``layouts``: unit key ->
    boundary reorder shares (``{"reorder_in", "reorder_out"}``), or None for no layout correction.

    Tail statistics (``stat`` p90/p99): ``spread`` holds each unit's tail minus its median (ms),
    and a prediction is the median prediction plus the root sum of squares of the spreads of its
    units: the units' slow runs are close to independent, so a graph's tail lies that far above its
    median, not the plain sum of unit tails above (measured 2026-12-02, 40 subnets, 1 thread: the
    sum of unit p90s over-predicted measured p90 by +12%, 0% within 5%; the root sum of squares
    +2%, 95% within 5%; docs/latency.md).

    ``frame``: the table's pre/post-processing record (``latency_tables.frame``; None when the table
    has none): :meth:`frame_figures` adds it to a prediction as ``frame_ms`` and ``fps``.
    """

    frame: dict[str, Any] | None = None

    def __init__(self, medians: Mapping[str, float], space: SearchSpace | None = None,
                 overhead_ms: float | None = None, calibration: Mapping[str, Any] | None = None,
                 layouts: Mapping[str, Mapping[str, float]] | None = None, stat: str = "p50",
                 spread: Mapping[str, float] | None = None) -> None:
        self.space = space or SearchSpace.paper()
        self.medians = {k: float(v) for k, v in medians.items()}
        self.spread = {k: max(float(v), 0.0) for k, v in spread.items()} if spread else None
        # sum of squared spreads, as an ordinary (linear) table: predict_genes stays one gather
        self._spread_sq = LatencyPredictor({k: v * v for k, v in self.spread.items()}, self.space) \
            if self.spread else None
        self.overhead_ms = float(overhead_ms or 0.0)
        self.layouts = {k: dict(v) for k, v in (layouts or {}).items() if k in self.medians}
        # Net in-graph cost per unit: its overhead removed, then the reorders it pays only alone.
        self.net = in_graph_costs({k: m - self.overhead_ms for k, m in self.medians.items()}, self.layouts)
        self.calibration = dict(calibration) if calibration else None
        self.stat = stat  # the unit statistic ``medians`` holds: p50 (the median), p90 or p99
        coef = (self.calibration or {}).get("coef", {})  # extra keys (drift_scale, fit figures) are notes
        unknown = set(coef) - set(CALIBRATION_FEATURES)
        if unknown:
            raise ValueError(f"unknown calibration features {sorted(unknown)}")
        self._a = float(coef.get("raw_ms", 1.0))
        self._b_block = float(coef.get("n_blocks", 0.0))
        self._b_head = float(coef.get("n_head_layers", 0.0))
        self._c = float((self.calibration or {}).get("intercept", 0.0))
        self._build_arrays()

    # -- construction ---------------------------------------------------------------------
    @classmethod
    def from_store(cls, store: Any, name: str | None = None, space: SearchSpace | None = None,
                   calibrated: bool = True, layout: bool = True, stat: str = "p50") -> LatencyPredictor:
        """From a :class:`~latency_tables.store.LatencyStore` (or a path/URL) and a table name;
        ``layout=False`` ignores the recorded boundary reorders (the plain unit sum).

        ``stat``: ``p50`` (the median, default), ``p90`` or ``p99``: a tail is predicted as the
        median plus the root sum of squares of the units' spreads (see the class); ``latency
        validate`` reports the agreement per statistic. The table's calibration (fitted on
        medians) applies to every statistic."""
        from latency_tables.store import LatencyStore

        if isinstance(store, str | Path):
            store = LatencyStore(store, create=False)
        return store.predictor(store.find(name).id, space=space, calibrated=calibrated, layout=layout, stat=stat)

    def with_calibration(self, calibration: Mapping[str, Any] | None) -> LatencyPredictor:
        """The same table and layout correction under another calibration (None: uncalibrated)."""
        pred = LatencyPredictor(self.medians, self.space, self.overhead_ms, calibration, self.layouts, self.stat,
                                self.spread)
        pred.frame = self.frame
        return pred

    def plain(self) -> LatencyPredictor:
        """The plain unit sum of the same table: no layout correction, no calibration."""
        pred = LatencyPredictor(self.medians, self.space, self.overhead_ms, stat=self.stat, spread=self.spread)
        pred.frame = self.frame
        return pred

    def frame_figures(self, latency_ms: float) -> dict[str, float | None]:
        """``{"frame_ms", "fps"}`` of a predicted network latency: the tracker's whole frame
        (``latency_tables.frame``); None where the table has no pre/post-processing record."""
        return frame_figures(latency_ms, self.frame)

    def _cost(self, key: str) -> float:
        """Net in-graph cost of one unit (overhead and lone-unit reorders removed); NaN when missing."""
        return self.net.get(key, np.nan)

    def _build_arrays(self) -> None:
        sp = self.space
        a = self._a
        cost = self._cost
        positions = [(p.stage, p.block) for p in backbone_positions(sp)]
        self.n_block_genes = len(positions)
        # Block costs [position, choice], already calibrated (a * cost + per-block term).
        self.block_cost = np.array([[a * cost(block_unit(sp, s, b, c).key) + self._b_block
                                     for c in range(len(MBCONV_CHOICES))] for s, b in positions])
        # Blocks after the output position do not run: prefix mask per output index.
        outs = sp.output_positions
        last = [positions.index(p) for p in outs]
        self.active = np.array([[i <= li for i in range(len(positions))] for li in last])
        self.block_cost[~self.active.any(axis=0)] = 0.0  # positions no output position reaches
        # Constant units and the output adjust, per output index.
        const = cost(stem_unit(sp).key) + cost(ds_unit(sp).key) + cost(neck_unit(sp).key)
        self.out_cost = np.array([a * (const + cost(adjust_unit(sp, s).key)) for s, _ in outs])
        self.base = self._c + a * self.overhead_ms
        # Heads: first layer [width, kernel choice], later layers [width, choice incl. skip = 0],
        # output conv [width] per tower.
        nw = len(sp.head_widths)
        self.head_first = np.zeros((nw, len(HEAD_KERNELS)))
        self.head_later = np.zeros((nw, 3))
        self.tower_out = {"cls": np.zeros(nw), "reg": np.zeros(nw)}
        for w in range(nw):
            for c in range(len(HEAD_KERNELS)):
                us = head_units(sp, Head(w, (c,) * sp.head_layers), "cls")
                self.head_first[w, c] = a * cost(us[0].key) + self._b_head
                if sp.head_layers > 1:
                    self.head_later[w, c] = a * cost(us[1].key) + self._b_head
            self.head_later[w, SKIP] = 0.0
            for tower in ("cls", "reg"):
                out = head_units(sp, Head(w, (0,) * sp.head_layers), tower)[-1]
                self.tower_out[tower][w] = a * cost(out.key)
        self.n_genes = self.n_block_genes + 1 + 2 * (1 + sp.head_layers)
        self._gene_bound = np.array([n for _, n in enumerate_genes(sp)])
        self._build_flat(last)

    def _build_flat(self, last: list[int]) -> None:
        """One flat cost table for predict_genes: gene j with value v (and the value d of the gene
        it depends on: the output index for blocks, the width for head layers) costs
        ``flat[off[j] + d * stride[j] + v]``, so a prediction is a single gather and a row sum."""
        nb, nl, n_out = self.n_block_genes, self.space.head_layers, len(last)
        segments, off, dep, stride = [], [], [], []

        def add(seg: np.ndarray, dep_col: int, step: int) -> None:
            off.append(sum(len(x) for x in segments))
            segments.append(np.asarray(seg, float).ravel())
            dep.append(dep_col)
            stride.append(step)

        nc = len(MBCONV_CHOICES)
        for j in range(nb):  # [output index, choice]; 0 where the block does not run
            add(np.where(self.active[:, j : j + 1], self.block_cost[j][None, :], 0.0), nb, nc)
        add(self.out_cost, 0, 0)
        col = nb + 1
        for tower in ("cls", "reg"):
            add(self.tower_out[tower], 0, 0)
            add(self.head_first, col, len(HEAD_KERNELS))
            for _ in range(nl - 1):
                add(self.head_later, col, 3)
            col += 1 + nl
        if len(off) != self.n_genes or n_out != self.active.shape[0]:  # the layout above must cover every gene
            raise RuntimeError("internal: gene layout does not match the search space")
        self._flat = np.concatenate(segments)
        self._off = np.array(off)
        self._dep = np.array(dep)
        self._stride = np.array(stride)

    # -- prediction -----------------------------------------------------------------------
    def raw_sum(self, arch: Architecture) -> float:
        """Uncalibrated prediction: the units' net in-graph costs plus one per-run overhead."""
        units = units_of(arch, self.space)
        missing = [u.key for u in units if u.key not in self.medians]
        if missing:
            raise MissingUnitsError(missing)
        return sum(self.net[u.key] for u in units) + self.overhead_ms

    def features(self, arch: Architecture) -> dict[str, float]:
        """The calibration features of ``arch``."""
        units = units_of(arch, self.space)
        return {"raw_ms": self.raw_sum(arch), "n_blocks": float(sum(u.kind == "mbconv" for u in units)),
                "n_head_layers": float(sum(u.kind == "head" for u in units))}

    def predict(self, arch: Architecture) -> float:
        """Predicted search-graph latency of ``arch`` in ms (unit lookups, then calibration)."""
        arch.validate(self.space)
        f = self.features(arch)
        tail = self._a * float(np.sqrt(self._spread_sq.raw_sum(arch))) if self._spread_sq else 0.0
        return (self._a * f["raw_ms"] + self._b_block * f["n_blocks"]
                + self._b_head * f["n_head_layers"] + self._c + tail)

    def predict_batch(self, archs: Sequence[Architecture]) -> np.ndarray:
        if not archs:
            return np.zeros(0)
        for a in archs:
            a.validate(self.space)
        return self.predict_genes(np.array([to_genes(a, self.space) for a in archs], dtype=np.int64))

    def predict_genes(self, genes: np.ndarray) -> np.ndarray:
        """Vectorised prediction for gene rows (layout of ``tracking.space.to_genes``)."""
        g = np.asarray(genes)
        if g.ndim != 2 or g.shape[1] != self.n_genes:
            raise ValueError(f"genes must have shape (n, {self.n_genes}), got {g.shape}")
        if g.dtype.kind not in "iu":
            raise ValueError(f"genes must be integers, got {g.dtype}")
        # One pass: negative values viewed as unsigned are huge, so they fail the upper bound too.
        unsigned = g.view(np.dtype(f"u{g.dtype.itemsize}")) if g.dtype.kind == "i" else g
        if g.size and (unsigned >= self._gene_bound).any():
            row, col = np.argwhere((g < 0) | (g >= self._gene_bound))[0]
            raise ValueError(f"gene {col} of row {row} is {g[row, col]}, outside 0..{self._gene_bound[col] - 1}")
        idx = np.take(g, self._dep, axis=1)  # the gene each gene depends on (take: ~10x fancy indexing)
        idx *= self._stride
        idx += g
        idx += self._off
        total = self.base + self._flat[idx].sum(axis=1)
        if self._spread_sq is not None:
            total += self._a * np.sqrt(self._spread_sq.predict_genes(g))
        if np.isnan(total).any():
            bad = np.flatnonzero(np.isnan(total))[:50]
            missing: set[str] = set()
            for row in bad:
                arch = from_genes(g[row].tolist(), self.space)
                missing |= {u.key for u in units_of(arch, self.space) if u.key not in self.medians}
            raise MissingUnitsError(sorted(missing))
        return total

    # -- the fastest network --------------------------------------------------------------
    def fastest(self) -> tuple[float, Architecture]:
        """The exact minimum predicted latency of the space and one architecture reaching it
        (per-gene minimisation; blocks after the output position cost nothing). Tail statistics:
        the architecture with the fastest median and its tail prediction (the tail term is not
        per-gene, so this is an upper bound on the minimum, tight to the spreads' differences)."""
        if self._spread_sq is not None:
            _, arch = LatencyPredictor(self.medians, self.space, self.overhead_ms, self.calibration,
                                       self.layouts).fastest()
            return float(self.predict_batch([arch])[0]), arch
        arrays = (self.block_cost, self.out_cost, self.head_first, self.head_later, *self.tower_out.values())
        if any(np.isnan(a).any() for a in arrays):  # exactness needs every unit of the space
            raise MissingUnitsError(self.missing_units())
        best_block = self.block_cost.min(axis=1)
        best_choice = self.block_cost.argmin(axis=1)
        backbone = np.where(self.active, best_block[None, :], 0.0).sum(axis=1) + self.out_cost
        o = int(np.argmin(backbone))
        total = self.base + float(backbone[o])
        heads = []
        for tower in ("cls", "reg"):
            per_width = (self.head_first.min(axis=1) + self.head_later.min(axis=1) * (self.space.head_layers - 1)
                         + self.tower_out[tower])
            w = int(np.argmin(per_width))
            total += float(per_width[w])
            later = int(np.argmin(self.head_later[w]))
            heads.append(Head(w, (int(np.argmin(self.head_first[w])),) + (later,) * (self.space.head_layers - 1)))
        stage, block = self.space.output_positions[o]
        choices = iter(int(c) for c in best_choice)
        backbone_choices = tuple(tuple(next(choices) for _ in range(n)) for n in self.space.stage_blocks)
        arch = Architecture(backbone_choices, stage, block, heads[0], heads[1]).canonical()
        return total, arch

    def _space_keys(self) -> list[str]:
        from latency_tables.units import all_units

        return [u.key for u in all_units(self.space)]

    def missing_units(self) -> list[str]:
        """Keys of the space's units the table lacks."""
        return [k for k in self._space_keys() if k not in self.medians]


def frame_figures(latency_ms: float | None, frame: Mapping[str, Any] | None) -> dict[str, float | None]:
    """``{"frame_ms", "fps"}``: a network latency plus a table's per-frame overhead
    (``latency_tables.frame``: ``frame_overhead_ms``, measured in the tracking loop, or the
    pre/post-processing alone, ``prepost_ms``, where the loop could not run); both None without a
    latency or a record."""
    extra = (frame or {}).get("frame_overhead_ms", (frame or {}).get("prepost_ms"))
    if latency_ms is None or extra is None:
        return {"frame_ms": None, "fps": None}
    total = float(latency_ms) + float(extra)
    return {"frame_ms": total, "fps": 1000.0 / total if total > 0 else None}


def fastest_latency(predictor: LatencyPredictor, space: SearchSpace | None = None) -> float:
    """Minimum predicted latency (ms) reachable in ``space`` (default: the predictor's), exact."""
    if space is not None and space != predictor.space:
        predictor = LatencyPredictor(predictor.medians, space, predictor.overhead_ms, predictor.calibration,
                                     predictor.layouts, predictor.stat, predictor.spread)
    return predictor.fastest()[0]


def tail_split(p50: Mapping[str, float], tail: Mapping[str, float] | None) -> tuple[dict[str, float],
                                                                                    dict[str, float] | None]:
    """Medians and spreads (tail - median, ms) for a tail predictor from a table's p50 and tail
    entries; units without the tail statistic are left out of both, so a prediction needing them
    raises :class:`MissingUnitsError` rather than mixing statistics. ``tail`` None: p50 only."""
    if tail is None:
        return dict(p50), None
    keys = [k for k in p50 if k in tail]
    return {k: float(p50[k]) for k in keys}, {k: float(tail[k]) - float(p50[k]) for k in keys}
