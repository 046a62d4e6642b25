"""Fidelity of LUT predictions: measure end-to-end search graphs of sampled subnets with the same
backend and settings as the units, and compare (and compare FLOPs as a latency proxy).
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import spearmanr

from profilers.backends import Backend
from profilers.measure import Protocol, check_round_stat, combine_rounds, measure
from tracking.progress import Progress
from tracking.space import Architecture, SearchSpace


def export_search_graphs(archs: Sequence[Architecture], out_dir: str | Path, space: SearchSpace,
                         seed: int = 0, progress: Progress | None = None, precision: str = "fp32",
                         fmt: str = "onnx") -> list[Path]:
    """Export each architecture's search graph (what ``tracking.export.export_onnx`` writes as
    ``search.onnx``: inputs ``search``, ``zf``; outputs ``cls``, ``reg``) from one seeded random
    supernet. Only the search branch is exported (half the export time of ``export_onnx``).
    ``precision="int8"``: each graph is then quantized (``latency_tables.quantize``), calibrated on
    synthetic search crops and the template feature of their template crops. ``fmt="tflite"``:
    ``search.tflite`` converted by ``latency_tables.litert`` from the same modules (channels-last IO;
    int8: full-integer, calibrated on the same crops)."""
    import torch

    from latency_tables.quantize import check_precision, synthetic_crops
    from latency_tables.units import check_format
    from tracking.supernet import Supernet

    torch.manual_seed(seed)
    supernet = Supernet(space).eval()
    x = torch.zeros(1, 3, space.search_size, space.search_size)
    int8 = check_precision(precision) == "int8"
    crops = synthetic_crops(seed=seed, search_size=space.search_size, template_size=space.template_size) \
        if int8 else None
    check_format(fmt)
    paths = []
    for i, arch in enumerate(archs):
        out = Path(out_dir) / f"{i:04d}-{arch.canonical_id()}" / f"search.{fmt}"
        out.parent.mkdir(parents=True, exist_ok=True)
        paths.append(_export_search_graph(supernet.path(arch).eval(), x, out, space, precision, fmt, crops))
        if progress:
            progress("export", i + 1, len(archs))
    return paths


def _export_search_graph(path: Any, x: Any, out: Path, space: SearchSpace, precision: str, fmt: str,
                         crops: Any) -> Path:
    """One subnet's search graph (``path``: its modules, shared with the supernet rather than copied)
    to ``out``: ONNX (int8: quantized on ``crops``) or .tflite."""
    import torch

    from latency_tables.quantize import quantize_onnx
    from tracking.export import SearchBranch, export_module

    with torch.no_grad():
        zf = path.template_feature(torch.zeros(1, 3, space.template_size, space.template_size))
        calib = [(xs[None], path.template_feature(torch.from_numpy(zs[None])).numpy())
                 for xs, zs in zip(*crops, strict=True)] if crops is not None else None
        if fmt == "tflite":
            from latency_tables.litert import export_search_graph_tflite

            return export_search_graph_tflite(SearchBranch(path), x, zf, out, precision, calib)
        export_module(SearchBranch(path), (x, zf), out, ["search", "zf"], ["cls", "reg"])
        if calib is not None:
            fp32 = out.with_name("search-fp32.onnx")
            out.replace(fp32)
            quantize_onnx(fp32, out, [{"search": xs, "zf": zs} for xs, zs in calib])
            fp32.unlink()
    return out


def _round_order(n: int, r: int, seed: int) -> np.ndarray:
    """Round 0 in the given order, later rounds shuffled (seeded): a slow spell then hits
    different models in different rounds."""
    return np.arange(n) if r == 0 else np.random.default_rng([seed, r]).permutation(n)


def measure_models(backend: Backend, paths: Sequence[Path], protocol: Protocol, repeats: int = 1,
                   seed: int = 0, progress: Progress | None = None, round_stat: str = "min") -> np.ndarray:
    """Median latency (ms) of each model; with ``repeats`` > 1, that many rounds over all models
    (a new order each round) combined by ``round_stat`` (``profilers.measure.ROUND_STATS``)."""
    return measure_with_probes(backend, paths, [], protocol, repeats, seed=seed, progress=progress,
                               round_stat=round_stat)[0]


def probe_keys(medians: dict[str, float], k: int = 6) -> list[str]:
    """``k`` unit keys of a table spread evenly over its latency range (deterministic): the probes
    that tell how fast the host is now compared with when the table was profiled."""
    ordered = sorted(medians, key=lambda key: (medians[key], key))
    if k <= 0 or not ordered:
        return []
    idx = np.unique(np.linspace(0, len(ordered) - 1, min(k, len(ordered))).round().astype(int))
    return [ordered[i] for i in idx]


def export_probes(medians: dict[str, float], k: int, out_dir: str | Path, seed: int = 0,
                  precision: str = "fp32", fmt: str = "onnx") -> tuple[list[str], list[Path]]:
    """The :func:`probe_keys` of a table and their unit models (``fmt``), exported under ``out_dir``."""
    from latency_tables.units import export_unit, parse_key, unit_filename

    keys = probe_keys(medians, k)
    return keys, [export_unit(parse_key(key), Path(out_dir) / unit_filename(key, fmt), seed, precision, fmt)
                  for key in keys]


def measure_with_probes(backend: Backend, paths: Sequence[Path], probe_paths: Sequence[Path], protocol: Protocol,
                        repeats: int = 1, every: int = 4, seed: int = 0, progress: Progress | None = None,
                        round_stat: str = "min",
                        tails: dict[str, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray, float]:
    """:func:`measure_models`, with one of ``probe_paths`` measured after every ``every`` models
    (round robin, each probe at least once), so the probes see the host as the models did.
    Returns the models' figures, each probe's figure (by ``round_stat`` over its measurements)
    and the retest noise: the median over probes of the coefficient of variation of their
    measurements, i.e. how much one model's time moved during the run (a truer noise floor on a
    shared host than back-to-back runs; nan with fewer than two measurements per probe).

    ``tails``: a dict to fill with each model's ``p90`` and ``p99`` (each round's, combined by
    ``round_stat`` like the medians), for tail-latency fidelity."""
    check_round_stat(round_stat)  # before any measurement
    out = np.zeros((repeats, len(paths)))
    tail = {"p90": np.zeros((repeats, len(paths))), "p99": np.zeros((repeats, len(paths)))}
    probes: list[list[float]] = [[] for _ in probe_paths]
    total = repeats * len(paths)
    done, turn = 0, 0

    def probe() -> None:
        nonlocal turn
        j = turn % len(probe_paths)
        probes[j].append(measure(backend, probe_paths[j], protocol, seed).median_ms)
        turn += 1

    for r in range(repeats):
        for i in _round_order(len(paths), r, seed):
            m = measure(backend, paths[i], protocol, seed)
            out[r, i] = m.median_ms
            tail["p90"][r, i] = m.p90_ms
            tail["p99"][r, i] = m.p99_ms if m.p99_ms is not None else np.nan
            done += 1
            if probe_paths and done % every == 0:
                probe()
            if progress:
                progress("measure", done, total)
    while probe_paths and any(not v for v in probes):
        probe()
    if tails is not None:
        tails.update({k: combine_rounds(v, round_stat) for k, v in tail.items()})
    spreads = [np.std(v, ddof=1) / np.mean(v) for v in probes if len(v) > 1]
    return (combine_rounds(out, round_stat), np.array([combine_rounds(np.array(v), round_stat) for v in probes]),
            float(np.median(spreads)) if spreads else float("nan"))


def drift_scale(now_ms: np.ndarray, table_ms: np.ndarray) -> tuple[float, float, bool]:
    """``(speed, se, significant)``: :func:`host_speed`, the standard error of the probes' log
    ratios, and whether the probes agree that the host changed speed (``|log speed| > 2 se``,
    at least 3 probes). A lone unit re-measured in another process moves by a few percent either
    way (2026-12-02: probe ratios 0.93-1.05 in one run while the subnets ran as profiled), so a
    scale is applied only when the probes move together."""
    ratios = np.log(np.asarray(now_ms, float) / np.asarray(table_ms, float))
    speed = host_speed(now_ms, table_ms)
    if len(ratios) < 3:
        return speed, float("nan"), False
    se = float(np.std(ratios, ddof=1) / np.sqrt(len(ratios)))
    return speed, se, bool(abs(np.log(speed)) > 2 * se)


def host_speed(now_ms: np.ndarray, table_ms: np.ndarray) -> float:
    """How much slower (> 1) or faster the host runs the probes now than when they were profiled:
    the median of the per-probe ratios (robust to one probe caught by a hiccup)."""
    return float(np.median(np.asarray(now_ms, float) / np.asarray(table_ms, float))) if len(now_ms) else 1.0


def agreement(predicted: np.ndarray, measured: np.ndarray) -> dict[str, float]:
    """Share within +-5% / +-10%, RMSPE and Spearman rank correlation (fractions)."""
    predicted, measured = np.asarray(predicted, float), np.asarray(measured, float)
    rel = (predicted - measured) / measured
    rho = spearmanr(predicted, measured).statistic if len(measured) > 1 else float("nan")
    return {"within_5": float(np.mean(np.abs(rel) <= 0.05)), "within_10": float(np.mean(np.abs(rel) <= 0.10)),
            "rmspe": float(np.sqrt(np.mean(rel**2))), "mean_error": float(np.mean(rel)),
            "spearman": float(rho)}


def flops_proxy(flops: np.ndarray, measured: np.ndarray) -> tuple[np.ndarray, dict[str, float]]:
    """Least-squares fit latency ~ a * FLOPs + b (in-sample, which flatters FLOPs) and its figures."""
    a, b = np.polyfit(np.asarray(flops, float), np.asarray(measured, float), 1)
    pred = a * np.asarray(flops, float) + b
    return pred, {"slope_ms_per_gmac": float(a * 1e9), "intercept_ms": float(b)}


def noise_floor(backend: Backend, path: Path, protocol: Protocol, runs: int = 5, seed: int = 0) -> dict[str, float]:
    """Run-to-run spread of one model's median: coefficient of variation over ``runs`` measurements."""
    medians = np.array([measure(backend, path, protocol, seed).median_ms for _ in range(runs)])
    return {"noise_cv": float(np.std(medians, ddof=1) / np.mean(medians)) if runs > 1 else 0.0,
            "noise_range": float((medians.max() - medians.min()) / np.median(medians)),
            "noise_medians_ms": [float(m) for m in medians]}  # type: ignore[dict-item]


def class_errors(archs: Sequence[Architecture], predicted: np.ndarray, measured: np.ndarray) -> dict[str, Any]:
    """Agreement per class of subnet, so a bias of one class cannot hide in an average: per output
    stage (``out_stage``), per head width (``cls_width``, ``reg_width``: the width index) and per
    head depth (``cls_layers``, ``reg_layers``: non-skip layers). Each class: ``n``,
    ``mean_error``, ``within_5``, ``within_10``, ``rmspe``."""
    from tracking.space import SKIP

    rel = (np.asarray(predicted, float) - np.asarray(measured, float)) / np.asarray(measured, float)
    keys = {"out_stage": lambda a: a.out_stage, "cls_width": lambda a: a.cls.width,
            "reg_width": lambda a: a.reg.width,
            "cls_layers": lambda a: sum(c != SKIP for c in a.cls.layers),
            "reg_layers": lambda a: sum(c != SKIP for c in a.reg.layers)}
    out: dict[str, Any] = {}
    for name, of in keys.items():
        labels = np.array([of(a) for a in archs])
        out[name] = {}
        for v in sorted(set(labels.tolist())):
            r = rel[labels == v]
            out[name][str(v)] = {"n": int(len(r)), "mean_error": float(r.mean()),
                                 "within_5": float(np.mean(np.abs(r) <= 0.05)),
                                 "within_10": float(np.mean(np.abs(r) <= 0.10)),
                                 "rmspe": float(np.sqrt(np.mean(r**2)))}
    return out


def fidelity_report(predicted: np.ndarray, measured: np.ndarray, flops: np.ndarray,
                    raw_predicted: np.ndarray | None = None) -> dict[str, Any]:
    """The figures of a validation: LUT prediction vs measurement, and the FLOPs proxy."""
    report: dict[str, Any] = {"samples": int(len(measured)), **agreement(predicted, measured)}
    fp, fit = flops_proxy(flops, measured)
    report.update({f"flops_{k}": v for k, v in agreement(fp, measured).items()})
    report["flops_fit"] = fit
    if raw_predicted is not None:
        report.update({f"raw_{k}": v for k, v in agreement(raw_predicted, measured).items()})
    report["measured_ms"] = [float(m) for m in measured]
    report["predicted_ms"] = [float(p) for p in predicted]
    return report


def validate(predictor: Any, backend: Backend, samples: int, seed: int = 0, protocol: Protocol = Protocol(),
             repeats: int = 1, noise_runs: int = 5, workdir: str | Path | None = None,
             progress: Progress | None = None, probes: int = 12, round_stat: str = "min",
             tail_predictors: dict[str, Any] | None = None, precision: str = "fp32",
             normalise: bool = False, anchors: dict[str, Any] | None = None) -> dict[str, Any]:
    """Sample ``samples`` subnets (seeded), predict, export and measure their search graphs end to
    end, and report agreement, the FLOPs proxy's agreement and the noise floor.

    Host drift: on a shared machine the same model can run several percent (here up to 40%)
    slower minutes later, and a table profiled then is off by as much, uniformly. ``probes`` units
    of the table are re-measured between the subnets; ``host_speed`` is how much slower the host
    ran them than the table says, ``host_speed_se`` its standard error over the probes, and
    ``drift_*`` figures compare the prediction scaled by it. With ``normalise`` and probes that
    agree the host changed speed (:func:`drift_scale`; ``normalised`` True) the headline figures
    (``within_5``, ..., ``stats``, ``by_class``) are the scaled ones; by default they compare the
    table as profiled, like ``table_*``: measured on 2026-12-02, probes re-measured between whole
    graphs ran 2-3% slower than in the profile while the subnets ran as predicted, and scaling
    then cost more runs than it saved (docs/latency.md). The probes' own spread over the run is
    ``retest_cv``.

    With ``repeats`` > 1 every subnet is measured in that many rounds combined by
    ``round_stat``: use the table's own (``lutnas latency validate`` does). Where the table
    records boundary reorders, ``plain_*`` figures are the plain unit sum's (no layout
    correction, no calibration) and ``layout`` says which unit kinds the correction joined.

    Tail latency: ``stats`` holds the agreement figures per statistic: ``p50`` (the headline
    figures) and, for each of ``tail_predictors`` (``{"p90": a p90 predictor, ...}``),
    that prediction against the subnets' measured same percentile (``measured_p90_ms``, ...).
    ``precision="int8"``: the subnets are quantized like the table's units (``latency_tables.quantize``).

    ``anchors``: the table's anchor record (``latency_tables.anchors``, whole subnets measured when
    it was profiled). They are re-measured between the subnets like the probes; ``anchor_speed``
    (now / then), ``anchor_speed_se``, ``anchor_moved`` and ``anchored_*`` figures (predictions
    scaled by the anchors' speed) say how far the host's whole-graph speed moved since profiling,
    and ``normalise`` scales by the anchors rather than the probe units when the table has them.
    """
    from tracking.space import sample_many

    if samples < 2:
        raise ValueError("validate needs at least 2 samples")
    archs = sample_many(samples, seed, predictor.space)
    pred = _predictions(predictor, archs, tail_predictors)  # raises MissingUnitsError before any work
    with tempfile.TemporaryDirectory(prefix="lutnas-validate-") as tmp:
        run = _measure_graphs(predictor, backend, archs, Path(workdir or tmp), protocol, repeats, noise_runs, seed,
                              progress, probes, round_stat, precision, anchors)
    report = _validation_report(predictor, archs, pred, run, anchors, normalise)
    report.update({"seed": seed, "repeats": repeats, "round_stat": round_stat, "runtime": backend.config(),
                   "archs": [a.to_string() for a in archs], "flops": [int(f) for f in pred["flops"]]})
    return report


def _predictions(predictor: Any, archs: list[Architecture], tail_predictors: dict[str, Any] | None) -> dict[str, Any]:
    """What the table says of ``archs``: the prediction, the tails', the raw and plain unit sums, MACs."""
    from tracking.flops import count_flops_params

    return {"predicted": predictor.predict_batch(archs),
            "tails": {k: p.predict_batch(archs) for k, p in (tail_predictors or {}).items()},
            "raw": np.array([predictor.raw_sum(a) for a in archs]),
            "plain": predictor.plain().predict_batch(archs) if predictor.layouts else None,
            "flops": np.array([count_flops_params(a, predictor.space)[0] for a in archs], dtype=float)}


def _measure_graphs(predictor: Any, backend: Backend, archs: list[Architecture], work: Path, protocol: Protocol,
                    repeats: int, noise_runs: int, seed: int, progress: Progress | None, probes: int, round_stat: str,
                    precision: str, anchors: dict[str, Any] | None) -> dict[str, Any]:
    """Export and measure the subnets end to end, with the probe units and anchor subnets
    re-measured between them (the host's speed now), and the noise floor."""
    space, fmt = predictor.space, backend.model_format  # the graphs the backend runs: ONNX, or .tflite
    paths = export_search_graphs(archs, work, space, seed, progress, precision, fmt)
    keys, probe_paths = export_probes(predictor.medians, probes, work / "probes", seed, precision, fmt)
    anchor_list = [Architecture.parse(a, space) for a in (anchors or {}).get("archs", [])]
    anchor_paths = export_search_graphs(anchor_list, work / "anchors", space, seed,
                                        precision=precision, fmt=fmt) if anchor_list else []
    tails: dict[str, np.ndarray] = {}
    measured, gauges, retest = measure_with_probes(backend, paths, [*probe_paths, *anchor_paths], protocol,
                                                   repeats, seed=seed, progress=progress, round_stat=round_stat,
                                                   tails=tails)
    noise = noise_floor(backend, paths[0], protocol, noise_runs, seed) if noise_runs > 1 else {}
    return {"measured": measured, "tails": tails, "retest": retest, "noise": noise, "probe_keys": keys,
            "probe_now": gauges[:len(probe_paths)], "anchors_now": gauges[len(probe_paths):],
            "anchored": bool(anchor_list)}


def _validation_report(predictor: Any, archs: list[Architecture], pred: dict[str, Any], run: dict[str, Any],
                       anchors: dict[str, Any] | None, normalise: bool) -> dict[str, Any]:
    """Agreement of the table with the measured subnets, as profiled and scaled by the host's speed."""
    from latency_tables.layout import layout_summary

    predicted, measured, keys = pred["predicted"], run["measured"], run["probe_keys"]
    # Reference-unit normalisation (opt-in): the probes say how much slower the host runs now than
    # when it was profiled; with ``normalise``, predictions are compared at that speed when the
    # probes agree on it.
    measured_speed, speed_se, moved = drift_scale(run["probe_now"], np.array([predictor.medians[k] for k in keys]))
    anchor_fig = _anchor_figures(anchors, run["anchors_now"], predicted, measured) if run["anchored"] else {}
    if anchor_fig:  # whole graphs gauge whole graphs; lone units between them do not (latency_tables.anchors)
        moved, gauge = bool(anchor_fig["anchor_moved"]), float(anchor_fig["anchor_speed"])
    else:
        gauge = measured_speed
    moved = moved and normalise
    speed = gauge if moved else 1.0
    report = fidelity_report(predicted * speed, measured, pred["flops"],
                             pred["raw"] * speed if predictor.calibration else None)
    report["predicted_ms"] = [float(p) for p in predicted]  # the table's own figures
    report["normalised"] = moved
    report.update(run["noise"])
    if pred["plain"] is not None:
        report.update({f"plain_{k}": v for k, v in agreement(pred["plain"] * speed, measured).items()})
    report.update({f"table_{k}": v for k, v in agreement(predicted, measured).items()})
    report["layout"] = layout_summary(predictor.layouts)
    report["stats"] = {"p50": agreement(predicted * speed, measured)}
    for k, pred_k in pred["tails"].items():
        report["stats"][k] = agreement(pred_k * speed, run["tails"][k])
        report[f"measured_{k}_ms"] = [float(v) for v in run["tails"][k]]
        report[f"predicted_{k}_ms"] = [float(v) for v in pred_k]
    report["by_class"] = class_errors(archs, predicted * speed, measured)
    report.update({f"drift_{k}": v for k, v in agreement(predicted * measured_speed, measured).items()})
    report.update(anchor_fig)
    report["host_speed"] = measured_speed
    report["host_speed_se"] = None if np.isnan(speed_se) else speed_se
    report["retest_cv"] = None if np.isnan(run["retest"]) else run["retest"]
    report["probes"] = {k: {"table_ms": predictor.medians[k], "now_ms": float(v)}
                        for k, v in zip(keys, run["probe_now"], strict=True)}
    return report


def _anchor_figures(anchors: dict[str, Any] | None, now_ms: np.ndarray, predicted: np.ndarray,
                    measured: np.ndarray) -> dict[str, Any]:
    """The anchors' speed now / at profiling and the predictions' agreement scaled by it."""
    import datetime as dt

    from latency_tables.anchors import anchor_speed

    then = np.asarray((anchors or {}).get("measured_ms", []), float)
    if not len(then) or len(then) != len(now_ms):
        return {}
    speed, se, moved = anchor_speed(now_ms, then)
    out: dict[str, Any] = {"anchor_speed": speed, "anchor_speed_se": None if np.isnan(se) else se,
                           "anchor_moved": moved,
                           "anchors": [{"arch": a, "profiled_ms": float(t), "now_ms": float(n)}
                                       for a, t, n in zip(anchors["archs"], then, now_ms, strict=True)]}
    at = anchors.get("measured_at")
    if at:
        out["anchors_age_s"] = (dt.datetime.now(dt.UTC) - dt.datetime.fromisoformat(at)).total_seconds()
    out.update({f"anchored_{k}": v for k, v in agreement(predicted * speed, measured).items()})
    return out
