"""Remote CLI commands: ``lutnas hardware``, ``lutnas agents``, and the remote half of ``lutnas search``.

Every command talks to a server through the SDK: ``--server`` (default ``$LUTNAS_SERVER``, else
http://127.0.0.1:8000) and ``--api-key`` (default ``$LUTNAS_API_KEY``). Server problems,
an unreachable server or a missing key become one ``error: ...`` line and exit code 2 (the
assembler in lutnas/cli.py prints :class:`RemoteCommandError`, a ValueError). Nothing here
imports torch; pandas and matplotlib are imported only by the commands that need them.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from client.errors import LutnasError
from client.models import TERMINAL_STATUSES, Drift, Hardware, ParetoFront, SearchInfo, SearchStatus, Supernet
from client.resources import Search
from client.sdk import Client

hardware_app = typer.Typer(add_completion=False, help="Hardware targets on a server.", no_args_is_help=True)
agents_app = typer.Typer(add_completion=False, help="Profiler-agent tokens on a server.", no_args_is_help=True)
search_app = typer.Typer(add_completion=False, help="Submit and follow searches on a server.", no_args_is_help=True)
supernets_app = typer.Typer(add_completion=False, help="Supernets (checkpoint + validation data) on a server.",
                            no_args_is_help=True)

# The CLI should fail fast on a dead server: 2 retries, 0.25 s then 0.5 s. `search watch` follows a
# long job instead: it rides out a server restart of WATCH_RETRY_FOR_S seconds, saying it retries.
CLI_RETRIES = 2
CLI_BACKOFF_S = 0.25
WATCH_RETRY_FOR_S = 120.0

F = TypeVar("F", bound=Callable[..., Any])


class RemoteCommandError(ValueError):
    """A remote command failed; the message is one line for the user."""


def remote(func: F) -> F:
    """Turn SDK errors into :class:`RemoteCommandError` (one line, exit 2 via the assembler)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except LutnasError as e:
            raise RemoteCommandError(" ".join(str(e).split()) or type(e).__name__) from None

    return wrapper  # type: ignore[return-value]


ServerOpt = Annotated[
    str | None,
    typer.Option("--server", help="Server URL (default: $LUTNAS_SERVER, else http://127.0.0.1:8000)."),
]
ApiKeyOpt = Annotated[str | None, typer.Option("--api-key", help="Team API key (default: $LUTNAS_API_KEY).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def connect(server: str | None, api_key: str | None, retry_for: float = 0.0) -> Client:
    return Client(server=server, api_key=api_key, retries=CLI_RETRIES, backoff=CLI_BACKOFF_S, retry_for=retry_for)


class _RetryNotes(logging.Handler):
    """The SDK's retry warnings as one stderr line each (`search watch` says it is retrying)."""

    def emit(self, record: logging.LogRecord) -> None:
        typer.echo(f"warning: {record.getMessage()}", err=True)


def _console() -> Console:
    return Console()


def _echo_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str))


def _when(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if value else "-"


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


# -- hardware -------------------------------------------------------------------------------


def _hardware_row(h: Hardware) -> list[str]:
    rt = h.runtime
    cov = h.coverage
    coverage = f"{cov.measured}/{cov.total} ({cov.fraction:.0%})" if cov else "-"
    runtime = f"{rt.backend} {rt.provider} x{rt.threads} {rt.precision}"
    created = h.created_at.strftime("%Y-%m-%d %H:%M") if h.created_at else "-"
    return [str(h.id), h.name, h.kind, runtime, h.space, coverage, created]


def _hardware_table(items: list[Hardware], title: str) -> Table:
    t = Table(title=title)
    for col in ("id", "name", "kind", "runtime", "space", "coverage", "created (UTC)"):
        t.add_column(col)
    for h in items:
        t.add_row(*_hardware_row(h))
    return t


@hardware_app.command("register")
@remote
def hardware_register(
    name: Annotated[str, typer.Argument(help="A name for the target, e.g. pixel7-cpu.")],
    kind: Annotated[str, typer.Option("--kind", help="cpu, mobile-gpu, jetson or server-gpu.")] = "cpu",
    backend: Annotated[str, typer.Option("--backend", help="Runtime backend.")] = "onnxruntime",
    provider: Annotated[
        str, typer.Option("--provider", help="onnxruntime execution provider.")
    ] = "CPUExecutionProvider",
    threads: Annotated[int, typer.Option("--threads", min=1, help="Intra-op threads.")] = 1,
    precision: Annotated[str, typer.Option("--precision", help="fp32, fp16 or int8.")] = "fp32",
    graph_optimization: Annotated[
        str, typer.Option("--graph-optimization", help="onnxruntime graph optimisation level.")
    ] = "all",
    space: Annotated[str, typer.Option("--space", help="paper or code: which units to measure.")] = "paper",
    agent_token: Annotated[
        str | None, typer.Option("--agent-token", help="Also create an agent token with this name.")
    ] = None,
    exist_ok: Annotated[
        bool, typer.Option("--exist-ok", help="If the team has a target of this name and runtime, show it instead.")
    ] = False,
    server: ServerOpt = None,
    api_key: ApiKeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Register a hardware target (its latency table is then measured by profiler agents)."""
    runtime = {
        "backend": backend,
        "provider": provider,
        "threads": threads,
        "precision": precision,
        "graph_optimization": graph_optimization,
    }
    with connect(server, api_key) as c:
        hw = c.hardware.register(name, kind=kind, runtime=runtime, space=space, exist_ok=exist_ok)
        token = c.agent_tokens.create(hw.id, agent_token) if agent_token else None
        if as_json:
            data = hw.model_dump(mode="json")
            if token:
                data["agent_token"] = token.model_dump(mode="json")
            _echo_json(data)
            return
        con = _console()
        con.print(_hardware_table([hw], f"registered hardware {hw.id}"))
        if token:
            con.print(f"agent token (shown once): [bold]{token.token}[/bold]")
            con.print(f"run on the device: lutnas-agent --server {c.server} --token {token.token}")
        else:
            con.print(f"next: lutnas agents token {hw.id}")


@hardware_app.command("list")
@remote
def hardware_list(
    server: ServerOpt = None,
    api_key: ApiKeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List the team's hardware targets with their latency-table coverage."""
    with connect(server, api_key) as c:
        items = list(c.hardware.list(page_size=200))
    if as_json:
        _echo_json([h.model_dump(mode="json") for h in items])
        return
    _console().print(_hardware_table(items, f"{len(items)} hardware target(s)"))


@hardware_app.command("show")
@remote
def hardware_show(
    hardware_id: Annotated[int, typer.Argument(help="Hardware id.")],
    server: ServerOpt = None,
    api_key: ApiKeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """One hardware target: runtime and latency-table coverage (with a sample of missing units)."""
    with connect(server, api_key) as c:
        hw = c.hardware.get(hardware_id)
        coverage = c.latency.coverage(hardware_id)
    if as_json:
        data = hw.model_dump(mode="json")
        data["coverage"] = coverage.model_dump(mode="json")
        _echo_json(data)
        return
    t = Table(title=f"hardware {hw.id}", show_header=False)
    t.add_row("name", hw.name)
    t.add_row("kind", hw.kind)
    for k, v in hw.runtime.model_dump().items():
        t.add_row(f"runtime.{k}", str(v))
    t.add_row("space", hw.space)
    t.add_row("created (UTC)", _when(hw.created_at))
    t.add_row("coverage", f"{coverage.measured}/{coverage.total} units ({coverage.fraction:.1%})")
    if coverage.missing_sample:
        t.add_row("missing (sample)", "\n".join(coverage.missing_sample[:10]))
    if hw.drift is not None:
        t.add_row("drift", _drift_line(hw.drift))
    _console().print(t)


def _drift_line(d: Drift) -> str:
    if d.speed is None:
        return f"{d.anchors} anchors, round {d.round}: baseline " + ("measured" if d.baseline_at else "being measured")
    seen = f"predictions x {d.applied_scale:.3f}" if d.moved else "within the anchors' noise"
    return f"{d.anchors} anchors, round {d.round}: {d.speed:.3f}x the baseline ({seen})"


# -- supernets ------------------------------------------------------------------------------


# the two spaces differ in the stages the head may read from (tracking/space.py)
_SPACES = {(2, 3): "paper", (1, 2, 3): "code"}


def _supernet_row(s: Supernet) -> list[str]:
    stages = tuple(s.space.get("output_stages") or ()) if isinstance(s.space, dict) else ()
    created = s.created_at.strftime("%Y-%m-%d %H:%M") if s.created_at else "-"
    members = "ensemble of " + ", ".join(map(str, s.members)) if s.members else "-"
    return [str(s.id), s.name, _SPACES.get(stages, "-"), members, created]


def _supernets_table(items: list[Supernet], title: str) -> Table:
    t = Table(title=title)
    for col in ("id", "name", "space", "members", "created (UTC)"):
        t.add_column(col)
    for s in items:
        t.add_row(*_supernet_row(s))
    return t


def _show_new_supernet(sn: Supernet, as_json: bool) -> None:
    """A registered supernet (or ensemble) as JSON, or its row and what to run next."""
    if as_json:
        _echo_json(sn.model_dump(mode="json"))
        return
    _console().print(_supernets_table([sn], f"supernet {sn.id}"))
    typer.echo(f"next: lutnas search submit --supernet {sn.id} --hardware HARDWARE_ID")


@supernets_app.command("register")
@remote
def supernets_register(
    name: Annotated[str, typer.Argument(help="A name for the supernet, e.g. synth-450.")],
    checkpoint: Annotated[Path, typer.Option("--checkpoint", help="Supernet checkpoint (.pt) to upload.")],
    data: Annotated[
        Path, typer.Option("--data", help="Validation data: a GOT-10k-layout folder (packed here) or its .tar.gz.")
    ],
    server_paths: Annotated[
        bool, typer.Option("--server-paths", help="Register paths ON THE SERVER (under its LUTNAS_DATA_ROOTS) "
                           "instead of uploading local files.")
    ] = False,
    exist_ok: Annotated[
        bool, typer.Option("--exist-ok", help="If the team has a supernet of this name, show it instead.")
    ] = False,
    server: ServerOpt = None,
    api_key: ApiKeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Register a supernet: upload a checkpoint and its validation data (or name server paths)."""
    with connect(server, api_key) as c:
        if server_paths:
            sn = c.supernets.register(name, str(checkpoint), str(data), exist_ok=exist_ok)
        else:
            sn = c.supernets.upload(name, checkpoint, data, exist_ok=exist_ok)
    _show_new_supernet(sn, as_json)


@supernets_app.command("ensemble")
@remote
def supernets_ensemble(
    name: Annotated[str, typer.Argument(help="A name for the ensemble, e.g. uniform-1800-x3.")],
    members: Annotated[list[int], typer.Argument(help="The team's supernet ids to average (two or more; the "
                                                 "first lends its weights to exports and its data to scoring).")],
    exist_ok: Annotated[
        bool, typer.Option("--exist-ok", help="If the team has a supernet of this name, show it instead.")
    ] = False,
    server: ServerOpt = None,
    api_key: ApiKeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Register an ensemble of supernets: a search on it ranks with the mean of their scores."""
    with connect(server, api_key) as c:
        sn = c.supernets.ensemble(name, members, exist_ok=exist_ok)
    _show_new_supernet(sn, as_json)


@supernets_app.command("list")
@remote
def supernets_list(server: ServerOpt = None, api_key: ApiKeyOpt = None, as_json: JsonOpt = False) -> None:
    """The team's supernets."""
    with connect(server, api_key) as c:
        items = list(c.supernets.list(page_size=200))
    if as_json:
        _echo_json([s.model_dump(mode="json") for s in items])
        return
    _console().print(_supernets_table(items, f"{len(items)} supernet(s)"))


@supernets_app.command("show")
@remote
def supernets_show(
    supernet_id: Annotated[int, typer.Argument(help="Supernet id.")],
    server: ServerOpt = None,
    api_key: ApiKeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """One supernet and its search space."""
    with connect(server, api_key) as c:
        sn = c.supernets.get(supernet_id)
    if as_json:
        _echo_json(sn.model_dump(mode="json"))
        return
    t = Table(title=f"supernet {sn.id}", show_header=False)
    t.add_row("name", sn.name)
    t.add_row("created (UTC)", _when(sn.created_at))
    for k, v in (sn.space if isinstance(sn.space, dict) else {}).items():
        t.add_row(f"space.{k}", json.dumps(v) if not isinstance(v, str) else v)
    _console().print(t)


# -- agents ---------------------------------------------------------------------------------


@agents_app.callback()
def agents_group() -> None:
    """Profiler-agent tokens on a server."""
    # A callback keeps ``agents`` a group although it has one command (else typer flattens it).


@agents_app.command("token")
@remote
def agents_token(
    hardware_id: Annotated[int, typer.Argument(help="Hardware id the agent measures.")],
    name: Annotated[str, typer.Option("--name", help="A name for the agent.")] = "agent",
    server: ServerOpt = None,
    api_key: ApiKeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a profiler-agent token for a hardware target; prints the token (shown only once)."""
    with connect(server, api_key) as c:
        token = c.agent_tokens.create(hardware_id, name)
        if as_json:
            _echo_json(token.model_dump(mode="json"))
            return
        typer.echo(token.token)  # stdout holds only the token: LUTNAS_AGENT_TOKEN=$(lutnas agents token 1)
        typer.echo(
            f"agent token {token.id} for hardware {token.hardware_id}; on the device run: "
            f"lutnas-agent --server {c.server} --token <token>",
            err=True,
        )


# -- searches -------------------------------------------------------------------------------


def _search_table(info: SearchInfo) -> Table:
    p = info.progress
    t = Table(title=f"search {info.id}", show_header=False)
    t.add_row("status", info.status)
    req = info.request
    if req:
        t.add_row("supernet", str(req.get("supernet_id", "-")))
        t.add_row("hardware", ", ".join(str(h) for h in req.get("hardware_ids", [])))
        objective = str(req.get("objective", "-"))
        if objective == "budget":
            objective += f" ({req.get('budget_ms')} ms on hardware {req.get('budget_hardware_id')})"
        t.add_row("objective", objective)
        t.add_row("population x generations", f"{req.get('population', '-')} x {req.get('generations', '-')}")
        t.add_row("seed", str(req.get("seed", "-")))
    t.add_row("generation", f"{p.generation}/{p.generations} ({p.fraction:.0%})")
    t.add_row("evaluated (cache hits)", f"{p.evaluated} ({p.cache_hits})")
    t.add_row("best score", _fmt(p.best_score, 4))
    t.add_row("front size", str(p.front_size))
    for label, when in (("created", info.created_at), ("started", info.started_at), ("finished", info.finished_at)):
        t.add_row(f"{label} (UTC)", _when(when))
    if info.error:
        t.add_row("error", info.error)
    return t


def _final_check(search: Search) -> None:
    if search.status == SearchStatus.failed:
        raise RemoteCommandError(f"search {search.id} failed: {search.error or 'no reason given'}")
    if search.status == SearchStatus.cancelled:
        raise RemoteCommandError(f"search {search.id} was cancelled")


def _watch(search: Search, poll: float, timeout: float | None) -> Search:
    """Follow a search with a live progress bar until it ends."""
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    columns = (
        TextColumn("[bold]search {task.fields[sid]}[/bold] {task.fields[status]:<9}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("gen {task.fields[gen]}  evaluated {task.fields[evaluated]}  "
                   "best {task.fields[best]}  front {task.fields[front]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task("search", total=1.0, sid=search.id, status="", gen="-", evaluated=0, best="-", front=0)

        def update(s: Search) -> None:
            p = s.progress
            fraction = 1.0 if s.status == SearchStatus.succeeded else min(max(p.fraction, 0.0), 1.0)
            bar.update(
                task,
                completed=fraction,
                status=s.status,
                gen=f"{p.generation}/{p.generations}",
                evaluated=p.evaluated,
                best=_fmt(p.best_score, 4),
                front=p.front_size,
            )

        search.wait(progress=update, poll=poll, timeout=timeout)
    return search


PollOpt = Annotated[float, typer.Option("--poll", min=0.05, help="Seconds between status polls.")]
TimeoutOpt = Annotated[
    float | None, typer.Option("--timeout", min=0.0, help="Give up waiting after this many seconds.")
]
# search submit's job settings; None leaves each to the server's default
BudgetHardwareOpt = Annotated[
    int | None, typer.Option("--budget-hardware", help="Hardware the budget applies to.")
]
PredictorOpt = Annotated[
    bool | None, typer.Option("--predictor/--no-predictor", help="Use the accuracy predictor.")
]
MissingUnitsOpt = Annotated[
    str | None, typer.Option("--missing-units", help="wait or fail when latency units are unmeasured.")
]
LatencyStatOpt = Annotated[
    str | None, typer.Option("--latency-stat", help="Latency statistic: p50 (median) or p90 (tail).")
]


@search_app.command("submit")
@remote
def search_submit(
    supernet: Annotated[int, typer.Option("--supernet", help="Supernet id.")],
    hardware: Annotated[list[int], typer.Option("--hardware", help="Hardware id (repeat for several).")],
    objective: Annotated[str, typer.Option("--objective", help="pareto or budget.")] = "pareto",
    budget_ms: Annotated[float | None, typer.Option("--budget-ms", help="Latency budget (budget objective).")] = None,
    budget_hardware: BudgetHardwareOpt = None,
    population: Annotated[int | None, typer.Option("--population", help="Population size (4..512).")] = None,
    generations: Annotated[int | None, typer.Option("--generations", help="Generations (1..200).")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Random seed.")] = None,
    mode: Annotated[str | None, typer.Option("--mode", help="Validation mode: pairs or sequences.")] = None,
    use_predictor: PredictorOpt = None,
    missing_units: MissingUnitsOpt = None,
    latency_stat: LatencyStatOpt = None,
    watch: Annotated[bool, typer.Option("--watch", help="Follow the job with a progress bar.")] = False,
    poll: PollOpt = 1.0,
    server: ServerOpt = None,
    api_key: ApiKeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Submit a search job (the server validates it; a bad value names its field)."""
    with connect(server, api_key) as c:
        search = c.searches.submit(
            supernet,
            hardware,
            objective,
            budget_ms=budget_ms,
            budget_hardware_id=budget_hardware,
            population=population,
            generations=generations,
            seed=seed,
            mode=mode,
            use_predictor=use_predictor,
            missing_units=missing_units,
            latency_stat=latency_stat,
        )
        _report_submitted(search, watch, poll, as_json)


def _report_submitted(search: Search, watch: bool, poll: float, as_json: bool) -> None:
    """What ``search submit`` prints: the new job, or (``--watch``) its progress and its end."""
    if as_json and not watch:
        _echo_json(search.info.model_dump(mode="json"))
        return
    typer.echo(f"search {search.id} submitted ({search.status})", err=watch)
    if not watch:
        typer.echo(f"follow it with: lutnas search watch {search.id}")
        return
    _watch(search, poll, None)
    if as_json:
        _echo_json(search.info.model_dump(mode="json"))
    else:
        _console().print(_search_table(search.info))
    _final_check(search)


@search_app.command("list")
@remote
def search_list(
    limit: Annotated[int, typer.Option("--limit", min=1, help="Show at most this many (newest first).")] = 20,
    server: ServerOpt = None,
    api_key: ApiKeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The team's searches, newest first."""
    with connect(server, api_key) as c:
        items = []
        for s in c.searches.list(page_size=min(limit, 1000)):
            items.append(s.info)
            if len(items) >= limit:
                break
    if as_json:
        _echo_json([i.model_dump(mode="json") for i in items])
        return
    t = Table(title=f"{len(items)} search(es)")
    for col in ("id", "status", "supernet", "hardware", "objective", "generation", "best score", "created (UTC)"):
        t.add_column(col)
    for i in items:
        t.add_row(
            str(i.id),
            i.status,
            str(i.request.get("supernet_id", "-")),
            ",".join(str(h) for h in i.request.get("hardware_ids", [])),
            str(i.request.get("objective", "-")),
            f"{i.progress.generation}/{i.progress.generations}",
            _fmt(i.progress.best_score, 4),
            i.created_at.strftime("%Y-%m-%d %H:%M") if i.created_at else "-",
        )
    _console().print(t)


@search_app.command("status")
@remote
def search_status(
    search_id: Annotated[int, typer.Argument(help="Search id.")],
    server: ServerOpt = None,
    api_key: ApiKeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Status and progress of a search."""
    with connect(server, api_key) as c:
        info = c.searches.get(search_id).info
    if as_json:
        _echo_json(info.model_dump(mode="json"))
        return
    _console().print(_search_table(info))


@search_app.command("watch")
@remote
def search_watch(
    search_id: Annotated[int, typer.Argument(help="Search id.")],
    poll: PollOpt = 1.0,
    timeout: TimeoutOpt = None,
    server: ServerOpt = None,
    api_key: ApiKeyOpt = None,
) -> None:
    """Follow a search with a live progress bar until it ends (exit 2 if it failed or was cancelled).
    A server that goes away (restart) is waited for up to 2 minutes, each retry noted on stderr."""
    notes = _RetryNotes(logging.WARNING)
    sdk_log = logging.getLogger("lutnas.client")
    sdk_log.addHandler(notes)
    try:
        with connect(server, api_key, retry_for=WATCH_RETRY_FOR_S) as c:
            search = c.searches.get(search_id)
            if search.status not in TERMINAL_STATUSES:
                _watch(search, poll, timeout)
    finally:
        sdk_log.removeHandler(notes)
    _console().print(_search_table(search.info))
    _final_check(search)


@search_app.command("results")
@remote
def search_results(
    search_id: Annotated[int, typer.Argument(help="Search id.")],
    limit: Annotated[int, typer.Option("--limit", min=1, help="Show the top N.")] = 20,
    csv: Annotated[Path | None, typer.Option("--csv", help="Also write ALL results to this CSV file.")] = None,
    server: ServerOpt = None,
    api_key: ApiKeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Ranked architectures of a search (best first)."""
    with connect(server, api_key) as c:
        search = c.searches.get(search_id)
        results = []
        for r in search.results(page_size=min(limit, 1000)):
            results.append(r)
            if len(results) >= limit:
                break
        if csv is not None:
            df = search.results_df()
            df.to_csv(csv, index=False)
            typer.echo(f"wrote {len(df)} results to {csv}", err=True)
    if as_json:
        _echo_json([r.model_dump(mode="json") for r in results])
        return
    rows = []
    for r in results:
        row = r.model_dump(exclude={"latency_ms"})
        row.update({f"latency_ms_{hw}": ms for hw, ms in r.latency_ms.items()})
        rows.append(row)
    latency_cols = sorted({k for row in rows for k in row if k.startswith("latency_ms_")})
    t = Table(title=f"search {search_id}: top {len(rows)}")
    for col in ["rank", "id", "score", *(f"ms @hw {name.removeprefix('latency_ms_')}" for name in latency_cols),
                "MFLOPs", "params (k)", "feasible"]:
        t.add_column(col, no_wrap=True)
    t.add_column("lighttrack", overflow="fold")
    for row in rows:
        flops, params = row.get("flops"), row.get("params")
        t.add_row(
            str(row["rank"]),
            str(row["architecture_id"]),
            _fmt_score(row.get("score"), row.get("score_se"), sep="\n±"),  # se below: keeps the table narrow
            *(_fmt(row.get(name), 2) for name in latency_cols),
            _fmt(flops / 1e6, 1) if isinstance(flops, int | float) else "-",
            _fmt(params / 1e3, 1) if isinstance(params, int | float) else "-",
            _fmt(row.get("feasible")),
            str(row["lighttrack"]),
        )
    _console().print(t)


def _fmt_score(score: Any, se: Any, digits: int = 4, sep: str = " ± ") -> str:
    """``0.5123 ± 0.0110`` (score, standard error), or the score alone when it has none."""
    if not isinstance(score, int | float):
        return "-"
    if not isinstance(se, int | float):
        return f"{score:.{digits}f}"
    return f"{score:.{digits}f}{sep}{se:.{digits}f}"


def _hv_label(front: ParetoFront) -> str:
    """``, hypervolume 0.4123 (normalised; 18.5 score·ms)``: the search's own figure, and the area in
    score x ms where the server sends it (empty without a hypervolume)."""
    if front.hypervolume is None:
        return ""
    area = f"; {front.hypervolume_score_ms:.4g} score·ms" if front.hypervolume_score_ms is not None else ""
    return f", hypervolume {front.hypervolume:.4g} (normalised{area})"


def _plot_front(front: ParetoFront, path: Path, title: str, others: list[tuple[float, float]]) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    if others:
        ax.scatter([o[0] for o in others], [o[1] for o in others], s=10, color="0.75", label="evaluated")
    pts = sorted(front.points, key=lambda p: p.latency_ms)
    if pts:
        ax.step([p.latency_ms for p in pts], [p.score for p in pts], where="post", color="C0", alpha=0.6)
        ax.scatter([p.latency_ms for p in pts], [p.score for p in pts], s=28, color="C0", zorder=3,
                   label="Pareto front")
        bars = [p for p in pts if p.score_se is not None]
        if bars:  # +- 1 standard error
            ax.errorbar([p.latency_ms for p in bars], [p.score for p in bars], yerr=[p.score_se for p in bars],
                        fmt="none", ecolor="C0", elinewidth=0.8, capsize=2, alpha=0.7)
        measured = [p for p in pts if p.measured_ms is not None]
        if measured:  # the closed loop: where each point really ran, joined to what was predicted
            for p in measured:
                ax.plot([p.latency_ms, p.measured_ms], [p.score, p.score], color="C2", lw=0.8, alpha=0.7)
            ax.scatter([p.measured_ms for p in measured], [p.score for p in measured], s=30, marker="x",
                       color=["C3" if p.over_budget else "C2" for p in measured], zorder=4,
                       label="measured on the device")
    if front.budget_ms is not None:
        ax.axvline(front.budget_ms, color="C3", ls="--", lw=0.8, label=f"budget {front.budget_ms:.3g} ms")
    ref = front.reference
    if ref is not None:
        ax.errorbar([ref.latency_ms], [ref.score], yerr=None if ref.score_se is None else [ref.score_se],
                    fmt="D", ms=7, color="C1", mec="k", capsize=3, zorder=4,
                    label=f"{ref.name} {_fmt_score(ref.score, ref.score_se, 3)}")
    ax.set_xlabel(f"latency on hardware {front.hardware_id} (ms)")
    ax.set_ylabel("validation score")
    hv = _hv_label(front)
    ax.set_title(f"{title}{hv}", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


@search_app.command("pareto")
@remote
def search_pareto(
    search_id: Annotated[
        int | None, typer.Argument(help="Search id; omit (with --supernet) for the team-wide front.")
    ] = None,
    hardware: Annotated[
        int | None, typer.Option("--hardware", help="Hardware id (default: the search's first target).")
    ] = None,
    supernet: Annotated[
        int | None, typer.Option("--supernet", help="Supernet id for the team-wide front (no SEARCH_ID).")
    ] = None,
    plot: Annotated[Path | None, typer.Option("--plot", help="Write a PNG plot of the front here.")] = None,
    csv: Annotated[Path | None, typer.Option("--csv", help="Write the front to this CSV file.")] = None,
    server: ServerOpt = None,
    api_key: ApiKeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Pareto front of score vs latency: of one search, or across the team's searches."""
    if search_id is None and (supernet is None or hardware is None):
        raise typer.BadParameter("give SEARCH_ID, or --supernet and --hardware for the team-wide front")
    if search_id is not None and supernet is not None:
        raise typer.BadParameter("--supernet is for the team-wide front; omit it with SEARCH_ID")
    others: list[tuple[float, float]] = []
    with connect(server, api_key) as c:
        if search_id is not None:
            search = c.searches.get(search_id)
            front = search.pareto(hardware)
            title = f"search {search_id}"
            if plot is not None:
                others = _evaluated_cloud(search, str(front.hardware_id))
        else:
            assert supernet is not None and hardware is not None  # type narrowing: checked above  # nosec B101
            front = c.pareto(supernet, hardware)
            title = f"supernet {supernet}, all searches"
    if plot is not None:
        _plot_front(front, plot, title, others)
        typer.echo(f"wrote plot {plot}", err=True)
    if csv is not None:
        import pandas as pd

        pd.DataFrame([p.model_dump() for p in front.points]).to_csv(csv, index=False)
        typer.echo(f"wrote {len(front.points)} points to {csv}", err=True)
    if as_json:
        _echo_json(front.model_dump(mode="json"))
        return
    _print_front(front, title)


def _evaluated_cloud(search: Search, hardware_key: str, cap: int = 5000) -> list[tuple[float, float]]:
    """(latency, score) of everything the search evaluated: the plot's grey cloud, capped for big searches."""
    out = []
    for i, r in enumerate(search.results(page_size=1000)):
        if i >= cap:
            break
        ms = r.latency_ms.get(hardware_key)
        if ms is not None and r.score is not None:
            out.append((ms, r.score))
    return out


def _print_front(front: ParetoFront, title: str) -> None:
    """The front as a table, LightTrack-Mobile's reference point last."""
    hv = _hv_label(front)
    budget = f", budget {front.budget_ms:.3g} ms" if front.budget_ms is not None else ""
    t = Table(title=f"{title}: Pareto front on hardware {front.hardware_id} ({len(front.points)} points, "
                    f"{front.measured} measured on the device{budget}{hv})")
    for col in ("", "latency ms", "measured ms", "score ± se", "id"):
        t.add_column(col, no_wrap=True)
    t.add_column("lighttrack", overflow="fold")
    for p in sorted(front.points, key=lambda p: p.latency_ms):
        # "!" marks a point whose measurement breaks the search's budget
        t.add_row("!" if p.over_budget else "", _fmt(p.latency_ms, 2), _fmt(p.measured_ms, 2),
                  _fmt_score(p.score, p.score_se), p.architecture_id, p.lighttrack,
                  style="red" if p.over_budget else None)
    ref = front.reference
    if ref is not None:
        t.add_row("ref", _fmt(ref.latency_ms, 2), "", _fmt_score(ref.score, ref.score_se), ref.architecture_id,
                  ref.lighttrack, style="yellow")
    console = _console()
    console.print(t)
    if ref is not None:
        console.print(f"ref = {ref.name} (reference): score {_fmt_score(ref.score, ref.score_se)} at "
                      f"{_fmt(ref.latency_ms, 2)} ms on hardware {front.hardware_id}", soft_wrap=True)
    else:
        console.print("no LightTrack-Mobile reference point (searches finished before it was recorded)",
                      soft_wrap=True)


@search_app.command("export")
@remote
def search_export(
    search_id: Annotated[int, typer.Argument(help="Search id (gives the supernet and the ranking).")],
    rank: Annotated[int, typer.Option("--rank", min=1, help="Export the architecture at this rank.")] = 1,
    arch: Annotated[
        str | None, typer.Option("--arch", help="Export this architecture id instead of --rank.")
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="lighttrack, json or onnx.")] = "onnx",
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Output directory (default: stdout for lighttrack/json, ./ARCH_ID/ for onnx)."),
    ] = None,
    server: ServerOpt = None,
    api_key: ApiKeyOpt = None,
) -> None:
    """Export an architecture of a search: LightTrack string, JSON, or ONNX with inherited weights."""
    if fmt not in ("lighttrack", "json", "onnx"):
        raise typer.BadParameter(f"--format must be lighttrack, json or onnx, not {fmt!r}")
    with connect(server, api_key) as c:
        search = c.searches.get(search_id)
        if arch is None:
            chosen = None
            for r in search.results(page_size=min(rank, 1000)):
                if r.rank == rank:
                    chosen = r
                    break
                if r.rank > rank:
                    break
            if chosen is None:
                raise RemoteCommandError(f"search {search_id} has no result at rank {rank} (status {search.status})")
            arch = chosen.architecture_id
        if fmt == "onnx" and out is None:
            out = Path(arch)
        if out is None:
            data = c.architectures.export(arch, fmt, search.supernet_id)  # type: ignore[arg-type]
            sys.stdout.write(data.decode().rstrip("\n") + "\n")
            return
        written = c.architectures.export(arch, fmt, search.supernet_id, out)  # type: ignore[arg-type]
    for path in written.values():
        typer.echo(f"wrote {path}" + (f" ({os.path.getsize(path)} bytes)" if fmt == "onnx" else ""))


@search_app.command("cancel")
@remote
def search_cancel(
    search_id: Annotated[int, typer.Argument(help="Search id.")],
    server: ServerOpt = None,
    api_key: ApiKeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Cancel a queued or running search."""
    with connect(server, api_key) as c:
        search = c.searches.cancel(search_id)
    if as_json:
        _echo_json(search.info.model_dump(mode="json"))
        return
    typer.echo(f"search {search.id}: {search.status}")
