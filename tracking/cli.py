"""Commands of the tracking package: ``arch``, ``data``, ``supernet``.

Heavy imports (torch) happen inside commands so that ``lutnas --help`` stays light.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer

from tracking.progress import progress_bar
from tracking.space import SPACE_NAMES, Architecture, SearchSpace, sample_many

arch_app = typer.Typer(help="Inspect, sample and export architectures.", no_args_is_help=True)
data_app = typer.Typer(help="Tracking data: synthetic sequences, dataset checks.", no_args_is_help=True)
supernet_app = typer.Typer(help="Train and evaluate the one-shot supernet.", no_args_is_help=True)


def space_name(name: str, code_space: bool = False) -> str:
    """``--space NAME`` checked (``--code-space``: the deprecated spelling of ``--space code``)."""
    name = "code" if code_space else name
    if name not in SPACE_NAMES:
        raise typer.BadParameter(f"must be one of {', '.join(SPACE_NAMES)}, got {name!r}", param_hint="--space")
    return name


def space_option(name: str, code_space: bool = False) -> SearchSpace:
    """The space of ``--space NAME`` (or of the deprecated ``--code-space``)."""
    return SearchSpace.named(space_name(name, code_space))


def load_arch(value: str, space: SearchSpace | None = None) -> Architecture:
    """ARCH argument: a LightTrack string, inline JSON, or a path to a JSON file."""
    space = space or SearchSpace.code()  # reading is lenient; the stricter space is checked where used
    text = value.strip()
    if text.startswith("back_") or text.startswith("{"):
        return Architecture.parse(text, space)
    path = Path(value)
    if not path.exists():
        raise FileNotFoundError(f"ARCH {value!r} is neither a LightTrack string nor an existing JSON file")
    return Architecture.from_json(path.read_text(), space)


# One vocabulary for every command: --space paper|code (client, profile, latency, search, arch, supernet).
SpaceOpt = typer.Option("paper", "--space", help="Search space: paper (LightTrack's), or code (the public "
                        "code's: the 40-channel stage may also be the output).")
CodeSpace = typer.Option(False, "--code-space", hidden=True, help="Deprecated: use --space code.")
DeviceOpt = typer.Option("auto", "--device", help="auto (CUDA when present), cpu, cuda or cuda:N.")
# Shared by several commands below, each with its own default.
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]
SeedOpt = Annotated[int, typer.Option("--seed")]
ArchArg = Annotated[str, typer.Argument(help="LightTrack string or JSON file.")]
ArchOrJsonArg = Annotated[str, typer.Argument(help="LightTrack string, JSON, or JSON file.")]
TorchThreadsOpt = Annotated[int, typer.Option("--threads", min=0, help="torch threads (0: torch default).")]
OverwriteOpt = Annotated[bool, typer.Option("--overwrite", help="Replace an existing checkpoint.")]
BnBatchesOpt = Annotated[int, typer.Option("--bn-batches", min=0, help="BN recalibration batches (0: none).")]


def device_option(value: str) -> str:
    """--device checked for form before torch is imported (ValueError: one line, exit 2)."""
    from tracking.devices import check_device

    return check_device(value)


@arch_app.command("sample")
def arch_sample(
    n: int = typer.Option(10, "--n", min=1, help="How many architectures."),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
    space: str = SpaceOpt,
    code_space: bool = CodeSpace,
) -> None:
    """Print N uniformly sampled architectures, one LightTrack string a line."""
    for arch in sample_many(n, seed, space_option(space, code_space)):
        typer.echo(arch.to_string())


@arch_app.command("info")
def arch_info(
    arch: ArchArg,
    as_json: JsonOpt = False,
    space_name: str = SpaceOpt,
    code_space: bool = CodeSpace,
) -> None:
    """Validity, canonical JSON, FLOPs (MACs) and parameter count of an architecture."""
    from tracking.flops import count_flops_params

    space = space_option(space_name, code_space)
    a = load_arch(arch, space)
    a.validate(space)
    flops, params = count_flops_params(a, space)
    info = {
        "valid": True,
        "lighttrack": a.to_string(),
        "id": a.canonical_id(),
        "flops": flops,
        "params": params,
        "arch": a.to_json(),
    }
    if as_json:
        typer.echo(json.dumps(info))
        return
    from rich.console import Console
    from rich.table import Table

    t = Table(title="architecture", show_header=False)
    t.add_row("valid", "yes")
    t.add_row("lighttrack", info["lighttrack"])
    t.add_row("canonical id", info["id"])
    t.add_row("FLOPs (MACs)", f"{flops / 1e6:.1f} M")
    t.add_row("params", f"{params / 1e6:.3f} M")
    t.add_row("output", f"stage {a.out_stage} block {a.out_block}")
    t.add_row("cls tower", f"{a.cls.width_channels(space)} ch, kernels {a.cls.kernels()}")
    t.add_row("reg tower", f"{a.reg.width_channels(space)} ch, kernels {a.reg.kernels()}")
    Console().print(t)
    typer.echo(json.dumps(info["arch"]))


@arch_app.command("export")
def arch_export(
    arch: ArchArg,
    out: Path = typer.Option(..., "--out", help="Directory for template.onnx, search.onnx, arch.json."),
    supernet: Path | None = typer.Option(None, "--supernet", help="Supernet checkpoint (weights to inherit)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the random init when no checkpoint is given."),
    space_name: str = SpaceOpt,
    code_space: bool = CodeSpace,
) -> None:
    """Export an architecture as two ONNX graphs (template and search branches) with inherited weights."""
    if supernet is not None and not supernet.is_file():
        raise FileNotFoundError(f"supernet checkpoint not found: {supernet}")
    a = load_arch(arch, SearchSpace.code())
    space = space_option(space_name, code_space)

    import torch

    from tracking.checkpoint import load_supernet
    from tracking.export import export_onnx
    from tracking.flops import count_flops_params
    from tracking.subnet import extract_subnet
    from tracking.supernet import Supernet

    if supernet is not None:
        net, _ = load_supernet(supernet)
        source = str(supernet)
    else:
        a.validate(space)
        torch.manual_seed(seed)
        net = Supernet(space).eval()
        source = f"random init (seed {seed})"
    a.validate(net.space)
    paths = export_onnx(extract_subnet(net, a), out)
    flops, params = count_flops_params(a, net.space)
    typer.echo(f"{a.to_string()}: {flops / 1e6:.1f}M MACs, {params / 1e6:.3f}M params, weights: {source}")
    for name, p in paths.items():
        typer.echo(f"{name}: {p}")


# -- data ---------------------------------------------------------------------------------------

@data_app.command("synth")
def data_synth(
    out: Path = typer.Option(..., "--out", help="Output folder (GOT-10k layout)."),
    sequences: int = typer.Option(20, "--sequences", min=1, help="Number of sequences."),
    frames: int = typer.Option(100, "--frames", min=2, help="Frames per sequence."),
    seed: int = typer.Option(0, "--seed", help="Random seed (same seed, byte-identical files)."),
    fmt: str = typer.Option("jpg", "--format", help="Frame format: jpg or png."),
    width: int = typer.Option(320, "--width", min=160, help="Frame width."),
    height: int = typer.Option(240, "--height", min=120, help="Frame height."),
) -> None:
    """Write synthetic tracking sequences (textured targets, distractors, occlusion, blur)."""
    from tracking.data.synth import SynthConfig, generate_synthetic

    if fmt not in ("jpg", "png"):
        raise typer.BadParameter(f"--format must be jpg or png, got {fmt!r}")
    with progress_bar("data") as progress:
        generate_synthetic(out, sequences, frames, seed, SynthConfig(width=width, height=height, fmt=fmt), progress)
    typer.echo(f"wrote {sequences} sequences x {frames} frames to {out}")


@data_app.command("check")
def data_check(
    data: Path = typer.Argument(..., help="Dataset folder (GOT-10k layout)."),
    deep: bool = typer.Option(False, "--deep", help="Also decode every frame."),
    as_json: JsonOpt = False,
) -> None:
    """Check a dataset; print sequences found and every problem with file and line.
    Exit code 0 when clean, 1 when problems were found."""
    from tracking.data.got10k import check_dataset

    ds = check_dataset(data, deep=deep)
    if as_json:
        typer.echo(json.dumps({"root": str(ds.root), "sequences": len(ds), "frames": ds.n_frames,
                               "skipped": ds.skipped, "issues": [str(i) for i in ds.issues]}))
    else:
        typer.echo(ds.report())
    if ds.issues:
        raise typer.Exit(1)


@data_app.command("evaluate-results")
def data_evaluate_results(
    data: Path = typer.Option(..., "--data", help="Dataset folder (GOT-10k, LaSOT or OTB layout) with ground truth."),
    results: Path = typer.Option(..., "--results", help="Results in the GOT-10k toolkit's layout: "
                                                        "RESULTS/SEQ/SEQ_001.txt, one x,y,w,h line per frame."),
    as_json: JsonOpt = False,
) -> None:
    """Score any tracker's results by the GOT-10k toolkit's rules (AO, SR@0.5, SR@0.75).

    First frame dropped, boxes clipped to the sequence's resolution, only frames where the target
    is visible; several repetitions (SEQ_002.txt ...) are pooled.
    """
    from tracking.results import evaluate_results

    if not data.is_dir():
        raise FileNotFoundError(f"data folder {data} does not exist")
    res = evaluate_results(data, results)
    if as_json:
        typer.echo(json.dumps(res))
        return
    fmt = lambda v: "-" if v is None else f"{v:.4f}"  # noqa: E731
    for name, r in res["per_sequence"].items():
        typer.echo(f"{name}: AO {fmt(r['ao'])}  SR@0.5 {fmt(r['sr50'])}  SR@0.75 {fmt(r['sr75'])}  "
                   f"({r['frames']} frames)")
    typer.echo(f"overall: AO {fmt(res['ao'])}  SR@0.5 {fmt(res['sr50'])}  SR@0.75 {fmt(res['sr75'])}  "
               f"({res['sequences']} sequences, {res['frames']} scored frames)")


# -- supernet -----------------------------------------------------------------------------------

RecipeOpt = Annotated[str, typer.Option(
    "--recipe", help="ranking (default; 'fair' is its old name): the tested recipe with uniform "
    "paths (AdamW, 1800 iterations), what a search ranks with; mobile: "
    "LightTrack-Mobile's path half the time, 450 iterations (a Mobile tracker demo, never for "
    "ranking); none: plain SGD with the flags' defaults. Flags given override "
    "the recipe.")]
ItersPerEpochOpt = Annotated[int | None, typer.Option(
    "--iters-per-epoch", min=1, help="Iterations per epoch (default 100, or the recipe's).")]
TrainLrOpt = Annotated[float | None, typer.Option(
    "--lr", min=0.0, help="Peak learning rate (default 0.01 with SGD, or the recipe's).")]
WorkersOpt = Annotated[int, typer.Option(
    "--workers", min=0, help="Processes cropping pairs ahead of the network (0: in the training loop).")]
CheckpointEveryOpt = Annotated[int, typer.Option(
    "--checkpoint-every", min=0, help="Also checkpoint every N iterations (0: once per epoch).")]
TimeLimitOpt = Annotated[float, typer.Option(
    "--time-limit", min=0.0, help="Stop (and checkpoint, resumable) after this many minutes; 0: none.")]
NprocOpt = Annotated[int, typer.Option(
    "--nproc", min=1, help="Processes training together (torch.distributed: gloo on CPU, NCCL with one GPU each "
    "on CUDA); --batch is split among them.")]


@supernet_app.command("train")
def supernet_train(
    data: Path = typer.Option(..., "--data", help="Training data folder (GOT-10k layout)."),
    out: Path = typer.Option(..., "--out", help="Checkpoint to write."),
    recipe: RecipeOpt = "ranking",
    epochs: int | None = typer.Option(None, "--epochs", min=1, help="Epochs (default 1)."),
    batch: int | None = typer.Option(None, "--batch", min=1, help="Pairs per iteration (default 8)."),
    iters_per_epoch: ItersPerEpochOpt = None,
    lr: TrainLrOpt = None,
    warmup: int | None = typer.Option(None, "--warmup", min=0, help="Warm-up iterations (default 30)."),
    seed: SeedOpt = 0,
    threads: TorchThreadsOpt = 0,
    workers: WorkersOpt = 0,
    checkpoint_every: CheckpointEveryOpt = 0,
    time_limit: TimeLimitOpt = 0.0,
    space: str = SpaceOpt,
    code_space: bool = CodeSpace,
    resume: bool = typer.Option(False, "--resume", help="Continue training the checkpoint at --out."),
    overwrite: OverwriteOpt = False,
    device: str = DeviceOpt,
    precision: str = typer.Option("fp32", "--precision", help="fp32, or on CUDA bf16/fp16 (mixed precision)."),
    nproc: NprocOpt = 1,
) -> None:
    """Single-path one-shot supernet training (uniform path sampling).

    Multi-process without --nproc: torchrun --nproc_per_node N -m lutnas.cli supernet train ...
    """
    from tracking.devices import check_precision
    from tracking.train import RECIPES, TrainConfig, check_shards, train_supernet

    if recipe != "none" and recipe not in RECIPES:
        raise typer.BadParameter(f"--recipe must be one of none, {', '.join(RECIPES)}, got {recipe!r}")
    device = device_option(device)
    precision = check_precision(precision)
    given = {k: v for k, v in (("epochs", epochs), ("batch_size", batch), ("iters_per_epoch", iters_per_epoch),
                               ("lr", lr), ("warmup_iters", warmup)) if v is not None}
    base = dict(RECIPES.get(recipe, {}))
    check_shards(given.get("batch_size", base.get("batch_size", 8)), nproc)
    if not data.is_dir():
        raise FileNotFoundError(f"data folder {data} does not exist")
    cfg = TrainConfig(**{**base, **given, "seed": seed, "threads": threads or None, "workers": workers,
                         "checkpoint_every": checkpoint_every, "space": space_name(space, code_space)})
    with progress_bar("supernet", enabled=os.environ.get("RANK", "0") == "0") as progress:  # torchrun: rank 0 draws
        res = train_supernet(data, out, cfg, progress=progress, resume=resume, overwrite=overwrite,
                             time_limit_s=time_limit * 60 or None, device=device, precision=precision, nproc=nproc)
    if os.environ.get("RANK", "0") == "0":  # under torchrun, rank 0 reports
        typer.echo(_trained_summary(out, res))


def _trained_summary(out: Path, res: dict[str, Any]) -> str:
    """``supernet train``'s closing line."""
    from tracking.train import TrainConfig

    loss = f"{res['loss']:.4f}" if res["loss"] is not None else "-"
    total = TrainConfig(**res["config"]).total_iters  # a resumed run follows the checkpoint's config
    return (f"{out}: {res['total_iterations']}/{total} iterations ({res['iterations']} in this run, "
            f"{res['seconds']:.0f} s, {res['nproc']} process(es) on {res['device']}), "
            f"loss over the last 20 iterations {loss}"
            + (" (stopped by --time-limit; --resume continues)" if res["stopped_early"] else ""))


def _must_exist(*paths: tuple[Path | None, str]) -> None:
    """FileNotFoundError for the first (path, what) given whose path does not exist (None: not given)."""
    for p, what in paths:
        if p is not None and not p.exists():
            raise FileNotFoundError(f"{what} {p} does not exist")


RetrainSupernetOpt = Annotated[Path | None, typer.Option(
    "--supernet", help="Supernet checkpoint whose weights ARCH inherits (required unless --from-scratch).")]
FromScratchOpt = Annotated[bool, typer.Option(
    "--from-scratch", help="Fresh weights instead of inherited ones (the control).")]
TestDataOpt = Annotated[Path | None, typer.Option(
    "--test-data", help="Also track these held-out sequences and print AO / SR@0.5 (own BN statistics).")]


@supernet_app.command("retrain")
def supernet_retrain(
    arch: ArchOrJsonArg,
    supernet: RetrainSupernetOpt = None,
    data: Path = typer.Option(..., "--data", help="Training data folder (GOT-10k layout)."),
    iters: int = typer.Option(..., "--iters", min=1, help="Training iterations on ARCH's path alone."),
    out: Path = typer.Option(..., "--out", help="Checkpoint to write (read like any supernet checkpoint)."),
    from_scratch: FromScratchOpt = False,
    seed: int = typer.Option(0, "--seed", help="Training pairs (and the initialisation with --from-scratch)."),
    batch: int | None = typer.Option(None, "--batch", min=1, help="Pairs per iteration (default: the recipe's 8)."),
    lr: float | None = typer.Option(None, "--lr", min=0.0, help="Peak learning rate (default: the recipe's)."),
    threads: TorchThreadsOpt = 0,
    test_data: TestDataOpt = None,
    max_sequences: int = typer.Option(20, "--sequences", min=1, help="Held-out sequences (--test-data)."),
    max_frames: int = typer.Option(50, "--frames", min=2, help="Frames per held-out sequence (--test-data)."),
    overwrite: OverwriteOpt = False,
    as_json: JsonOpt = False,
    device: str = DeviceOpt,
) -> None:
    """Stand-alone fine-tuning of ARCH from the supernet's weights (or from scratch), with the ranking recipe."""
    from tracking.retrain import held_out_score, retrain

    device = device_option(device)
    _check_retrain_sources(supernet, from_scratch)
    _must_exist((supernet, "supernet checkpoint"), (data, "data folder"), (test_data, "test data folder"))
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists: pass --overwrite to replace it")
    a = load_arch(arch)
    with progress_bar("retrain") as progress:
        res = retrain(a, data, out, iters, seed=seed, supernet=supernet, threads=threads or None, batch_size=batch,
                      lr=lr, overwrite=overwrite, device=device, progress=progress)
    doc = {"arch": a.to_string(), "checkpoint": str(out), "iterations": res["total_iterations"],
           "inherited": supernet is not None, "seed": seed, "seconds": res["seconds"], "loss": res["loss"]}
    if test_data is not None:
        doc["held_out"] = held_out_score(out, a, test_data, max_sequences=max_sequences, max_frames=max_frames,
                                         seed=seed, device=device)
    if as_json:
        typer.echo(json.dumps(doc))
        return
    _report_retrained(doc, res, out, max_frames)


def _check_retrain_sources(supernet: Path | None, from_scratch: bool) -> None:
    """Exactly one source of initial weights: --supernet or --from-scratch."""
    if supernet is None and not from_scratch:
        raise typer.BadParameter("give --supernet (weights to inherit) or --from-scratch", param_hint="--supernet")
    if supernet is not None and from_scratch:
        raise typer.BadParameter("--from-scratch trains fresh weights: leave out --supernet", param_hint="--supernet")


def _report_retrained(doc: dict[str, Any], res: dict[str, Any], out: Path, max_frames: int) -> None:
    """``supernet retrain``'s text output: the training, then the held-out score if one was taken."""
    how = "from the supernet's weights" if doc["inherited"] else "from scratch"
    loss = f"{res['loss']:.4f}" if res["loss"] is not None else "-"
    typer.echo(f"{out}: {doc['arch']} trained alone {how}, {res['total_iterations']} iterations "
               f"({res['seconds']:.0f} s), loss over the last 20 iterations {loss}")
    if "held_out" in doc:
        h = doc["held_out"]
        typer.echo(f"held out ({h['sequences']} sequences x {max_frames} frames): AO {h['ao']:.4f}  "
                   f"SR@0.5 {h['sr50']:.4f}  SR@0.75 {h['sr75']:.4f}")


def check_whole_sequences(sequences: list, max_sequences: int, max_frames: int) -> None:
    """--save-results writes every frame of every sequence (the toolkit's layout has no partial
    sequences): refuse --sequences / --frames limits that would cut them."""
    if len(sequences) > max_sequences:
        raise typer.BadParameter(f"--save-results needs every sequence: the data has {len(sequences)}, "
                                 f"--sequences is {max_sequences} (pass --sequences {len(sequences)})")
    longest = max(len(s) for s in sequences)
    if longest > max_frames:
        raise typer.BadParameter(f"--save-results needs whole sequences: the longest has {longest} frames, "
                                 f"--frames is {max_frames} (pass --frames {longest})")


DefaultTrackerOpt = Annotated[bool, typer.Option(
    "--default-tracker", help="LightTrack's tracker settings even if the checkpoint has tuned ones.")]
SaveResultsOpt = Annotated[Path | None, typer.Option(
    "--save-results", help="Sequences mode: also write the predicted boxes in the GOT-10k toolkit's layout "
    "(DIR/SEQ/SEQ_001.txt), for `lutnas data evaluate-results`.")]


@supernet_app.command("evaluate")
def supernet_evaluate(
    arch: ArchOrJsonArg,
    supernet: Path = typer.Option(..., "--supernet", help="Supernet checkpoint."),
    data: Path = typer.Option(..., "--data", help="Validation data folder (GOT-10k layout)."),
    mode: str = typer.Option("pairs", "--mode", help="pairs (fast proxy) or sequences (tracking)."),
    bn_data: Path = typer.Option(None, "--bn-data", help="Training data for BN recalibration (default: --data)."),
    n_pairs: int = typer.Option(256, "--pairs", min=1, help="Validation pairs (pairs mode)."),
    max_sequences: int = typer.Option(20, "--sequences", min=1, help="Sequences (sequences mode)."),
    max_frames: int = typer.Option(50, "--frames", min=2, help="Frames per sequence (sequences mode)."),
    bn_batches: BnBatchesOpt = 1,
    bn_batch_size: int = typer.Option(32, "--bn-batch-size", min=1, help="Pairs per recalibration batch."),
    seed: SeedOpt = 0,
    default_tracker: DefaultTrackerOpt = False,
    as_json: JsonOpt = False,
    save_results: SaveResultsOpt = None,
    device: str = DeviceOpt,
) -> None:
    """Validation score of ARCH on a trained supernet (BN recalibrated for its path)."""
    device = device_option(device)
    _check_evaluate_mode(mode, save_results)
    _must_exist((supernet, "supernet checkpoint"), (data, "data folder"), (bn_data, "BN data folder"))
    a = load_arch(arch, SearchSpace.code())

    from tracking.checkpoint import load_supernet
    from tracking.tune import tracker_config_from_meta
    from tracking.validate import ValidationScorer

    net, meta = load_supernet(supernet)
    a.validate(net.space)
    tracker = None if default_tracker else tracker_config_from_meta(meta)
    scorer = ValidationScorer(net, data, mode, bn_data_dir=bn_data, n_pairs=n_pairs,  # type: ignore[arg-type]
                              max_sequences=max_sequences, max_frames=max_frames, seed=seed,
                              bn_batches=bn_batches, bn_batch_size=bn_batch_size, tracker_config=tracker,
                              device=device)
    if save_results is not None:  # the layout holds whole sequences only: check before tracking
        check_whole_sequences(scorer.data.sequences, max_sequences, max_frames)
    res = scorer.score(a)
    if mode == "sequences":
        res["tracker"] = "tuned" if tracker else "default"
    if save_results is not None:
        from tracking.results import write_results

        write_results(save_results, scorer.predictions)
        res["results"] = str(save_results)
    _echo_scores(res, as_json)


def _check_evaluate_mode(mode: str, save_results: Path | None) -> None:
    """--mode, and --save-results only where sequences are tracked."""
    if mode not in ("pairs", "sequences"):
        raise typer.BadParameter(f"--mode must be pairs or sequences, got {mode!r}")
    if save_results is not None and mode != "sequences":
        raise typer.BadParameter("--save-results needs --mode sequences (pairs mode tracks no sequence)")


def _echo_scores(res: dict[str, Any], as_json: bool) -> None:
    """One JSON object, or one ``key: value`` line per figure (floats to 4 decimals)."""
    if as_json:
        typer.echo(json.dumps(res))
        return
    for k, v in res.items():
        typer.echo(f"{k}: {v:.4f}" if isinstance(v, float) else f"{k}: {v}")


@supernet_app.command("tune-tracker")
def supernet_tune_tracker(
    supernet: Path = typer.Option(..., "--supernet", help="Supernet checkpoint; the result is stored in it."),
    data: Path = typer.Option(..., "--data", help="TRAINING data (GOT-10k layout): never tune on validation data."),
    arch: str = typer.Option(None, "--arch", help="Architecture tracked while tuning (default LightTrack-Mobile)."),
    max_sequences: int = typer.Option(8, "--sequences", min=1, help="Sequences tracked per setting."),
    max_frames: int = typer.Option(40, "--frames", min=2, help="Frames per sequence."),
    bn_batches: BnBatchesOpt = 2,
    seed: SeedOpt = 0,
    as_json: JsonOpt = False,
    device: str = DeviceOpt,
) -> None:
    """Tune the tracker's size-update rate, window and scale penalty for this supernet (stored in it)."""
    device = device_option(device)
    _must_exist((supernet, "supernet checkpoint"), (data, "data folder"))
    from tracking.checkpoint import load_supernet, save_checkpoint
    from tracking.tune import tune_tracker

    net, meta = load_supernet(supernet)
    a = load_arch(arch, SearchSpace.code()) if arch else None
    if a is not None:
        a.validate(net.space)
    with progress_bar("supernet", enabled=not as_json, transient=True) as progress:
        res = tune_tracker(net, data, a, max_sequences=max_sequences, max_frames=max_frames, bn_batches=bn_batches,
                           seed=seed, progress=progress, device=device)
    meta["tracker"] = res
    save_checkpoint(supernet, net, meta)
    if as_json:
        typer.echo(json.dumps(res))
        return
    d, c = res["default"], res["config"]
    typer.echo(f"LightTrack's settings: score {d['score']:.3f} (AO {d['ao']:.3f}, SR@0.5 {d['sr50']:.3f})")
    typer.echo(f"tuned: lr {c['lr']}, window_influence {c['window_influence']}, penalty_k {c['penalty_k']}: "
               f"score {res['score']:.3f} (AO {res['ao']:.3f}, SR@0.5 {res['sr50']:.3f}) on {res['sequences']} "
               f"training sequences x {res['frames']} frames; stored in {supernet}")


@supernet_app.command("convert")
def supernet_convert(
    checkpoint: Path = typer.Argument(..., help="A checkpoint written by an earlier lutnas (format version 1)."),
    out: Path = typer.Option(None, "--out", help="Where to write the converted checkpoint (default: in place, "
                                                   "the original kept as CHECKPOINT.v1.bak)."),
    as_json: JsonOpt = False,
) -> None:
    """One-time conversion of an old checkpoint to the current, weights-only format.

    Reading the old format unpickles the file, which can run code it carries: convert only
    checkpoints you wrote yourself, on your own machine. The server never does this.
    """
    from tracking.checkpoint import convert_checkpoint

    res = convert_checkpoint(checkpoint, out)
    if as_json:
        typer.echo(json.dumps(res))
    elif res["converted"]:
        typer.echo(f"converted {res['source']} (version 1) -> {res['out']} (version 2, reads weights-only)")
    else:
        typer.echo(f"{res['source']} is already in the current format" +
                   (f"; copied to {res['out']}" if res["out"] != res["source"] else ""))
