"""A table for a new device from a known device's full table plus a few whole subnets measured on
the new one.

Every unit's in-graph cost on the source (``LatencyPredictor.net``: overhead and lone-unit layout
reorders removed) is scaled by a factor of its *group*: a new device differs from a known one by
how much faster each kind of work runs (depthwise convs at 128x128 do not gain from a second
thread as 1x1 convs at 16x16 do; without onnxruntime's blocked layout a 7x7 depthwise kernel slows
down far more than a 3x3 one). The factors are fitted on K measured subnets: ``measured -
overhead = sum_g s_g * x_g`` with ``x_g`` the subnet's source cost in group ``g``, by non-negative
least squares with a ridge pull towards one common factor (the median ratio measured / source).
Which groups (:data:`GROUPINGS`: one common scale, by kind of work, by depthwise kernel, by kernel
and resolution) and how strong a pull are chosen together by leave-one-out error on the K
subnets, so a uniformly faster device keeps one scale and a device that differs by kernel gets
per-kernel scales, without looking at anything but the K measurements.

The result is an ordinary table: each unit's entry is its scaled in-graph cost plus the new
device's overhead (p10/p90/p99 scaled alike), no layout records (the scale absorbed them), and the
fit under ``hardware["transfer"]``, so prediction, search, validate and calibrate use it as any
other table.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import nnls

from latency_tables.fidelity import agreement
from latency_tables.predict import LatencyPredictor
from latency_tables.units import parse_key, units_of
from tracking.space import Architecture, SearchSpace

Progress = Callable[[str, int, int], None]
RIDGE_GRID = (0.0, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 100.0)


def unit_group(key: str, grouping: str = "kind") -> str:
    """The scale group of a unit under ``grouping`` (:data:`GROUPINGS`): ``common``: one scale
    for every unit (a device uniformly faster or slower); ``kind``: what kind of
    work it is and, for blocks, at which resolution; ``kernel``: blocks and head layers by their
    depthwise kernel (runtimes differ most in how fast they run large depthwise kernels: without
    onnxruntime's blocked layout a 7x7 block slows down far more than a 3x3 one);
    ``kernel_res``: blocks by resolution and kernel, head layers by kernel."""
    u = parse_key(key)
    if grouping not in GROUPINGS:
        raise ValueError(f"unknown grouping {grouping!r}; one of {', '.join(GROUPINGS)}")
    if grouping == "common":
        return "all"
    if u.kind in ("stem", "dsconv"):
        return "stem"
    if u.kind == "mbconv":
        return {"kind": f"mbconv{u.shape[1]}", "kernel": f"mbconv-k{u.kernel}",
                "kernel_res": f"mbconv{u.shape[1]}-k{u.kernel}"}[grouping]
    if u.kind in ("adjust", "neck"):
        return "neck"
    if u.kind == "head":
        return "head" if grouping == "kind" else f"head-k{u.kernel}"
    return "out"  # cls, reg


GROUPINGS = ("common", "kind", "kernel", "kernel_res")


def group_features(source: LatencyPredictor, archs: Sequence[Architecture],
                   groups: Sequence[str], grouping: str = "kind") -> np.ndarray:
    """``[len(archs), len(groups)]``: each subnet's source in-graph cost (ms) per group (units of
    other groups left out)."""
    col = {g: i for i, g in enumerate(groups)}
    x = np.zeros((len(archs), len(groups)))
    for r, arch in enumerate(archs):
        for u in units_of(arch, source.space):
            c = col.get(unit_group(u.key, grouping))
            if c is not None:
                x[r, c] += source.net[u.key]
    return x


def _ridge_nnls(x: np.ndarray, y: np.ndarray, s0: float, lam: float) -> np.ndarray:
    """``argmin_{s >= 0} |x s - y|^2 + lam * sum_g (n_g (s_g - s0))^2`` with ``n_g`` the group's
    column norm (the pull is relative to how much each group weighs)."""
    norms = np.linalg.norm(x, axis=0)
    norms[norms == 0] = 1.0
    a = np.vstack([x, np.sqrt(lam) * np.diag(norms)])
    b = np.concatenate([y, np.sqrt(lam) * norms * s0])
    return nnls(a, b)[0]


@dataclass
class TransferFit:
    groups: list[str]
    scales: dict[str, float]
    common_scale: float
    ridge: float
    overhead_ms: float
    n: int
    fitted: dict[str, float]  # agreement on the K fitting subnets, in-sample
    loo: dict[str, float]  # leave-one-out agreement
    grouping: str = "kind"

    def to_dict(self) -> dict[str, Any]:
        return {"groups": self.groups, "scales": self.scales, "common_scale": self.common_scale,
                "ridge": self.ridge, "overhead_ms": self.overhead_ms, "n": self.n, "fitted": self.fitted,
                "loo": self.loo, "grouping": self.grouping}


def fit_transfer(source: LatencyPredictor, archs: Sequence[Architecture], measured: Sequence[float],
                 overhead_ms: float = 0.0, ridge: float | None = None,
                 grouping: str | None = None) -> TransferFit:
    """Per-group scale factors from subnets measured on the new device. ``grouping`` (one of
    :data:`GROUPINGS`) and ``ridge`` (:data:`RIDGE_GRID`): None chooses them by leave-one-out
    error on the measured subnets themselves (ties: fewer groups, then the stronger pull)."""
    y = np.asarray(measured, float) - overhead_ms
    if len(y) < 2:
        raise ValueError("transfer needs at least 2 measured subnets")
    if (y <= 0).any():
        raise ValueError("measured latencies must exceed the new device's per-run overhead")
    models = [_GroupModel(source, archs, y, g) for g in ([grouping] if grouping else GROUPINGS)]
    ridges = [ridge] if ridge is not None else list(RIDGE_GRID)
    scored = [(m.loo_rmspe(lam), len(m.groups), -lam, i, lam) for i, m in enumerate(models) for lam in ridges]
    *_, best, lam = min(scored)
    m = models[best]
    s = m.fit(np.arange(len(y)), lam)
    return TransferFit(m.groups, {g: float(v) for g, v in zip(m.groups, s, strict=True)}, m.s0, float(lam),
                       float(overhead_ms), int(len(y)), agreement(m.x @ s + overhead_ms, y + overhead_ms),
                       agreement(m.loo_pred(lam) + overhead_ms, y + overhead_ms), m.grouping)


class _GroupModel:
    """Subnet latency as the source's per-group costs times per-group scales, one grouping."""

    def __init__(self, source: LatencyPredictor, archs: Sequence[Architecture], y: np.ndarray,
                 grouping: str) -> None:
        self.grouping, self.y = grouping, y
        self.groups = sorted({unit_group(k, grouping) for k in source.net})
        self.x = group_features(source, archs, self.groups, grouping)
        self.used = self.x.sum(axis=0) > 0
        self.s0 = float(np.median(y / self.x.sum(axis=1)))

    def fit(self, rows: np.ndarray, lam: float) -> np.ndarray:
        s = np.full(len(self.groups), self.s0)
        s[self.used] = _ridge_nnls(self.x[rows][:, self.used], self.y[rows], self.s0, lam)
        return s

    def loo_pred(self, lam: float) -> np.ndarray:
        idx = np.arange(len(self.y))
        return np.array([self.x[i] @ self.fit(idx[idx != i], lam) for i in idx])

    def loo_rmspe(self, lam: float) -> float:
        return float(np.sqrt(np.mean(((self.loo_pred(lam) - self.y) / self.y) ** 2)))


def transferred_entries(source: LatencyPredictor, tails: Mapping[str, Mapping[str, float]],
                        fit: TransferFit, source_name: str) -> dict[str, dict[str, Any]]:
    """The new table's entries: each unit's scaled in-graph cost plus the new overhead; p10/p90/p99
    keep their ratio to the median on the source (``tails``: ``{"p10": ..., "p90": ..., "p99": ...}``
    unit -> ms, from the source table)."""
    out = {}
    for key, med_src in source.medians.items():
        g = unit_group(key, fit.grouping)
        med = fit.scales[g] * source.net[key] + fit.overhead_ms
        ratio = {k: (tails[k][key] / med_src if key in tails.get(k, {}) and med_src > 0 else None)
                 for k in ("p10", "p90", "p99")}
        p10 = med * ratio["p10"] if ratio["p10"] else med
        p90 = med * ratio["p90"] if ratio["p90"] else med
        out[key] = {"median_ms": med, "p10_ms": min(p10, med), "p90_ms": max(p90, med),
                    "p99_ms": max(med * ratio["p99"], p90) if ratio["p99"] else None,
                    "iqr_ms": max(p90 - p10, 0.0) / 2, "count": 0,
                    "env": {"transferred_from": source_name, "group": g, "scale": fit.scales[g]}}
    return out


# -- measuring whole subnets on the new device ------------------------------------------------

def subnet_protocol(protocol: Any) -> Any:
    """The protocol a transfer measures its K whole subnets with: the table's, with fewer runs
    (2 warm-up, at least 5 timed, 0.1 s): a whole subnet runs for milliseconds, so its median
    settles in fewer runs than a unit's, and the K measurements are the whole cost of a new
    device (a slow target's subnets took 0.5 s each under the unit protocol)."""
    from dataclasses import replace

    return replace(protocol, warmup_runs=min(protocol.warmup_runs, 2), min_runs=min(protocol.min_runs, 5),
                   min_time_s=min(protocol.min_time_s, 0.1))


def measure_subnets(archs: Sequence[Architecture], backend: Any, protocol: Any, space: SearchSpace,
                    repeats: int = 1, seed: int = 0, precision: str = "fp32", round_stat: str = "min",
                    workdir: str | Path | None = None, progress: Progress | None = None) -> np.ndarray:
    """Median latency (ms) of each subnet's search graph on ``backend``, combined over ``repeats``
    rounds (each in a new order). ONNX backends run the exported graph (quantized for int8); the
    torch backend runs the same modules (the subnet's search branch) in PyTorch."""
    from latency_tables.fidelity import export_search_graphs, measure_models

    if getattr(backend, "name", "") == "torch":
        return _measure_torch(archs, backend, protocol, space, repeats, seed, round_stat, progress)
    with tempfile.TemporaryDirectory(prefix="lutnas-transfer-") as tmp:
        paths = export_search_graphs(archs, workdir or tmp, space, seed, progress, precision, backend.model_format)
        return measure_models(backend, paths, protocol, repeats, seed, progress, round_stat)


def _measure_torch(archs: Sequence[Architecture], backend: Any, protocol: Any, space: SearchSpace, repeats: int,
                   seed: int, round_stat: str, progress: Progress | None) -> np.ndarray:
    import torch

    from profilers.measure import combine_rounds, measure
    from tracking.export import SearchBranch
    from tracking.supernet import Supernet

    torch.manual_seed(seed)
    supernet = Supernet(space).eval()
    zf_shape = None
    modules = []
    for arch in archs:
        path = supernet.path(arch).eval()
        if zf_shape is None:
            with torch.no_grad():
                zf_shape = tuple(path.template_feature(torch.zeros(1, 3, space.template_size,
                                                                   space.template_size)).shape)
        modules.append(SearchBranch(path).eval())
    backend.input_shapes = [(1, 3, space.search_size, space.search_size), zf_shape]
    loaded = [backend.load(m, seed) for m in modules]
    out = np.zeros((repeats, len(archs)))
    done = 0
    for r in range(repeats):
        order = np.arange(len(archs)) if r == 0 else np.random.default_rng([seed, r]).permutation(len(archs))
        for i in order:
            out[r, i] = measure(backend, loaded[i], protocol, seed).median_ms
            done += 1
            if progress:
                progress("measure", done, repeats * len(archs))
    return combine_rounds(out, round_stat)


@dataclass
class TransferReport:
    fit: TransferFit
    table: Any  # TableInfo of the new table
    archs: list[str]
    measured_ms: list[float]
    measure_s: float


def transfer_table(source_store: Any, source_name: str | None, store: Any, name: str | None, backend: Any,
                   protocol: Any, k: int = 20, seed: int = 2000, repeats: int = 1, round_stat: str = "min",
                   hardware: dict[str, Any] | None = None, space: SearchSpace | None = None,
                   progress: Progress | None = None) -> TransferReport:
    """Measure ``k`` sampled subnets (seeded) and the per-run overhead on ``backend``, fit the
    group scales against the source table, and write the new table ``name`` into ``store``."""
    from latency_tables.store import default_table_name
    from tracking.space import sample_many

    space = space or SearchSpace.paper()
    src_info = source_store.find(source_name)
    source = LatencyPredictor.from_store(source_store, src_info.name, space, calibrated=False)
    archs = sample_many(k, seed, space)
    source.predict_batch(archs)  # every unit the subnets need must be in the source table
    missing = source.missing_units()
    if missing:
        raise ValueError(f"the source table lacks {len(missing)} unit(s) of the space (e.g. {missing[0]}); "
                         "transfer needs a full table")
    precision = str(backend.runtime_info().get("precision", "fp32"))
    t0 = time.perf_counter()
    overhead = _overhead_ms(backend, protocol)
    measured = measure_subnets(archs, backend, subnet_protocol(protocol), space, repeats, seed, precision, round_stat,
                               progress=progress)
    measure_s = time.perf_counter() - t0
    fit = fit_transfer(source, archs, measured, overhead)
    tails = {q: source_store.stats(src_info.id, q) for q in ("p90", "p99")}
    tails["p10"] = _p10(source_store, src_info.id)
    hardware = {**(hardware or {}), "transfer": {"from": src_info.name, "k": k, "seed": seed, **fit.to_dict()}}
    runtime = {**backend.config(), "clock": protocol.clock, "flush_bytes": protocol.flush_bytes,
               "warm_inputs": protocol.warm_inputs, "rounds": repeats, "round_stat": round_stat}
    info = store.get_or_create(name or default_table_name(hardware, runtime), hardware, runtime)
    info = store.update(info.id, overhead_ms=overhead, calibration=None, hardware=hardware)
    store.put(info.id, transferred_entries(source, tails, fit, src_info.name))
    return TransferReport(fit, info, [a.to_string() for a in archs], [float(v) for v in measured], measure_s)


def _overhead_ms(backend: Any, protocol: Any) -> float:
    """The backend's per-run overhead (0 for torch, which runs modules, not model files)."""
    import tempfile

    from latency_tables.units import export_overhead_model
    from profilers.measure import measure_overhead

    if backend.name == "torch":
        return 0.0
    with tempfile.TemporaryDirectory(prefix="lutnas-overhead-") as tmp:
        model = export_overhead_model(Path(tmp) / f"overhead.{backend.model_format}", backend.model_format)
        return measure_overhead(backend, protocol, model).median_ms


def _p10(store: Any, table_id: int) -> dict[str, float]:
    from sqlalchemy import select

    from latency_tables.db import LatencyEntry

    with store.session() as s:
        rows = s.execute(select(LatencyEntry.unit_key, LatencyEntry.p10_ms).where(LatencyEntry.table_id == table_id))
        return {k: float(v) for k, v in rows}
