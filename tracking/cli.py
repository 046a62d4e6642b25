"""Commands of the tracking package: ``arch``, ``data``, ``supernet``.

Heavy imports (torch) happen inside commands so that ``lutnas --help`` stays light.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from tracking.space import Architecture, SearchSpace, sample_many

arch_app = typer.Typer(help="Inspect, sample and export architectures.", no_args_is_help=True)
data_app = typer.Typer(help="Tracking data: synthetic sequences, dataset checks.", no_args_is_help=True)
supernet_app = typer.Typer(help="Train and evaluate the one-shot supernet.", no_args_is_help=True)


def space_option(code_space: bool) -> SearchSpace:
    return SearchSpace.code() if code_space else SearchSpace.paper()


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


CodeSpace = typer.Option(False, "--code-space", help="Allow the 40-channel stage as output (public code's space).")


@arch_app.command("sample")
def arch_sample(
    n: int = typer.Option(10, "--n", min=1, help="How many architectures."),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
    code_space: bool = CodeSpace,
) -> None:
    """Print N uniformly sampled architectures, one LightTrack string a line."""
    for arch in sample_many(n, seed, space_option(code_space)):
        typer.echo(arch.to_string())


@arch_app.command("info")
def arch_info(
    arch: str = typer.Argument(..., help="LightTrack string or JSON file."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    code_space: bool = CodeSpace,
) -> None:
    """Validity, canonical JSON, FLOPs (MACs) and parameter count of an architecture."""
    from tracking.flops import count_flops_params

    space = space_option(code_space)
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
