"""``lutnas search run``: a local search over a trained supernet with measured latency tables.

Heavy imports (torch, via the supernet) happen inside the command, after every cheap check, so
bad input fails in well under a second with one line (the assembler turns ValueError/OSError
into ``error: ...`` and exit 2).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from tracking.cli import CodeSpace, SpaceOpt
from tracking.cli import space_name as space_name_of

search_app = typer.Typer(help="Run a search locally.", no_args_is_help=True)


def parse_table_spec(spec: str) -> tuple[str, str | None]:
    """``PATH_OR_URL`` or ``PATH_OR_URL#TABLE_NAME`` (``latency_tables.store.split_table_spec``)."""
    from latency_tables.store import split_table_spec

    try:
        return split_table_spec(spec)
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--table") from None


LATENCY_STATS = ("p50", "p90")


def load_tables(specs: list[str], space: Any, stat: str = "p50") -> dict[str, Any]:
    """``{table name: LatencyPredictor}`` for every ``--table``; ``stat``: the unit statistic the
    predictions sum (``p50``: median latency; ``p90``: the tail, for budgets that must hold 9
    frames in 10)."""
    if stat not in LATENCY_STATS:
        raise typer.BadParameter(f"must be one of {', '.join(LATENCY_STATS)}, got {stat!r}",
                                 param_hint="--latency-stat")
    from latency_tables.predict import LatencyPredictor
    from latency_tables.store import LatencyStore

    out: dict[str, Any] = {}
    for spec in specs:
        location, name = parse_table_spec(spec)
        if "://" not in location and not Path(location).is_file():
            raise FileNotFoundError(f"--table {location!r}: no such file (make one with `lutnas profile`)")
        store = LatencyStore(location, create=False)
        try:
            tables = store.tables()
        except Exception as e:  # not a database, or not one of ours
            raise ValueError(f"--table {location!r} is not a latency-table database ({type(e).__name__})") from None
        if name is None and len(tables) > 1:
            raise ValueError(f"--table {location!r} holds {len(tables)} tables; name one as "
                             f"{location}#NAME: {', '.join(t.name for t in tables)}")
        info = store.find(name)
        if info.name in out:
            raise ValueError(f"table {info.name!r} given twice")
        out[info.name] = LatencyPredictor.from_store(store, info.name, space, stat=stat)
    return out


def _config(**kwargs: Any) -> Any:
    from pydantic import ValidationError

    from search.config import SearchConfig

    try:
        return SearchConfig(**kwargs)
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "config"
        raise ValueError(f"{where}: {err['msg']}") from None


@search_app.command("run")
def run(
    supernet: list[Path] = typer.Option(..., "--supernet", help="Supernet checkpoint (.pt); repeat for an "
                                        "ensemble (candidates score the mean of the supernets' scores)."),
    data: Path = typer.Option(..., "--data", help="Validation data directory (GOT-10k layout)."),
    table: list[str] = typer.Option(..., "--table", help="Latency table: SQLite file or URL, "
                                    "optionally #NAME; repeat for several targets."),
    out: Path = typer.Option(..., "--out", help="Output directory."),
    budget_ms: float | None = typer.Option(None, "--budget-ms", help="Latency budget (ms): constrained evolution."),
    pareto: bool = typer.Option(False, "--pareto", help="Multi-objective search (NSGA-II): accuracy vs latency."),
    target: str | None = typer.Option(None, "--target", help="Table the budget applies to (default: first)."),
    latency_stat: str = typer.Option("p50", "--latency-stat", help="Latency the search constrains and "
                                      "optimises: p50 (median) or p90 (tail: median + root sum of squares of unit spreads)."),
    max_mflops: float | None = typer.Option(None, "--max-mflops", help="Also cap MACs (millions)."),
    max_mparams: float | None = typer.Option(None, "--max-mparams", help="Also cap parameters (millions)."),
    population: int = typer.Option(48, "--population", help="Population size (4..1000)."),
    generations: int = typer.Option(20, "--generations", help="Generations (1..1000)."),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
    mode: str = typer.Option("pairs", "--mode", help="Validation mode: pairs or sequences."),
    pairs: int = typer.Option(256, "--pairs", min=1, help="Validation pairs per candidate (pairs mode)."),
    bn_batches: int = typer.Option(2, "--bn-batches", min=0, help="BN recalibration batches per candidate."),
    scoring_runtime: str = typer.Option("torch", "--scoring-runtime", help="Sequences mode on: torch or onnx (CPU)."),
    predictor: bool = typer.Option(False, "--predictor", help="Pre-screen children with an accuracy predictor."),
    space_name: str = SpaceOpt,
    code_space: bool = CodeSpace,
    resume: bool = typer.Option(False, "--resume", help="Resume from OUT/state.json."),
    device: str = typer.Option("auto", "--device", help="Scoring device: auto (CUDA when present), cpu, cuda, cuda:N."),
    workers: int = typer.Option(1, "--workers", min=1, help="Scoring workers: 1 scores in this process; N > 1 "
                                "(or any --ray-address) scores on N Ray actors, each loading the supernet once."),
    ray_address: str | None = typer.Option(None, "--ray-address", help="Ray cluster (HOST:PORT of a cluster this "
                                           "machine is a node of, or ray://HOST:10001); default: a local Ray "
                                           "started on demand."),
    threads_per_worker: int = typer.Option(1, "--threads-per-worker", min=1,
                                           help="torch threads per Ray actor on CPU (GPU actors take one GPU each)."),
) -> None:
    """Search the supernet for the best trackers under a latency budget, or their Pareto front."""
    cfg, tables, device = _checked_inputs(supernet, data, table, budget_ms, pareto, target, latency_stat, max_mflops,
                                          max_mparams, population, generations, seed, mode, predictor,
                                          space_name_of(space_name, code_space), device, scoring_runtime)
    state = _resume_state(out / "state.json") if resume else None
    out.mkdir(parents=True, exist_ok=True)
    ray = (workers, ray_address, threads_per_worker) if workers > 1 or ray_address is not None else None
    accuracy, executor = _scorer(cfg, supernet, data, mode, {"n_pairs": pairs, "bn_batches": bn_batches,
                                                             "runtime": scoring_runtime}, device, ray)
    try:
        result = _run_with_progress(cfg, accuracy, tables, state, out / "state.json", executor)
    finally:
        if ray is not None:
            accuracy.close()
    _report_run(result, cfg, tables, out)


def _checked_inputs(supernet: list[Path], data: Path, table: list[str], budget_ms: float | None, pareto: bool,
                    target: str | None, latency_stat: str, max_mflops: float | None, max_mparams: float | None,
                    population: int, generations: int, seed: int, mode: str, predictor: bool, space: str,
                    device: str, scoring_runtime: str = "torch") -> tuple[Any, dict[str, Any], str]:
    """Every cheap check, before torch loads: the config, the files, the tables, feasibility."""
    from search.runner import check_config
    from tracking.devices import check_device

    device = check_device(device)
    if pareto == (budget_ms is not None):
        raise typer.BadParameter("give exactly one of --budget-ms X or --pareto")
    if mode not in ("pairs", "sequences"):
        raise typer.BadParameter(f"--mode must be pairs or sequences, got {mode!r}")
    if scoring_runtime not in ("torch", "onnx"):
        raise typer.BadParameter(f"--scoring-runtime must be torch or onnx, got {scoring_runtime!r}")
    if scoring_runtime == "onnx":
        if device not in ("auto", "cpu"):
            raise typer.BadParameter(f"--scoring-runtime onnx tracks on the CPU; --device {device} needs torch")
        device = "cpu"
    cfg = _config(algorithm="pareto" if pareto else "evolution", budget_ms=budget_ms, target=target,
                  max_mflops=max_mflops, max_mparams=max_mparams, population=population,
                  generations=generations, seed=seed, predictor=predictor, space=space,
                  parents=min(10, population), batch_size=8)
    for path in supernet:
        if not path.is_file():
            raise FileNotFoundError(f"--supernet {str(path)!r}: no such file")
    if len({p.resolve() for p in supernet}) < len(supernet):
        raise typer.BadParameter("--supernet: the same checkpoint given twice")
    if not data.is_dir():
        raise FileNotFoundError(f"--data {str(data)!r}: no such directory")
    tables = load_tables(table, cfg.search_space(), latency_stat)
    if cfg.target is not None and cfg.target not in tables:
        raise ValueError(f"--target {cfg.target!r} is not one of the tables: {', '.join(tables)}")
    check_config(cfg, tables)  # infeasible budget, missing units: before loading the supernet
    return cfg, tables, device


def _resume_state(state_path: Path) -> dict[str, Any]:
    from search.state import loads

    if not state_path.is_file():
        raise FileNotFoundError(f"--resume: no state at {state_path}")
    return loads(state_path.read_text())


def _scorer(cfg: Any, supernet: list[Path], data: Path, mode: str, scoring: dict[str, Any], device: str,
            ray: tuple[int, str | None, int] | None) -> tuple[Any, Any]:
    """The supernet scorer (several supernets: their ensemble) in this process, or a pool of Ray
    actors (``ray``: workers, address, threads per worker) with the executor whose batches are where
    a stop lands. ``scoring``: ValidationScorer settings (n_pairs, bn_batches, runtime)."""
    from search.evaluators import supernet_accuracy

    if ray is not None:
        from tracking.checkpoint import load_supernet

        spaces = {load_supernet(str(p))[0].space for p in supernet}  # the actors load the scorer, not the driver
        if len(spaces) > 1:
            raise ValueError("the ensemble's supernets were trained on different search spaces")
        net_space = spaces.pop()
    else:
        accuracy: Any = supernet_accuracy([str(p) for p in supernet], str(data), mode=mode, device=device,
                                          **scoring)
        net_space = accuracy.scorer.supernet.space
    if len(supernet) > 1:
        typer.echo(f"scoring with an ensemble of {len(supernet)} supernets (the mean of their scores)")
    if not set(cfg.search_space().output_stages) <= set(net_space.output_stages):
        raise ValueError(f"the supernet was trained for output stages {list(net_space.output_stages)}; "
                         f"use --space paper")
    if ray is None:
        return accuracy, None
    from search.executor import InProcessExecutor
    from search.ray_pool import ScorerSpec, open_pool

    workers, address, threads = ray
    spec = ScorerSpec(str(supernet[0]), str(data), mode, scoring, tuple(str(p) for p in supernet[1:]))
    accuracy = open_pool(spec, workers, address, threads=threads, device=device)
    typer.echo(f"scoring on {workers} Ray actor{'s' if workers > 1 else ''} "
               f"({'one GPU' if accuracy.use_gpu else f'{threads} CPU thread(s)'} each)")
    return accuracy, InProcessExecutor(max(cfg.batch_size, 2 * workers))


def _run_with_progress(cfg: Any, accuracy: Any, tables: dict[str, Any], state: dict[str, Any] | None,
                       state_path: Path, executor: Any) -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from search.runner import run_search

    done = int(state["generation"]) if state else 0
    with Progress(TextColumn("[bold]search"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"),
                  TimeElapsedColumn()) as bar:
        task = bar.add_task("starting", total=cfg.generations, completed=done)

        def on_generation(p: dict[str, Any], st: dict[str, Any]) -> None:
            tmp = state_path.with_suffix(".tmp")
            tmp.write_text(json.dumps(st))
            tmp.replace(state_path)  # atomic: a crash never leaves half a state
            bar.update(task, completed=p["generation"] + 1, description=(
                f"evaluated {p['evaluated']}, cache hits {p['cache_hits']}, best {p['best_score']:.4f}, "
                f"front {p['front_size']}"))

        return run_search(cfg, accuracy, tables, state=state, on_generation=on_generation, executor=executor)


def _report_run(result: Any, cfg: Any, tables: dict[str, Any], out: Path) -> None:
    """The ranked files and plot, the front table, the best and LightTrack-Mobile's point."""
    from rich.console import Console

    from search.report import fmt_score, front_table, plot_pareto, reference_gains, write_ranked

    csv_path, json_path = write_ranked(result, out)
    png = plot_pareto(result, out / "pareto.png", cfg.budget_ms, cfg.target or next(iter(tables)))
    best = result.best
    Console().print(front_table(result))
    typer.echo(f"evaluated {result.evaluated} architectures ({result.cache_hits} cache hits); "
               f"front {len(result.front)}, hypervolume {result.hypervolume:.4f}")
    if best is not None:
        lat = ", ".join(f"{t} {v:.3f} ms" + (f", frame {best.frame_ms[t]:.2f} ms = {best.fps[t]:.0f} fps"
                                              if t in best.frame_ms else "") for t, v in best.latency_ms.items())
        typer.echo(f"best: {best.arch} score {fmt_score(best.score, best.score_se)} ({lat})")
    ref = result.reference_arch
    if ref is not None:
        lat = ", ".join(f"{t} {v:.3f} ms" for t, v in ref.latency_ms.items())
        typer.echo(f"LightTrack-Mobile (reference): score {fmt_score(ref.score, ref.score_se)} ({lat})")
        for t, g in reference_gains(result).items():
            gain = "nothing at or below its latency" if g["score_gain"] is None else \
                f"{g['score_gain']:+.4f} score at or below its latency"
            speed = "no architecture as good" if g["speedup"] is None else \
                f"{g['speedup']:.2f}x faster at or above its score"
            typer.echo(f"  vs Mobile on {t}: {gain}; {speed}")
    typer.echo(f"wrote {csv_path}, {json_path}, {png}")


@search_app.command("verify")
def verify(
    out: Path = typer.Argument(..., help="A finished search's output directory (ranked.json)."),
    table: str = typer.Option(..., "--table", help="The target's latency table: SQLite file or URL, optionally "
                              "#NAME; its runtime says how to measure."),
    budget_ms: float | None = typer.Option(None, "--budget-ms", help="Budget to check (default: the search's, "
                                           "from OUT/state.json, when it was on this table)."),
    refit: bool = typer.Option(True, "--refit/--no-refit", help="Refit the table's calibration from the front's "
                               "measurements."),
    repeats: int | None = typer.Option(None, "--repeats", min=1, help="Rounds per architecture (default: the "
                                       "table's profiling rounds)."),
    points: int | None = typer.Option(None, "--points", min=2, help="Measure at most this many front points, "
                                      "spread evenly along the front by predicted latency (default: all)."),
    seed: int = typer.Option(0, "--seed"),
    quiet: bool = typer.Option(False, "--quiet"),
) -> None:
    """Measure the front's architectures end to end on this machine with TABLE's runtime, next to the
    predicted latency; flag budget breaks; refit the table's calibration. Writes OUT/verify.json."""
    from latency_tables.store import LatencyStore
    from latency_tables.verify import verify_archs
    from tracking.progress import progress_bar
    from tracking.space import Architecture, SearchSpace

    front = _front_of(out, points)
    config = _search_config(out)
    space = SearchSpace.named(config.get("space", "paper"))
    location, name = parse_table_spec(table)
    if "://" not in location and not Path(location).is_file():
        raise FileNotFoundError(f"--table {location!r}: no such file")
    store = LatencyStore(location, create=False)
    info = store.find(name)
    targets = list(front[0]["latency_ms"])
    target = info.name if info.name in targets else None
    predicted = [a["latency_ms"][target] for a in front] if target else None
    if budget_ms is None and config.get("budget_ms") is not None and (config.get("target") or targets[0]) == target:
        budget_ms = float(config["budget_ms"])
    archs = [Architecture.parse(a["arch"], space) for a in front]
    with progress_bar("verify", not quiet) as progress:
        rep = verify_archs(store, info.name, archs, predicted, budget_ms, space, refit, repeats, seed, progress)
    rep["predicted_by"] = "search" if target else "table"
    (out / "verify.json").write_text(json.dumps(rep, indent=1))
    _print_verify(rep, len(archs), info.name, budget_ms)
    typer.echo(f"wrote {out / 'verify.json'}")


def _front_of(out: Path, points: int | None) -> list[dict[str, Any]]:
    """The front's architectures from OUT/ranked.json (at most ``points``, spread evenly along the
    front by predicted latency)."""
    ranked = out / "ranked.json"
    if not ranked.is_file():
        raise FileNotFoundError(f"{out}: no ranked.json (the output of `lutnas search run`)")
    try:
        doc = json.loads(ranked.read_text())
        front_ids = set(doc["front"])
        front = [a for a in doc["architectures"] if a["canonical_id"] in front_ids]
    except (ValueError, KeyError, TypeError):
        raise ValueError(f"{ranked}: not a search result") from None
    if not front:
        raise ValueError(f"{ranked}: the front is empty")
    if points is not None and len(front) > points:
        key = next(iter(front[0]["latency_ms"]))
        front.sort(key=lambda a: a["latency_ms"][key])
        front = [front[round(i * (len(front) - 1) / (points - 1))] for i in range(points)]
    return front


def _search_config(out: Path) -> dict[str, Any]:
    """The search's config from OUT/state.json ({} when there is none or it does not parse)."""
    state = out / "state.json"
    if not state.is_file():
        return {}
    try:
        return json.loads(state.read_text()).get("config", {}) or {}
    except ValueError:
        return {}


def _print_verify(rep: dict[str, Any], n: int, table: str, budget_ms: float | None) -> None:
    lines = [f"{'predicted':>10} {'measured':>10} {'error':>7}  architecture"]
    for p in rep["points"]:
        flag = "  OVER BUDGET" if p["over_budget"] else ""
        lines.append(f"{p['predicted_ms']:>8.2f}ms {p['measured_ms']:>8.2f}ms {p['error']:>+7.1%}  {p['arch']}{flag}")
    typer.echo("\n".join(lines))
    a = rep["predicted"]
    if a:
        typer.echo(f"{n} front architectures on {table!r}: within 10% {a['within_10']:.0%}, RMSPE "
                   f"{a['rmspe']:.1%}, mean error {a['mean_error']:+.1%}"
                   + (f"; {rep['broken']} break the {budget_ms:g} ms budget" if budget_ms is not None else ""))
    if rep["refit"]:
        r = rep["refit"]
        typer.echo(f"calibration refit: scale {r['scale']:.3f}; RMSPE {r['before']['rmspe']:.1%} -> "
                   f"{r['after']['rmspe']:.1%} (leave-one-out {r['after_cv']['rmspe']:.1%})")


@search_app.command("compare")
def compare(
    results: Path = typer.Argument(..., help="A finished search's output directory (ranked.json)."),
    supernet: Path = typer.Option(..., "--supernet", help="The supernet the search ranked with (weights to inherit)."),
    data: Path = typer.Option(..., "--data", help="Training data for the retraining (GOT-10k layout)."),
    test_data: Path = typer.Option(..., "--test-data", help="Held-out sequences neither training nor the search saw."),
    reference: str = typer.Option("mobile", "--reference", help="mobile (LightTrack-Mobile), or a LightTrack string."),
    iters: int = typer.Option(..., "--iters", min=1, help="Retraining iterations per architecture and seed."),
    seeds: int = typer.Option(3, "--seeds", min=1, help="Seeds per architecture (0 .. N-1), the same for all."),
    picks: int = typer.Option(3, "--picks", min=1, help="At most this many front points at or below the "
                              "reference's latency, best supernet score first."),
    target: str | None = typer.Option(None, "--target", help="Latency target the picks are chosen on (default: "
                                      "the search's first)."),
    from_scratch: bool = typer.Option(False, "--from-scratch", help="Train every network from a fresh init (the "
                                      "control) instead of from the supernet's weights."),
    max_sequences: int = typer.Option(20, "--sequences", min=1, help="Held-out sequences tracked."),
    max_frames: int = typer.Option(50, "--frames", min=2, help="Frames per held-out sequence."),
    threads: int = typer.Option(0, "--threads", min=0, help="torch threads (0: torch default)."),
    workdir: Path | None = typer.Option(None, "--workdir", help="Where per-seed results are kept (default "
                                        "RESULTS/compare; a rerun skips what is done)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    quiet: bool = typer.Option(False, "--quiet"),
) -> None:
    """Retrain the front's points at or below the reference's latency and the reference itself with the
    same budget and seeds; print held-out AO / SR@0.5 with their spread, side by side. Writes
    RESULTS/compare.json."""
    from search.compare import choose, load_front, report
    from search.compare import compare as run_compare
    from tracking.progress import progress_bar
    from tracking.space import SearchSpace

    _check_compare_inputs(reference, supernet, data, test_data)
    doc = load_front(results)
    ref, chosen, target = choose(doc, reference, target, picks, SearchSpace.code())
    if not chosen:
        raise ValueError(f"no front point at or below the reference's {ref.latency_ms:.3f} ms on {target!r}")
    base = results if results.is_dir() else results.parent
    work = workdir or (base / "compare")
    work.mkdir(parents=True, exist_ok=True)
    with progress_bar("compare", not quiet and not as_json) as progress:
        rows = run_compare([ref, *chosen], seeds, progress, supernet=None if from_scratch else supernet, data=data,
                           test_data=test_data, iters=iters, workdir=work, max_sequences=max_sequences,
                           max_frames=max_frames, threads=threads or None)
    rep = report(rows, target, {"iters": iters, "seeds": seeds, "inherited": not from_scratch,
                                "sequences": max_sequences, "frames": max_frames, "reference": reference})
    (base / "compare.json").write_text(json.dumps(rep, indent=1))
    if as_json:
        typer.echo(json.dumps(rep))
        return
    _print_compare(rep)


def _check_compare_inputs(reference: str, supernet: Path, data: Path, test_data: Path) -> None:
    if reference != "mobile" and not reference.startswith("back_"):
        raise typer.BadParameter(f"must be mobile or a LightTrack string, got {reference!r}", param_hint="--reference")
    for p, what in ((supernet, "supernet checkpoint"), (data, "data folder"), (test_data, "test data folder")):
        if not p.exists():
            raise FileNotFoundError(f"{what} {p} does not exist")


def _print_compare(rep: dict[str, Any]) -> None:
    from rich.console import Console

    from search.compare import table

    console = Console(width=max(100, Console().width))
    console.print(table(rep))
    for v in rep["verdicts"]:
        se = "" if v["ao_diff_se"] is None else f" ± {v['ao_diff_se']:.3f}"
        console.print(f"{v['name']}: AO {v['ao_diff']:+.3f}{se} against the reference: {v['note']}")
