"""The ``lutnas`` command, assembled lazily from per-package typer apps.

Each package owns its commands (see docs/architecture.md). Groups are imported only when invoked, so
``lutnas --help`` and the remote groups never import torch.

Error convention for every command: user errors are raised as ``ValueError`` (or a subclass),
``OSError`` for files, or a click exception (``typer.BadParameter``); they print one line on stderr and exit 2.
Set ``LUTNAS_DEBUG=1`` to see tracebacks.
"""

from __future__ import annotations

import importlib
import os
import sys

import typer.core
import typer.exceptions
import typer.main

# typer >= 0.20 vendors its own click; use its classes so exceptions and groups match.
from typer._click import ClickException, Command, Context, HelpFormatter, echo

# name -> ([(module, attribute), ...], short help). Several sources merge into one group
# (``search``: local ``run`` from search/, remote commands from client/).
GROUPS: dict[str, tuple[list[tuple[str, str]], str]] = {
    "arch": ([("tracking.cli", "arch_app")], "Inspect, sample and export architectures."),
    "data": ([("tracking.cli", "data_app")], "Tracking data: synthetic sequences, dataset checks."),
    "supernet": ([("tracking.cli", "supernet_app")], "Train and evaluate the one-shot supernet."),
    "profile": ([("latency_tables.cli", "profile_app")], "Measure this device's latency table locally."),
    "latency": ([("latency_tables.cli", "latency_app")], "Latency tables: predict, validate, import, export."),
    "search": ([("search.cli", "search_app"), ("client.cli", "search_app")],
               "Run a search locally, or submit and follow searches on a server."),
    "hardware": ([("client.cli", "hardware_app")], "Hardware targets on a server."),
    "agents": ([("client.cli", "agents_app")], "Profiler-agent tokens on a server."),
    "supernets": ([("client.cli", "supernets_app")], "Supernets (checkpoint + validation data) on a server."),
    "serve": ([("server.cli", "serve_app")], "Run the REST API (with an embedded worker)."),
    "worker": ([("server.cli", "worker_app")], "Run a search-job worker."),
    "admin": ([("server.cli", "admin_app")], "Administration: teams, database migrations."),
    "demo": ([("lutnas.demo", "demo_app")], "The whole pipeline on this machine, end to end."),
}


def _load(name: str) -> Command:
    sources, help_text = GROUPS[name]
    commands = []
    for module, attr in sources:
        app = getattr(importlib.import_module(module), attr)
        commands.append(typer.main.get_command(app))
    if len(commands) == 1:
        cmd = commands[0]
    else:
        cmd = typer.core.TyperGroup(name=name, help=help_text)
        for c in commands:
            for sub_name, sub in getattr(c, "commands", {c.name: c}).items():
                cmd.add_command(sub, sub_name)
    cmd.name = name
    if not cmd.help:
        cmd.help = help_text
    return cmd


class LazyGroup(typer.core.TyperGroup):
    def list_commands(self, ctx: Context) -> list[str]:
        return list(GROUPS)

    def get_command(self, ctx: Context, cmd_name: str) -> Command | None:
        if cmd_name not in GROUPS:
            return None
        return _load(cmd_name)

    def format_commands(self, ctx: Context, formatter: HelpFormatter) -> None:
        # Short help without importing any group.
        with formatter.section("Commands"):
            formatter.write_dl([(n, h) for n, (_, h) in GROUPS.items()])


# rich_markup_mode=None: typer's rich help would load every group to list it (importing torch).
cli = LazyGroup(
    name="lutnas",
    rich_markup_mode=None,
    help="lutnas: hardware-aware architecture search for lightweight trackers (LightTrack space).",
)


def _fail(message: str, code: int = 2) -> None:
    echo(f"error: {message}", err=True)
    sys.exit(code)


def main(argv: list[str] | None = None) -> None:
    debug = os.environ.get("LUTNAS_DEBUG") == "1"
    try:
        rv = cli.main(args=argv, prog_name="lutnas", standalone_mode=False)
    except typer.exceptions.Abort:
        _fail("aborted", 130)
    except typer.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except ClickException as e:
        _fail(e.format_message())
    except (ValueError, OSError, KeyError) as e:
        if debug:
            raise
        msg = str(e) if not isinstance(e, KeyError) else f"not found: {e.args[0]}"
        _fail(msg.splitlines()[0] if msg else type(e).__name__)
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    else:
        sys.exit(rv if isinstance(rv, int) else 0)


if __name__ == "__main__":
    main()
