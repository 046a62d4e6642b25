"""``lutnas demo``: the whole pipeline on this machine with the embedded SQLite default.

Synthetic tracking data -> a small one-shot supernet -> this CPU's latency lookup table ->
a Pareto search (accuracy vs measured latency) -> the ranked front and its plot.

Every step keeps its output in the work folder and is skipped when a re-run finds it complete,
so a second run takes seconds and an interrupted one resumes (training from its last checkpoint,
profiling from the last measured unit, the search from its last generation).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import typer

demo_app = typer.Typer(add_completion=False, help="The whole pipeline on this machine, end to end.")


STEPS = 6


def _step(console: Any, n: int, title: str) -> float:
    console.rule(f"[bold]{n}/{STEPS} {title}")
    return time.perf_counter()


def _done(console: Any, t0: float, what: str) -> None:
    console.print(f"[green]done[/green] {what} ({time.perf_counter() - t0:.1f} s)")


@dataclass
class _Sizes:
    """How big each step is: the options as given, or --quick's smallest where one was left at
    its default (explicit options still win)."""

    sequences: int
    frames: int
    iterations: int | None
    batch: int | None
    val_sequences: int
    val_frames: int
    population: int
    generations: int
    retrain_iters: int
    retrain_seeds: int
    scoring: dict[str, int] = field(default_factory=lambda: {"n_pairs": 64, "bn_batches": 1, "bn_batch_size": 16})
    protocol_kw: dict[str, Any] = field(default_factory=dict)
    held_out_bn: tuple[int, int] = (2, 32)

    def quick(self) -> _Sizes:
        """Every size at its smallest; the whole table is still measured, briefly, because every
        candidate's latency needs every unit."""
        def small(value: Any, default: Any, tiny: Any) -> Any:
            return tiny if value == default else value

        return _Sizes(small(self.sequences, 60, 3), small(self.frames, 100, 10), self.iterations or 2, self.batch or 2,
                      small(self.val_sequences, 10, 2), small(self.val_frames, 100, 8), small(self.population, 16, 4),
                      small(self.generations, 5, 1), small(self.retrain_iters, 40, 1), small(self.retrain_seeds, 2, 1),
                      {"n_pairs": 4, "bn_batches": 0, "bn_batch_size": 4},
                      {"warmup_runs": 1, "warmup_s": 0.0, "min_runs": 3, "min_time_s": 0.002, "max_time_s": 0.01},
                      (0, 4))


@demo_app.command("demo")
def demo(
    workdir: Path = typer.Option(Path("lutnas-demo"), "--workdir", help="Where everything is kept."),
    sequences: int = typer.Option(60, "--sequences", min=2, help="Synthetic training sequences."),
    frames: int = typer.Option(100, "--frames", min=4, help="Frames per synthetic sequence."),
    iterations: int | None = typer.Option(None, "--iterations", min=1,
                                          help="Supernet training iterations (default 450, under 10 min on 2 cores; `lutnas supernet train` "
                                               "trains the ranking recipe's 1800)."),
    batch: int | None = typer.Option(None, "--batch", min=1, help="Training batch size (default: the recipe's)."),
    val_sequences: int = typer.Option(10, "--val-sequences", min=1,
                                      help="Test sequences (a seed used by neither training nor the search) tracked "
                                           "for the summary."),
    val_frames: int = typer.Option(100, "--val-frames", min=0, help="Frames of each test sequence tracked (0: skip)."),
    population: int = typer.Option(16, "--population", min=4, help="Search population."),
    generations: int = typer.Option(5, "--generations", min=1, help="Search generations."),
    threads: int = typer.Option(2, "--threads", min=1, help="Torch threads for training and scoring."),
    retrain_iters: int = typer.Option(40, "--retrain-iters", min=0,
                                      help="Iterations retraining the pick and Mobile alone for the last table "
                                           "(0: skip it)."),
    retrain_seeds: int = typer.Option(2, "--retrain-seeds", min=0, help="Seeds of that retraining."),
    seed: int = typer.Option(0, "--seed", help="Seed of every random step."),
    quick: bool = typer.Option(False, "--quick", help="A tiny run of every step (a minute or so; numbers "
                               "meaningless): checks that the pipeline works here. Sizes given explicitly win."),
) -> None:
    """Synthetic data, a small supernet, this CPU's latency table, a Pareto search, its front."""
    import torch
    from rich.console import Console

    console = Console()
    z = _Sizes(sequences, frames, iterations, batch, val_sequences, val_frames, population, generations,
               retrain_iters, retrain_seeds)
    z = z.quick() if quick else z
    torch.set_num_threads(threads)
    workdir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    train_dir, val_dir, test_dir = _data_step(console, workdir, z, seed)
    ckpt = _supernet_step(console, workdir, train_dir, z, seed, threads)
    table = _table_step(console, workdir, z, seed)
    result, out = _search_step(console, workdir, ckpt, train_dir, val_dir, table, z, seed, quick)
    summary = _front_step(console, result, out, seed)
    if z.val_frames > 0 and result.front:
        summary["held_out"] = _held_out_summary(console, ckpt, train_dir, test_dir, result, z.val_sequences,
                                                z.val_frames, seed, *z.held_out_bn)
        if z.retrain_iters > 0 and z.retrain_seeds > 0:
            t0 = _step(console, 6, "the pick and Mobile retrained alone with the same budget and seeds")
            summary["compare"] = _retrain_compare(console, out, ckpt, train_dir, test_dir, z.retrain_iters,
                                                  z.retrain_seeds, z.val_sequences, z.val_frames, threads)
            _done(console, t0, f"comparison {out / 'compare.json'}")
    (workdir / "summary.json").write_text(json.dumps(summary, indent=1))
    console.print(f"[bold]demo finished in {time.perf_counter() - start:.0f} s[/bold] (work folder {workdir})")


def _data_step(console: Any, workdir: Path, z: _Sizes, seed: int) -> tuple[Path, Path, Path]:
    """1. Synthetic train, validation and test sets (each from its own seed)."""
    from tracking.data.synth import generate_synthetic
    from tracking.progress import progress_bar

    t0 = _step(console, 1, "synthetic tracking data")
    train_dir, val_dir = workdir / "data" / "train", workdir / "data" / "val"
    # a third set for the summary: the search picks its front on val, so val would flatter the pick
    test_dir = workdir / "data" / "test"
    sets = [(train_dir, z.sequences, seed), (val_dir, max(4, z.sequences // 4), seed + 1000)]
    if z.val_frames > 0:
        sets.append((test_dir, z.val_sequences, seed + 2000))
    for d, n, s in sets:
        if (d / "list.txt").is_file():
            console.print(f"reusing {d}")
        else:
            with progress_bar("data") as progress:
                generate_synthetic(d, n, max(z.frames, z.val_frames) if d == test_dir else z.frames, seed=s,
                                   progress=progress)
    _done(console, t0, f"train {train_dir}, validation {val_dir}, test {test_dir} (held-out seeds)")
    return train_dir, val_dir, test_dir


def _supernet_step(console: Any, workdir: Path, train_dir: Path, z: _Sizes, seed: int, threads: int) -> Path:
    """2. The ranking supernet (resumed from its checkpoint; never one trained with a favoured path)."""
    from tracking.checkpoint import load_supernet
    from tracking.progress import progress_bar
    from tracking.train import SHORT_ITERS, recipe_config, train_supernet

    t0 = _step(console, 2, "one-shot supernet training (single path, uniform: the ranking recipe)")
    ckpt = workdir / "supernet.pt"
    # the ranking recipe (tracking.train.RECIPE, docs/validation.md): every path drawn uniformly, so
    # the supernet ranks architectures without favouring any; a log-size loss, and its tracker settings
    # the demo's short supernet (SHORT_ITERS) unless --iterations: the recipe's 1800 do not fit its 7 minutes
    sizes = {k: v for k, v in (("iters_per_epoch", z.iterations or SHORT_ITERS), ("batch_size", z.batch))
             if v is not None}
    cfg = recipe_config("ranking", seed=seed, threads=threads, checkpoint_every=50, **sizes)
    done = load_supernet(ckpt)[1] if ckpt.is_file() else {}
    if done and (done["config"].get("focus_prob") or 0) > 0:
        # an earlier demo's supernet with Mobile's path favoured: the search must not rank with it
        console.print(f"{ckpt} was trained with Mobile's path favoured: training the ranking supernet afresh")
        ckpt.unlink()
        done = {}
    done_iters = int(done.get("iteration", 0))
    if done_iters >= cfg.total_iters:
        console.print(f"reusing {ckpt} ({done_iters} iterations)")
    else:
        with progress_bar("supernet") as progress:
            train_supernet(train_dir, ckpt, cfg, progress=progress, resume=ckpt.is_file())
    _done(console, t0, f"supernet {ckpt}")
    return ckpt


def _table_step(console: Any, workdir: Path, z: _Sizes, seed: int) -> Any:
    """3. This CPU's latency table (resumed unit by unit) with its frame record; its predictor."""
    from latency_tables.predict import LatencyPredictor
    from latency_tables.profile import hardware_of_this_machine, profile_units
    from latency_tables.store import LatencyStore
    from latency_tables.units import all_units
    from profilers.backends import get_backend
    from profilers.measure import Protocol
    from tracking.progress import progress_bar
    from tracking.space import SearchSpace

    t0 = _step(console, 3, "this CPU's latency lookup table (onnxruntime, 1 thread)")
    space = SearchSpace.paper()
    store = LatencyStore(workdir / "latency.db")
    backend = get_backend("onnxruntime", provider="CPUExecutionProvider", threads=1)
    with progress_bar("profile") as progress:
        rep = profile_units(store, backend, all_units(space), "this-cpu", hardware_of_this_machine(),
                            Protocol(**z.protocol_kw), seed, progress=progress)
    console.print(f"table {rep.table.name!r}: {len(rep.measured)} unit(s) measured, {len(rep.skipped)} reused")
    if "frame" not in rep.table.runtime:  # the tracker's whole frame: the front's frame_ms and fps
        from latency_tables.frame import measure_table_frame

        measure_table_frame(store, rep.table, space, backend, Protocol(**z.protocol_kw), seed=seed)
    table = LatencyPredictor.from_store(store, "this-cpu", space)
    _done(console, t0, f"latency table {workdir / 'latency.db'}")
    return table


def _search_step(console: Any, workdir: Path, ckpt: Path, train_dir: Path, val_dir: Path, table: Any, z: _Sizes,
                 seed: int, quick: bool) -> tuple[Any, Path]:
    """4. The Pareto search, resumed from its state file when its settings are unchanged."""
    from search.config import SearchConfig
    from search.evaluators import SupernetAccuracy
    from search.state import loads

    t0 = _step(console, 4, "Pareto search: tracking score vs measured latency (NSGA-II)")
    out = workdir / "search"
    out.mkdir(exist_ok=True)
    state_path = out / "state.json"
    config = SearchConfig(algorithm="pareto", population=z.population, generations=z.generations, seed=seed,
                          predictor=not quick, predictor_min_samples=min(32, z.population * 2), batch_size=8,
                          parents=min(10, z.population),
                          # half of each generation's children scored: the 56 candidates bench_demo
                          # measured (the default 1/8 would score 38 in these 5 generations)
                          screen_ratio=0.5)
    state = loads(state_path.read_text()) if state_path.is_file() else None
    if state is not None and state.get("config") not in (None, config.model_dump(mode="json")):
        state = None  # settings changed: start afresh rather than resume a different search
    accuracy = SupernetAccuracy.from_checkpoint(str(ckpt), str(val_dir), mode="pairs", bn_data_dir=str(train_dir),
                                                **z.scoring)
    result = _run_with_bar(console, config, accuracy, table, state, state_path)
    _done(console, t0, f"{result.evaluated} candidates scored on the supernet")
    return result, out


def _run_with_bar(console: Any, config: Any, accuracy: Any, table: Any, state: Any, state_path: Path) -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from search.runner import run_search

    with Progress(TextColumn("[bold]search"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"),
                  TimeElapsedColumn(), console=console) as bar:
        task = bar.add_task("", total=config.generations, completed=int(state["generation"]) if state else 0)

        def on_generation(p: dict[str, Any], st: dict[str, Any]) -> None:
            tmp = state_path.with_suffix(".tmp")
            tmp.write_text(json.dumps(st))
            tmp.replace(state_path)
            bar.update(task, completed=p["generation"] + 1,
                       description=f"evaluated {p['evaluated']}, front {p['front_size']}")

        return run_search(config, accuracy, {"this-cpu": table}, state=state, on_generation=on_generation)


def _front_step(console: Any, result: Any, out: Path, seed: int) -> dict[str, Any]:
    """5. The ranked files, the plot and the front as a table (fastest first)."""
    from rich.table import Table

    from search.report import plot_pareto, write_ranked

    csv_path, json_path = write_ranked(result, out)
    png = plot_pareto(result, out / "pareto.png")
    _step(console, 5, "the Pareto front (fastest first)")
    t = Table("latency ms", "score", "MACs M", "params M")
    t.add_column("LightTrack string", overflow="fold")
    for r in sorted(result.front, key=lambda r: r.latency_ms["this-cpu"]):
        t.add_row(f"{r.latency_ms['this-cpu']:.2f}", f"{r.score:.4f}", f"{(r.macs or 0) / 1e6:.0f}",
                  f"{(r.params or 0) / 1e6:.2f}", r.arch)
    console.print(t)
    console.print(f"hypervolume {result.hypervolume:.4f}; ranked: {csv_path}, {json_path}; plot: {png}")
    return {"seed": seed, "hypervolume": result.hypervolume}


def _held_out_summary(console: Any, ckpt: Path, train_dir: Path, test_dir: Path, result: Any, n_seq: int,
                      n_frames: int, seed: int, bn_batches: int = 2, bn_batch_size: int = 32) -> dict[str, Any]:
    """Held-out tracking (sequences mode, the checkpoint's tracker settings) of LightTrack-Mobile's
    path, the front's best-scoring pick and the front's best at or below Mobile's predicted latency,
    beside a box that never moves, all with the supernet's inherited weights: whether the search's
    pick tracks as well as the network it should improve on, in numbers a user can check."""
    from rich.table import Table

    from tracking.checkpoint import load_supernet
    from tracking.tune import tracker_config_from_meta
    from tracking.validate import ValidationScorer

    net, meta = load_supernet(ckpt)
    scorer = ValidationScorer(net, test_dir, "sequences", bn_data_dir=train_dir, bn_batches=bn_batches,
                              bn_batch_size=bn_batch_size,
                              max_sequences=n_seq, max_frames=n_frames, seed=seed,
                              tracker_config=tracker_config_from_meta(meta))
    ref_ms, picks = _picks(result)
    t = Table(f"held out ({len(scorer.sequences)} sequences x {n_frames} frames)", "ms", "AO", "SR@0.5", "SR@0.75",
              "AO / static box")
    t.add_column("LightTrack string", overflow="fold")
    static = scorer.static
    rows: dict[str, Any] = {}
    with console.status("tracking the held-out sequences"):
        for name, arch, ms in picks:
            r = scorer.score(arch)
            rows[name] = {"arch": arch.to_string(), "latency_ms": ms,
                          **{k: r[k] for k in ("ao", "sr50", "sr75", "score")}}
            t.add_row(name, "-" if ms is None else f"{ms:.2f}", f"{r['ao']:.3f}", f"{r['sr50']:.3f}",
                      f"{r['sr75']:.3f}", f"{r['ao'] / max(static['ao'], 1e-9):.1f}x", arch.to_string())
    t.add_row("a box that never moves", "-", f"{static['ao']:.3f}", f"{static['sr50']:.3f}", f"{static['sr75']:.3f}",
              "1.0x", "-")
    rows["static"] = {k: static[k] for k in ("ao", "sr50", "sr75")}
    console.print(t)
    mob, fast_row = rows["LightTrack-Mobile"], rows.get("best at <= Mobile's ms")
    if fast_row is None:
        console.print("no front point is at or below Mobile's predicted latency")
    else:
        beats = fast_row["ao"] >= mob["ao"]
        console.print(f"at or below Mobile's {ref_ms:.2f} ms the front's best tracks AO {fast_row['ao']:.3f} against "
                      f"Mobile's {mob['ao']:.3f} (same supernet, same held-out sequences): "
                      + ("[green]as well or better[/green]" if beats else "[red]worse[/red]"))
    return rows


def _picks(result: Any) -> tuple[float | None, list[tuple[str, Any, float | None]]]:
    """Mobile's predicted ms, and what the held-out table tracks: Mobile's path, the front's
    best-scoring pick, and the front's best at or below Mobile's latency (where there is one)."""
    from tracking.space import Architecture, lighttrack_mobile

    ref = result.reference_arch
    ref_ms = ref.latency_ms["this-cpu"] if ref is not None else None
    best = max(result.front, key=lambda r: r.score)
    at_ref = [r for r in result.front if ref_ms is not None and r.latency_ms["this-cpu"] <= ref_ms]
    picks: list[tuple[str, Any, float | None]] = [
        ("LightTrack-Mobile", lighttrack_mobile(), ref_ms),
        ("front's best pick", Architecture.from_string(best.arch), best.latency_ms["this-cpu"])]
    if at_ref:
        fast = max(at_ref, key=lambda r: r.score)
        picks.append(("best at <= Mobile's ms", Architecture.from_string(fast.arch), fast.latency_ms["this-cpu"]))
    return ref_ms, picks


def _retrain_compare(console: Any, out: Path, ckpt: Path, train_dir: Path, test_dir: Path, iters: int, seeds: int,
                     n_seq: int, n_frames: int, threads: int) -> dict[str, Any] | None:
    """``lutnas search compare`` on the demo's search: its best front point at or below Mobile's
    latency and Mobile, each retrained alone from the supernet's weights, with the same budget and
    seeds; held-out AO / SR@0.5 with their spread."""
    from search.compare import choose, compare, load_front, report, table
    from tracking.space import SearchSpace

    doc = load_front(out)
    ref, chosen, target = choose(doc, "mobile", "this-cpu", 1, SearchSpace.paper())
    if not chosen:
        console.print("no front point at or below Mobile's latency: nothing to compare")
        return None
    from tracking.progress import progress_bar

    with progress_bar("retrain") as progress:
        rows = compare([ref, *chosen], seeds, progress, supernet=ckpt, data=train_dir, test_data=test_dir,
                       iters=iters, workdir=out / "compare", max_sequences=n_seq, max_frames=n_frames,
                       threads=threads)
    rep = report(rows, target, {"iters": iters, "seeds": seeds, "inherited": True, "sequences": n_seq,
                                "frames": n_frames, "reference": "mobile"})
    (out / "compare.json").write_text(json.dumps(rep, indent=1))
    console.print(table(rep))
    for v in rep["verdicts"]:
        se = "" if v["ao_diff_se"] is None else f" ± {v['ao_diff_se']:.3f}"
        console.print(f"{v['name']} against Mobile: AO {v['ao_diff']:+.3f}{se}: {v['note']}"
                      + ("" if v["decided"] else f" (raise --retrain-iters / --retrain-seeds; {iters} iterations x "
                         f"{seeds} seed(s) is a small budget)"))
    return rep
