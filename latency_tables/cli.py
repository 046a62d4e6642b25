"""``lutnas profile`` (measure this device's LUT) and ``lutnas latency ...`` (predict, validate,
calibrate, import, export, tables).

TABLE arguments are a SQLite file path or a database URL; a database may hold several tables
(one per hardware target and runtime configuration): name one as ``TABLE#NAME`` when needed, as
``search run --table`` does (``--name NAME`` still works).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from tracking.cli import SpaceOpt, space_option
from tracking.progress import progress_bar

profile_app = typer.Typer(add_completion=False, help="Measure this device's latency table locally.")
latency_app = typer.Typer(add_completion=False, no_args_is_help=True,
                          help="Latency tables: predict, validate, calibrate, import, export.")



def _check_precision(precision: str) -> None:
    """Units are measured in fp32 or int8 (static QDQ, latency_tables/quantize.py)."""
    if precision not in ("fp32", "int8"):
        raise typer.BadParameter("precision must be fp32 or int8", param_hint="--precision")

def _space(name: str) -> Any:
    return space_option(name)


def _table_spec(spec: str, name: str | None, option: str = "--table") -> tuple[str, str | None]:
    """``PATH_OR_URL[#NAME]`` as ``search run --table`` reads it; ``--name`` may name the table instead."""
    from latency_tables.store import split_table_spec

    try:
        location, spec_name = split_table_spec(spec)
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint=option) from None
    if spec_name and name and spec_name != name:
        raise typer.BadParameter(f"{spec!r} names table {spec_name!r} and --name {name!r}: give one",
                                 param_hint="--name")
    return location, spec_name or name


def _backend_from_runtime(runtime: dict[str, Any]) -> Any:
    from profilers.backends import get_backend

    cfg = {k: runtime[k] for k in ("provider", "threads", "graph_optimization", "precision") if k in runtime}
    if runtime.get("backend") == "command":  # the device's tool, as the table was profiled with it
        cfg.update({k: runtime[k] for k in ("command", "pattern", "time_unit", "runs", "warmup", "model_format")
                    if k in runtime})
    if runtime.get("backend") == "litert" and "delegate_library" in runtime:  # provider: the delegate
        cfg["delegate_library"] = runtime["delegate_library"]  # by name: the loader searches the library path
    if runtime.get("backend") == "torch":
        raise ValueError("end-to-end validation of torch tables is not supported; use an onnxruntime table")
    return get_backend(runtime.get("backend", "onnxruntime"), **cfg)


def _protocol(min_time: float, max_time: float, clock: str = "wall", flush_bytes: int = 0,
              warm_inputs: bool = False) -> Any:
    from profilers.measure import Protocol

    if clock not in ("wall", "cpu"):
        raise typer.BadParameter("clock must be wall or cpu", param_hint="--clock")
    if min_time < 0 or max_time <= 0:
        raise typer.BadParameter("times must be positive", param_hint="--min-time/--max-time")
    return Protocol(min_time_s=min(min_time, max_time), max_time_s=max_time, clock=clock,
                    flush_bytes=flush_bytes, warm_inputs=warm_inputs)


def _table_protocol(runtime: dict[str, Any], min_time: float, max_time: float) -> Any:
    """The protocol a table was measured with (end-to-end runs must use the same)."""
    # Tables from before ``warm_inputs`` existed were measured with cold inputs.
    return _protocol(min_time, max_time, runtime.get("clock", "wall"), int(runtime.get("flush_bytes", 0)),
                     bool(runtime.get("warm_inputs", False)))


def _flush_bytes(text: str) -> int:
    from profilers.measure import auto_flush_bytes

    if text == "auto":
        return auto_flush_bytes()
    if text in ("none", "0"):
        return 0
    if not text.isdigit():
        raise typer.BadParameter("use auto, none or a size in KiB", param_hint="--flush")
    return int(text) * 1024


FLUSH_HELP = ("Bytes read before each timed run to evict private caches, as inside a whole network: "
              "auto (4 x L2), none, or KiB.")


ROUND_STAT_HELP = ("How rounds combine: min (the least disturbed round: other load only slows runs down) "
                   "or median.")


def _round_stat(text: str) -> str:
    from profilers.measure import check_round_stat

    try:
        return check_round_stat(text)
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--round-stat") from None


def _table_rounds(runtime: dict[str, Any], repeats: int | None, round_stat: str | None) -> tuple[int, str]:
    """End-to-end rounds and their statistic: as given, else as the table was profiled (tables
    from before rounds were recorded: one round, median)."""
    return (repeats or int(runtime.get("rounds", 1)),
            _round_stat(round_stat) if round_stat else str(runtime.get("round_stat", "median")))


CLOCK_HELP = ("wall: latency as seen (default); cpu: process CPU time, robust to other processes on a "
              "shared machine (1 thread only)")


# Options several commands share (each gives its own default): profile and transfer run a backend,
# validate, calibrate and transfer measure subnets with a table's protocol.
ThreadsOpt = Annotated[int, typer.Option("--threads", min=1, help="Intra-op threads.")]
ProviderOpt = Annotated[str, typer.Option("--provider", help="onnxruntime execution provider.")]
GraphOptOpt = Annotated[str, typer.Option(
    "--graph-opt", help="Graph optimisation: disable|basic|extended|all.")]
TableOpt = Annotated[str, typer.Option("--table")]
NameOpt = Annotated[str | None, typer.Option("--name")]
TableRepeatsOpt = Annotated[int | None, typer.Option(
    "--repeats", min=1, help="Rounds over the subnets (default: the table's profiling rounds).")]
TableRoundStatOpt = Annotated[str | None, typer.Option(
    "--round-stat", help=ROUND_STAT_HELP + " Default: the table's.")]
MinTimeOpt = Annotated[float, typer.Option("--min-time")]
MaxTimeOpt = Annotated[float, typer.Option("--max-time")]
JsonOpt = Annotated[bool, typer.Option("--json")]
QuietOpt = Annotated[bool, typer.Option("--quiet")]

# lutnas profile's own
ProfileOutOpt = Annotated[str, typer.Option(
    "--out", help="Table database: a SQLite file path or a database URL (optionally #NAME, as --name).")]
ProfileBackendOpt = Annotated[str, typer.Option(
    "--backend", help="Measurement backend: onnxruntime, litert (.tflite units, LiteRT interpreter; the "
    "litert extra), or command (a device's own tool, run by --command).")]
DelegateOpt = Annotated[str, typer.Option(
    "--delegate", help="--backend litert: xnnpack (CPU), none (builtin kernels), gpu or external (a library "
    "given by --delegate-library).")]
DelegateLibraryOpt = Annotated[str | None, typer.Option(
    "--delegate-library", help="--backend litert: the gpu or external delegate's shared library.")]
ModelFormatOpt = Annotated[str, typer.Option(
    "--model-format",
    help="--backend command: what the command runs, onnx or tflite (LiteRT's benchmark_model).")]
ProfilePrecisionOpt = Annotated[str, typer.Option(
    "--precision", help="fp32, or int8: units quantized with onnxruntime's static QDQ quantization "
    "(calibrated on synthetic crops).")]
CommandOpt = Annotated[str | None, typer.Option(
    "--command", help="--backend command: the command line that times one model, with {model}, {runs}, "
    "{warmup}, {threads} (no shell).")]
PatternOpt = Annotated[str | None, typer.Option(
    "--pattern", help="--backend command: regex with one group matching each run's time in the command's "
    "output (default: ort_runner's lines; benchmark_model: LiteRT benchmark_model's summary, with "
    "--time-unit us).")]
TimeUnitOpt = Annotated[str, typer.Option(
    "--time-unit", help="--backend command: unit of the times: s, ms, us, ns.")]
CommandRunsOpt = Annotated[int, typer.Option(
    "--command-runs", min=1, help="--backend command: {runs} per model.")]
DeviceNameOpt = Annotated[str | None, typer.Option(
    "--device-name",
    help="--backend command: device/runtime name keying the table (default: the program's name).")]
UnitsOpt = Annotated[list[str], typer.Option(
    "--units", help="'all' (every unit of the space) or architectures (repeatable).")]
ProfileRoundsOpt = Annotated[int, typer.Option(
    "--rounds", min=1, max=20, help="Measure every unit this many times, in a new order each round (robust "
    "to a shared host's slow spells).")]
WarmInputsOpt = Annotated[bool, typer.Option(
    "--warm-inputs/--cold-inputs", help="Read each unit's input back into cache after the flush (as inside "
    "the network); recorded in the table and reused by validate.")]
AnchorsOpt = Annotated[int, typer.Option(
    "--anchors", min=0, max=50, help="Whole subnets measured after the units and kept with the table, so "
    "validate can tell how far the host's speed moved since (0: none; only with --units all).")]
FrameOpt = Annotated[bool, typer.Option(
    "--frame/--no-frame", help="Also time the tracker's per-frame crop, resize and post-processing on this "
    "machine (frame_ms = latency + that; only with --units all).")]


@profile_app.command("profile")
def profile(
    out: ProfileOutOpt,
    name: str | None = typer.Option(None, "--name", help="Table name (default: hardware label + runtime)."),
    backend: ProfileBackendOpt = "onnxruntime",
    provider: ProviderOpt = "CPUExecutionProvider",
    delegate: DelegateOpt = "xnnpack",
    delegate_library: DelegateLibraryOpt = None,
    model_format: ModelFormatOpt = "onnx",
    threads: ThreadsOpt = 1,
    graph_opt: GraphOptOpt = "all",
    precision: ProfilePrecisionOpt = "fp32",
    command: CommandOpt = None,
    pattern: PatternOpt = None,
    time_unit: TimeUnitOpt = "ms",
    command_runs: CommandRunsOpt = 50,
    device: DeviceNameOpt = None,
    units: UnitsOpt = ["all"],  # noqa: B006 (only read, never mutated)
    space: str = SpaceOpt,
    label: str | None = typer.Option(None, "--label", help="Hardware label stored with the table."),
    min_time: float = typer.Option(0.15, "--min-time", help="Minimum seconds of timed runs per unit."),
    max_time: float = typer.Option(0.5, "--max-time", help="Time cap per unit in seconds."),
    rounds: ProfileRoundsOpt = 5,
    round_stat: str = typer.Option("min", "--round-stat", help=ROUND_STAT_HELP),
    seed: int = typer.Option(0, "--seed", help="Seed of unit weights and inputs."),
    clock: str = typer.Option("wall", "--clock", help=CLOCK_HELP),
    flush: str = typer.Option("auto", "--flush", help=FLUSH_HELP),
    warm_inputs: WarmInputsOpt = False,
    anchors: AnchorsOpt = 6,
    frame: FrameOpt = True,
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
) -> None:
    """Measure every unit of the space (or of the given architectures) into TABLE; resumable."""
    from latency_tables.profile import hardware_of_this_machine, profile_units

    sp = _space(space)
    todo = _resolve_units(units, sp)
    be = _profile_backend(backend, threads=threads, precision=precision, provider=provider, graph_opt=graph_opt,
                          delegate=delegate, delegate_library=delegate_library, command=command, pattern=pattern,
                          time_unit=time_unit, command_runs=command_runs, device=device, model_format=model_format)
    store, name = _store_spec(out, "--out", must_exist=False, name=name)
    with progress_bar("profile", not quiet) as progress:
        rep = profile_units(store, be, todo, name, hardware_of_this_machine(label),
                            _protocol(min_time, max_time, clock, _flush_bytes(flush), warm_inputs),
                            seed, progress=progress, rounds=rounds, round_stat=_round_stat(round_stat))
    table = rep.table if units != ["all"] else _table_records(  # whole-table records: anchors, frame cost
        store, rep, be, sp, anchors, frame, min_time, max_time, rounds, round_stat, seed)
    typer.echo(_profile_summary(rep, table))


def _resolve_units(units: list[str], sp: Any) -> list[Any]:
    """``--units``: every unit of the space (``all``), or those of the architectures given."""
    from latency_tables.units import all_units, units_of
    from tracking.space import Architecture

    if units == ["all"]:
        return all_units(sp)
    return [u for text in units for u in units_of(Architecture.parse(text, sp), sp)]


def _profile_summary(rep: Any, table: Any) -> str:
    """``lutnas profile``'s closing line: what was measured, how long it took, the whole-table records."""
    return (f"table {rep.table.name!r}: measured {len(rep.measured)} unit(s), skipped {len(rep.skipped)} "
            f"already present; export {rep.export_s:.1f} s, measurement {rep.measure_s:.1f} s; "
            f"per-run overhead {rep.table.overhead_ms:.4f} ms"
            + (f"; {len(table.runtime['anchors']['archs'])} anchor subnets" if "anchors" in table.runtime
               else "") + _anchor_scale_note(table.calibration)
            + (_frame_note(table.runtime["frame"]) if "frame" in table.runtime else ""))


def _anchor_scale_note(calibration: dict[str, Any] | None) -> str:
    """How the anchors calibrated the table (``latency_tables.anchors.anchor_calibration``): the scale
    whole graphs ran at against the unit sums; a user's own calibration is named as kept."""
    if not calibration:
        return ""
    if calibration.get("source") != "anchors":
        return "; your calibration kept"
    scale = float(calibration["coef"]["raw_ms"])
    return f"; anchor scale {scale:.3f} (whole graphs ran {abs(scale - 1):.1%} {'slower' if scale >= 1 else 'faster'} than their units' sum)"


def _profile_backend(backend: str, *, threads: int, precision: str, provider: str, graph_opt: str, delegate: str,
                     delegate_library: str | None, command: str | None, pattern: str | None, time_unit: str,
                     command_runs: int, device: str | None, model_format: str) -> Any:
    """The measurement backend ``lutnas profile --backend`` names, with the options that apply to it."""
    _check_precision(precision)
    from profilers.backends import get_backend

    if backend == "onnxruntime":
        return get_backend(backend, provider=provider, threads=threads, graph_optimization=graph_opt,
                           precision=precision)
    if backend == "litert":
        return get_backend("litert", delegate=delegate, delegate_library=delegate_library, threads=threads,
                           precision=precision)
    if backend == "command":
        if not command:
            raise typer.BadParameter("--backend command needs --command", param_hint="--command")
        from profilers.backends import BENCHMARK_MODEL_PATTERN, DEFAULT_PATTERN

        pattern = BENCHMARK_MODEL_PATTERN if pattern == "benchmark_model" else pattern
        return get_backend("command", command=command, pattern=pattern or DEFAULT_PATTERN, time_unit=time_unit,
                           runs=command_runs, threads=threads, provider=device, precision=precision,
                           model_format=model_format)
    raise typer.BadParameter("use onnxruntime, litert or command", param_hint="--backend")


def _table_records(store: Any, rep: Any, be: Any, sp: Any, anchors: int, frame: bool, min_time: float,
                   max_time: float, rounds: int, round_stat: str, seed: int) -> Any:
    """Measure the anchor subnets and the tracker's per-frame cost when asked and missing (or the
    units were just (re)measured), with the protocol the table was profiled with; returns the table with
    them."""
    table, measured = rep.table, bool(rep.measured)
    protocol, round_stat = _table_protocol(table.runtime, min_time, max_time), _round_stat(round_stat)
    if anchors and (measured or "anchors" not in table.runtime):
        from latency_tables.anchors import measure_table_anchors

        table = measure_table_anchors(store, table, be, protocol, sp, anchors, rounds, round_stat, seed)
    if frame and (measured or "frame" not in table.runtime):
        from latency_tables.frame import measure_table_frame

        table = measure_table_frame(store, table, sp, be, protocol, rounds, round_stat, seed)
    return table


def _frame_note(rec: dict[str, Any]) -> str:
    loop = f", {rec['frame_overhead_ms']:.2f} ms per frame in the tracking loop" if "frame_overhead_ms" in rec else ""
    return f"; pre/post-processing {rec['prepost_ms']:.2f} ms alone{loop}"


@latency_app.command("predict")
def predict(
    archs: list[str] = typer.Argument(..., help="Architectures (LightTrack strings or JSON)."),
    table: str = typer.Option(..., "--table", help="Table database (SQLite path or URL), optionally #NAME."),
    name: str | None = typer.Option(None, "--name", help="Table name, if the database holds several."),
    space: str = SpaceOpt,
    raw: bool = typer.Option(False, "--raw", help="Ignore the table's calibration."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Predicted search-graph latency (ms per frame) of architectures."""
    from latency_tables.predict import LatencyPredictor
    from tracking.space import Architecture

    sp = _space(space)
    parsed = [Architecture.parse(a, sp) for a in archs]
    store, name = _open(table, name)
    info = store.find(name)
    pred = LatencyPredictor.from_store(store, info.name, sp, calibrated=not raw)
    values = [pred.predict(a) for a in parsed]
    if as_json:
        typer.echo(json.dumps({"table": info.name, "calibrated": bool(pred.calibration),
                               "layout_corrected": bool(pred.layouts),
                               "prepost_ms": (pred.frame or {}).get("prepost_ms"),
                               "frame_overhead_ms": (pred.frame or {}).get("frame_overhead_ms"),
                               "predictions": [{"arch": a.to_string(), "latency_ms": v, **pred.frame_figures(v)}
                                               for a, v in zip(parsed, values, strict=True)]}, indent=2))
    else:
        for a, v in zip(parsed, values, strict=True):
            fig = pred.frame_figures(v)
            frame = "" if fig["frame_ms"] is None else f"  frame {fig['frame_ms']:8.3f} ms {fig['fps']:6.1f} fps"
            typer.echo(f"{v:8.3f} ms{frame}  {a.to_string()}")


@latency_app.command("fastest")
def fastest(
    table: TableOpt,
    name: NameOpt = None,
    space: str = SpaceOpt,
    as_json: JsonOpt = False,
) -> None:
    """The minimum predicted latency reachable in the space, and an architecture reaching it."""
    from latency_tables.predict import LatencyPredictor

    store, name = _open(table, name)
    pred = LatencyPredictor.from_store(store, name, _space(space))
    ms, arch = pred.fastest()
    if as_json:
        typer.echo(json.dumps({"latency_ms": ms, "arch": arch.to_string()}))
    else:
        typer.echo(f"{ms:.3f} ms  {arch.to_string()}")


def _open(table: str, name: str | None = None) -> tuple[Any, str | None]:
    """The database of ``--table PATH_OR_URL[#NAME]`` and the table's name (``#NAME`` or ``--name``)."""
    from latency_tables.store import LatencyStore

    location, name = _table_spec(table, name)
    if "://" not in location and not Path(location).is_file():
        raise FileNotFoundError(f"no such table database: {location}")
    return LatencyStore(location, create=False), name


ProbesOpt = Annotated[int, typer.Option(
    "--probes", min=0, help="Table units re-measured between the subnets to measure host drift since "
    "profiling (0: none).")]
NormaliseOpt = Annotated[bool, typer.Option(
    "--normalise/--as-profiled", help="Scale predictions by the probes' host speed when they agree it "
    "changed (default: compare the table as profiled; the scaled figures are reported as drift_* either "
    "way).")]
FramesOpt = Annotated[int, typer.Option(
    "--frames", min=0, max=100, help="Subnets run in the whole tracking loop (crop, network, "
    "post-processing) to check frame_ms, where the table has a pre/post-processing record (0: none).")]


@latency_app.command("validate")
def validate(
    table: TableOpt,
    name: NameOpt = None,
    samples: int = typer.Option(20, "--samples", min=2, help="Random subnets to measure end to end."),
    seed: int = typer.Option(0, "--seed"),
    space: str = SpaceOpt,
    repeats: TableRepeatsOpt = None,
    round_stat: TableRoundStatOpt = None,
    noise_runs: int = typer.Option(5, "--noise-runs", min=0, help="Repeated runs of one model for the noise floor."),
    probes: ProbesOpt = 12,
    normalise: NormaliseOpt = False,
    frames: FramesOpt = 5,
    min_time: MinTimeOpt = 0.15,
    max_time: MaxTimeOpt = 0.5,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Measure sampled subnets end to end with the table's runtime settings and compare (p50, and
    p90/p99 where the table keeps them); frame_ms against the whole tracking loop."""
    from latency_tables.fidelity import validate as run_validate
    from latency_tables.predict import LatencyPredictor

    store, name = _open(table, name)
    info = store.find(name)
    sp = _space(space)
    pred = LatencyPredictor.from_store(store, info.name, sp)
    tails = {k: LatencyPredictor.from_store(store, info.name, sp, stat=k) for k in ("p90", "p99")}
    tails = {k: p for k, p in tails.items() if set(p.medians) == set(pred.medians)}  # p99: tables that kept it
    backend = _backend_from_runtime(info.runtime)
    repeats, stat = _table_rounds(info.runtime, repeats, round_stat)
    with progress_bar("validate", not quiet and not as_json) as progress:
        rep = run_validate(pred, backend, samples, seed,
                           _table_protocol(info.runtime, min_time, max_time), repeats,
                           noise_runs, progress=progress, probes=probes, round_stat=stat, tail_predictors=tails,
                           precision=str(info.runtime.get("precision", "fp32")), normalise=normalise,
                           anchors=info.runtime.get("anchors"))
        if frames and "frame" in info.runtime and info.runtime.get("precision", "fp32") == "fp32" \
                and info.runtime.get("backend", "onnxruntime") == "onnxruntime":
            from latency_tables.frame import validate_frames

            rep["frame"] = validate_frames(pred, info.runtime["frame"], info.runtime, frames, progress=progress)
    rep["table"] = info.name
    if as_json:
        typer.echo(json.dumps(rep, indent=2))
        return
    typer.echo(_format_report(rep))


def _format_report(rep: dict[str, Any]) -> str:
    lines = [f"{rep['samples']} subnets, table {rep.get('table', '?')}",
             f"{'':14}{'within 5%':>10}{'within 10%':>11}{'RMSPE':>8}{'Spearman':>9}"]
    normalised = rep.get("normalised", False)
    rows = [("LUT", "")]
    if "plain_within_5" in rep:
        rows.append(("LUT plain sum", "plain_"))  # no layout correction, no calibration
    if "raw_within_5" in rep:
        rows.append(("LUT (raw sum)", "raw_"))
    if normalised:
        rows.append(("LUT as profiled", "table_"))  # not scaled by the host's speed of the moment
    elif "drift_within_5" in rep:
        rows.append(("LUT x drift", "drift_"))  # what --normalise would have scaled to
    rows.append(("FLOPs (fit)", "flops_"))
    for label, p in rows:
        lines.append(f"{label:14}{rep[p + 'within_5']:>10.1%}{rep[p + 'within_10']:>11.1%}"
                     f"{rep[p + 'rmspe']:>8.1%}{rep[p + 'spearman']:>9.3f}")
    for k, a in rep.get("stats", {}).items():
        if k != "p50":
            lines.append(f"{'LUT ' + k:14}{a['within_5']:>10.1%}{a['within_10']:>11.1%}{a['rmspe']:>8.1%}"
                         f"{a['spearman']:>9.3f}  (median + root sum of squares of unit spreads vs the subnets' measured {k})")
    if "noise_cv" in rep:
        lines.append(f"noise floor: run-to-run CV {rep['noise_cv']:.1%} (range {rep['noise_range']:.1%})")
    if rep.get("retest_cv") is not None:
        lines.append(f"retest noise: the probe units' CV over the run {rep['retest_cv']:.1%} (what ground truth "
                     f"itself moves on this host; {rep['repeats']} round(s) per subnet, {rep['round_stat']})")
    if "host_speed" in rep:
        se = f" (se {rep['host_speed_se']:.3f})" if rep.get("host_speed_se") is not None else ""
        lines.append(f"host drift: the table's probe units ran at {rep['host_speed']:.3f}x their profiled time{se}; "
                     + ("the probes agree, so LUT rows compare the predictions scaled by it (LUT as profiled: "
                        "unscaled)" if normalised else "LUT rows compare the table as profiled (LUT x drift: scaled)"))
    if "anchor_speed" in rep:
        age = f" {rep['anchors_age_s'] / 60:.0f} min after profiling" if "anchors_age_s" in rep else ""
        lines.append(f"anchors: the table's {len(rep['anchors'])} anchor subnets ran at {rep['anchor_speed']:.3f}x "
                     f"their profiled time{age}: " + ("the host's speed moved; LUT x anchors (within 5% "
                     f"{rep['anchored_within_5']:.1%}, within 10% {rep['anchored_within_10']:.1%}) is the table at "
                     "today's speed (--normalise: the headline)" if rep["anchor_moved"] else
                     "no drift beyond the anchors' noise"))
    if "frame" in rep:
        f = rep["frame"]
        extra = f["prepost_ms"] if f.get("frame_overhead_ms") is None else f["frame_overhead_ms"]
        lines.append(f"frame_ms: {f['n']} subnets in the whole tracking loop (prediction + {extra:.2f} ms per "
                     f"frame): within 5% {f['within_5']:.1%}, within 10% {f['within_10']:.1%}, mean error "
                     f"{f['mean_error']:+.1%}; the network inside the loop against the table {f['network_mean_error']:+.1%}, "
                     f"the tracker's own work {f['prepost_in_loop_ms']:.2f} ms")
    lines += _class_lines(rep.get("by_class", {}))
    return "\n".join(lines)


def _class_lines(by_class: dict[str, Any]) -> list[str]:
    """One line per class kind: each class's mean error and share within 5% (LUT row)."""
    names = {"out_stage": "output stage", "cls_width": "cls width", "reg_width": "reg width",
             "cls_layers": "cls layers", "reg_layers": "reg layers"}
    lines = ["by class (mean error, within 5%, n):"] if by_class else []
    for kind, classes in by_class.items():
        cells = [f"{v}: {c['mean_error']:+.1%} {c['within_5']:.0%} n={c['n']}" for v, c in classes.items()]
        lines.append(f"  {names.get(kind, kind):<13}" + "; ".join(cells))
    return lines


@latency_app.command("calibrate")
def calibrate(
    table: TableOpt,
    name: NameOpt = None,
    samples: int = typer.Option(10, "--samples", min=2),
    seed: int = typer.Option(1000, "--seed", help="Seed of the calibration subnets (use another for validate)."),
    space: str = SpaceOpt,
    method: str = typer.Option("scale", "--method", help="scale (robust ratio), linear (Huber) or ols."),
    features: list[str] = typer.Option(["raw_ms"], "--feature",
                                       help="linear/ols: raw_ms, n_blocks, n_head_layers (repeatable)."),
    repeats: TableRepeatsOpt = None,
    round_stat: TableRoundStatOpt = None,
    min_time: MinTimeOpt = 0.15,
    max_time: MaxTimeOpt = 0.5,
    clear: bool = typer.Option(False, "--clear", help="Remove the table's calibration instead."),
    quiet: QuietOpt = False,
) -> None:
    """Fit a linear correction on measured subnets and store it with the table."""
    import tempfile

    from latency_tables.calibrate import fit_calibration
    from latency_tables.fidelity import export_search_graphs, measure_models
    from latency_tables.predict import LatencyPredictor
    from tracking.space import sample_many

    store, name = _open(table, name)
    info = store.find(name)
    if clear:
        store.update(info.id, calibration=None)
        typer.echo(f"table {info.name!r}: calibration removed")
        return
    sp = _space(space)
    pred = LatencyPredictor.from_store(store, info.name, sp, calibrated=False)
    archs = sample_many(samples, seed, sp)
    pred.predict_batch(archs)  # missing units fail before any measurement
    backend = _backend_from_runtime(info.runtime)
    with tempfile.TemporaryDirectory() as tmp, progress_bar("calibrate", not quiet) as progress:
        paths = export_search_graphs(archs, tmp, sp, seed, progress, str(info.runtime.get("precision", "fp32")),
                                     backend.model_format)
        repeats, stat = _table_rounds(info.runtime, repeats, round_stat)
        measured = measure_models(backend, paths, _table_protocol(info.runtime, min_time, max_time),
                                  repeats, seed, progress, stat)
    calib = fit_calibration(pred, archs, measured, features, method)
    store.update(info.id, calibration=calib)
    b, a, cv = calib["before"], calib["after"], calib["after_cv"]
    typer.echo(f"table {info.name!r}: calibrated on {samples} subnets; within 10%: {b['within_10']:.0%} -> "
               f"{a['within_10']:.0%} (leave-one-out {cv['within_10']:.0%}); RMSPE {b['rmspe']:.1%} -> "
               f"{a['rmspe']:.1%} (leave-one-out {cv['rmspe']:.1%})")


@latency_app.command("export")
def export(
    table: TableOpt,
    out: Path = typer.Option(..., "--out", help="FILE.csv or FILE.parquet"),
    name: NameOpt = None,
) -> None:
    """Write a table to CSV or Parquet."""
    store, name = _open(table, name)
    info = store.find(name)
    path = store.export_file(info.id, out)
    typer.echo(f"wrote {len(store.keys(info.id))} entries of {info.name!r} to {path}")


@latency_app.command("import")
def import_(
    file: Path = typer.Argument(..., help="FILE.csv or FILE.parquet written by 'lutnas latency export'."),
    table: str = typer.Option(..., "--table", help="Target database (created if absent)."),
    name: str | None = typer.Option(None, "--name", help="Table name (default: the file's)."),
    replace: bool = typer.Option(False, "--replace", help="Drop the table's existing entries first."),
) -> None:
    """Read a CSV or Parquet table file into a database."""
    from latency_tables.store import LatencyStore

    location, name = _table_spec(table, name)
    store = LatencyStore(location)
    info = store.import_file(file, name, replace)
    typer.echo(f"imported {len(store.keys(info.id))} entries into {info.name!r}")


@latency_app.command("tables")
def tables(table: TableOpt, as_json: JsonOpt = False) -> None:
    """List the tables of a database."""
    store, _ = _open(table)
    rows = [{"name": t.name, "entries": len(store.keys(t.id)), "runtime": t.runtime, "hardware": t.hardware,
             "overhead_ms": t.overhead_ms, "calibrated": t.calibration is not None,
             "layouts": len(store.layouts(t.id))} for t in store.tables()]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
    else:
        for r in rows:
            typer.echo(f"{r['name']}: {r['entries']} entries ({r['layouts']} with layout)"
                       f"{' (calibrated)' if r['calibrated'] else ''}")


def _store_spec(spec: str, option: str, must_exist: bool = True,
                name: str | None = None) -> tuple[Any, str | None]:
    """``PATH_OR_URL[#NAME]`` -> (store, name or None); ``name``: a --name given beside it."""
    from latency_tables.store import LatencyStore

    location, tname = _table_spec(spec, name, option)
    if must_exist and "://" not in location and not Path(location).is_file():
        raise FileNotFoundError(f"{option} {location}: no such table database")
    return LatencyStore(location, create=not must_exist), (tname or None)


FromOpt = Annotated[str, typer.Option(
    "--from", help="The known device's full table: SQLite path or URL, optionally #NAME.")]
TransferBackendOpt = Annotated[str, typer.Option(
    "--backend", help="This device's backend: onnxruntime, litert (--provider: its delegate, xnnpack by "
    "default) or torch.")]
TransferRoundsOpt = Annotated[int, typer.Option(
    "--rounds", min=1, max=20, help="Rounds over the subnets (fastest kept); 1 is enough on a quiet device, "
    "more on a shared one (each round costs K subnets again).")]


@latency_app.command("transfer")
def transfer(
    source: FromOpt,
    out: str = typer.Option(..., "--out", help="Database for the new table (created if absent), optionally #NAME."),
    measure_k: int = typer.Option(20, "--measure", min=2, max=1000, help="Whole subnets to measure on this device."),
    backend: TransferBackendOpt = "onnxruntime",
    provider: ProviderOpt = "CPUExecutionProvider",
    threads: ThreadsOpt = 1,
    graph_opt: GraphOptOpt = "all",
    precision: str = typer.Option("fp32", "--precision", help="fp32 or int8 (subnets quantized as for int8 tables)."),
    rounds: TransferRoundsOpt = 1,
    seed: int = typer.Option(2000, "--seed", help="Seed of the sampled subnets."),
    label: str | None = typer.Option(None, "--label", help="Hardware label stored with the new table."),
    space: str = SpaceOpt,
    min_time: MinTimeOpt = 0.15,
    max_time: MaxTimeOpt = 0.5,
    quiet: QuietOpt = False,
) -> None:
    """A table for this device from another device's full table plus --measure whole subnets measured
    here (per-group scale factors; docs/latency.md, "Transfer")."""
    from latency_tables.profile import hardware_of_this_machine
    from latency_tables.transfer import transfer_table

    sp = _space(space)
    src_store, src_name = _store_spec(source, "--from")
    dst_store, dst_name = _store_spec(out, "--out", must_exist=False)
    be = _transfer_backend(backend, provider, threads, graph_opt, precision)
    src_info = src_store.find(src_name)
    protocol = _table_protocol(src_info.runtime, min_time, max_time)  # the source's protocol: comparable
    with progress_bar("transfer", not quiet) as progress:
        rep = transfer_table(src_store, src_info.name, dst_store, dst_name, be, protocol, measure_k, seed, rounds,
                             hardware=hardware_of_this_machine(label), space=sp, progress=progress)
    f = rep.fit
    scales = ", ".join(f"{g} {s:.3f}" for g, s in f.scales.items())
    typer.echo(f"table {rep.table.name!r} from {src_info.name!r}: {f.n} subnets measured in {rep.measure_s:.1f} s; "
               f"scales {scales} (common {f.common_scale:.3f}, ridge {f.ridge:g}); leave-one-out within 10% "
               f"{f.loo['within_10']:.0%}, RMSPE {f.loo['rmspe']:.1%}, Spearman {f.loo['spearman']:.3f}")


def _transfer_backend(backend: str, provider: str, threads: int, graph_opt: str, precision: str) -> Any:
    """This device's backend for ``latency transfer`` (litert: --provider names the delegate)."""
    _check_precision(precision)
    from profilers.backends import get_backend

    if backend == "onnxruntime":
        return get_backend(backend, provider=provider, threads=threads, graph_optimization=graph_opt,
                           precision=precision)
    if backend == "litert":
        return get_backend("litert", delegate="xnnpack" if provider == "CPUExecutionProvider" else provider,
                           threads=threads, precision=precision)
    if backend == "torch":
        if precision != "fp32":
            raise typer.BadParameter("the torch backend runs fp32 only", param_hint="--precision")
        return get_backend("torch", threads=threads)
    raise typer.BadParameter("use onnxruntime, litert or torch", param_hint="--backend")
