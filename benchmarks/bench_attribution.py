"""Where does a LUT prediction's error come from? Per-unit attribution inside whole search graphs.

For seeded random subnets, onnxruntime's node profiler is run on each whole search graph and on
each of its units alone (same session options as the table's). Graph nodes are mapped to units
by their module path (``/blocks/blocks.3/...`` is the 4th active block, ``/adjust/...``, ...);
an unnamed ``ReorderInput`` belongs to the unit it feeds, a ``ReorderOutput`` to the unit it
follows. For every unit the table's model is compared with what that unit took inside the graph:
the unit alone's node time with the boundary reorders the predictor drops removed
(``latency_tables.layout``), against its node time in the graph. What is left of a subnet's
wall time (graph wall time minus all node time, against the units' own) is the executor's.

Prints, per unit kind (blocks by stage) and per output stage, the mean in-graph minus modelled
node time in microseconds and as a share of the subnet's latency, so a class-wise bias can be
traced to the units (or boundaries) that cause it. Profiler timings run a little slower than
untraced ones; both sides of every comparison are traced alike.

    python benchmarks/bench_attribution.py --table /tmp/lut.db --samples 24 --seed 7

Writes what it prints and the per-subnet rows to benchmarks/results/bench_attribution/DATE.{txt,json}.
"""

from __future__ import annotations

import argparse
import re
import tempfile
from collections import defaultdict
from pathlib import Path

import harness  # same folder: where results are written
import numpy as np

from latency_tables.fidelity import export_search_graphs
from latency_tables.layout import dropped_share, kind_layouts
from latency_tables.predict import LatencyPredictor
from latency_tables.store import LatencyStore
from latency_tables.units import export_unit_onnx, parse_key, unit_filename, units_of
from profilers import get_backend
from profilers.layout import REORDER_IN, _runs
from tracking.space import SKIP, SearchSpace, sample_many

_MODULE = re.compile(r"^/(stem|ds|blocks/blocks\.(\d+)|adjust|neck|cls_tower/cls_tower\.(\d+)|cls_out|"
                     r"reg_tower/reg_tower\.(\d+)|reg_out)/")


def unit_index(name: str, n_blocks: int, n_cls: int, n_reg: int) -> int | None:
    """Index into ``units_of(arch)`` of the unit a graph node belongs to (None: unnamed)."""
    if name.startswith("cls_") or name == "cls":  # the cls output conv, named after the graph output
        return 4 + n_blocks + n_cls
    m = _MODULE.match(name)
    if not m:
        return None
    part = m.group(1)
    fixed = {"stem": 0, "ds": 1, "adjust": 2 + n_blocks, "neck": 3 + n_blocks, "cls_out": 4 + n_blocks + n_cls,
             "reg_out": 5 + n_blocks + n_cls + n_reg}
    if part in fixed:
        return fixed[part]
    if m.group(2) is not None:
        return 2 + int(m.group(2))
    if m.group(3) is not None:
        return 4 + n_blocks + int(m.group(3))
    return 5 + n_blocks + n_cls + int(m.group(4))


def graph_attribution(events: list, n_units: int, n_blocks: int, n_cls: int, n_reg: int,
                      skip: int = 3) -> tuple[np.ndarray, float]:
    """Median per-unit node time (us) over traced runs, and the median total node time."""
    per_run = []
    for nodes in _runs(events)[skip:]:
        t = np.zeros(n_units)
        named = [unit_index(e["name"], n_blocks, n_cls, n_reg) for e in nodes]
        for i, e in enumerate(nodes):
            u = named[i]
            op = e["args"].get("op_name", "")
            if u is None and op == REORDER_IN:
                u = next((x for x in named[i + 1:] if x is not None), None)
            elif u is None:
                u = next((x for x in reversed(named[:i]) if x is not None), 0)
            t[u if u is not None else n_units - 1] += e["dur"]
        per_run.append(t)
    arr = np.array(per_run)
    return np.median(arr, axis=0), float(np.median(arr.sum(axis=1)))


def unit_alone(backend, key: str, work: Path, seed: int, runs: int) -> float:
    """Median node time (us) of one unit measured alone (its boundary reorders included)."""
    path = work / unit_filename(key)
    if not path.exists():
        export_unit_onnx(parse_key(key), path, seed)
    trace = backend.node_trace(path, runs=runs, seed=seed)
    totals = [sum(e["dur"] for e in nodes) for nodes in _runs(trace["events"])[3:]]
    return float(np.median(totals))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--table", required=True, help="Table database (SQLite path or URL), optionally #NAME")
    ap.add_argument("--samples", type=int, default=24)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--runs", type=int, default=30)
    harness.add_arguments(ap)
    args = ap.parse_args()
    printed = harness.keep_stdout()
    spec, _, name = args.table.partition("#")
    store = LatencyStore(spec, create=False)
    info = store.find(name or None)
    space = SearchSpace.paper()
    pred = LatencyPredictor.from_store(store, info.name, space, calibrated=False)
    rt = info.runtime
    backend = get_backend("onnxruntime", threads=int(rt.get("threads", 1)),
                          graph_optimization=rt.get("graph_optimization", "all"))
    accepts, emits = kind_layouts(pred.layouts)
    archs = sample_many(args.samples, args.seed, space)
    rows = []
    alone: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="lutnas-attr-") as tmp:
        work = Path(tmp)
        paths = export_search_graphs(archs, work / "graphs", space, args.seed)
        for i, (arch, path) in enumerate(zip(archs, paths, strict=True)):
            units = units_of(arch, space)
            n_blocks = len(list(arch.active_blocks()))
            n_cls, n_reg = (sum(c != SKIP for c in h.layers) for h in (arch.cls, arch.reg))
            trace = backend.node_trace(path, runs=args.runs, seed=args.seed)
            in_graph, total = graph_attribution(trace["events"], len(units), n_blocks, n_cls, n_reg)
            for u in units:
                if u.key not in alone:
                    alone[u.key] = unit_alone(backend, u.key, work / "units", args.seed, args.runs)
            modelled = np.array([alone[u.key] * (1 - dropped_share(u.kind, pred.layouts.get(u.key, {}),
                                                                   accepts, emits)) for u in units])
            rows.append({"arch": arch.to_string(), "out_stage": arch.out_stage,
                         "units": [u.key for u in units], "in_graph_us": in_graph.tolist(),
                         "modelled_us": modelled.tolist(), "graph_total_us": total,
                         "predicted_ms": float(pred.predict(arch))})
            print(f"[{i + 1}/{len(archs)}] {arch.to_string()}: graph nodes {total / 1e3:.2f} ms, "
                  f"modelled {modelled.sum() / 1e3:.2f} ms ({(modelled.sum() - total) / total:+.1%})", flush=True)
    report(rows)
    harness.write_result("bench_attribution", {"rows": rows},
                         printed.getvalue(), harness.variant(ap, args, "table"),
                         args.results_dir)


def _label(key: str) -> str:
    u = parse_key(key)
    if u.kind == "mbconv":
        return f"mbconv in{u.shape[0]}x{u.shape[1]}"
    if u.kind == "adjust":
        return f"adjust in{u.shape[0]}"
    return u.kind


def report(rows: list[dict]) -> None:
    """Per unit label: mean (in graph - modelled) us per subnet, and per output stage."""
    by: dict[tuple[int, str], list[float]] = defaultdict(list)
    totals: dict[int, list[float]] = defaultdict(list)
    for r in rows:
        diff: dict[str, float] = defaultdict(float)
        for key, g, m in zip(r["units"], r["in_graph_us"], r["modelled_us"], strict=True):
            diff[_label(key)] += g - m
        for lab, d in diff.items():
            by[(r["out_stage"], lab)].append(d / (r["graph_total_us"]))
        totals[r["out_stage"]].append((sum(r["modelled_us"]) - r["graph_total_us"]) / r["graph_total_us"])
    print("\nmodelled - in graph, share of the subnet's node time (negative: the model under-predicts)")
    for stage, vals in sorted(totals.items()):
        print(f"output stage {stage}: n={len(vals)}, all units {np.mean(vals):+.2%} (sd {np.std(vals):.2%})")
        for (s, lab), v in sorted(by.items()):
            if s == stage:
                print(f"   {lab:<22} {-np.mean(v):+.2%}")


if __name__ == "__main__":
    main()
