"""Commands of the server package: ``lutnas serve``, ``lutnas worker``, ``lutnas admin``."""

from __future__ import annotations

import logging
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import typer

serve_app = typer.Typer(help="Run the REST API (with an embedded worker).")
worker_app = typer.Typer(help="Run a search-job worker.")
admin_app = typer.Typer(help="Administration: teams, key rotation and revocation, database migrations.", no_args_is_help=True)

DbOption = typer.Option(None, "--database-url", help="database URL (default: $LUTNAS_DATABASE_URL or "
                        "a SQLite file under ~/.lutnas/)")


def _settings(database_url: str | None) -> Any:
    from pydantic import ValidationError

    from server.settings import Settings

    try:
        return Settings.from_env(database_url=database_url)
    except ValidationError as e:  # one line for the user, naming the setting
        err = e.errors()[0]
        name = ".".join(str(p) for p in err["loc"])
        raise ValueError(f"bad configuration: LUTNAS_{name.upper()}: {err['msg']}") from None


@contextmanager
def _database_errors(url: str) -> Iterator[None]:
    """Database trouble (unreachable server, unknown dialect) as one line, not a traceback."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, SQLAlchemyError

    try:
        yield
    except (SQLAlchemyError, ArgumentError) as e:
        try:
            shown = make_url(url).render_as_string(hide_password=True)
        except ArgumentError:
            shown = url
        detail = str(getattr(e, "orig", None) or e).strip().splitlines()[0]
        raise ValueError(f"database {shown}: {detail}") from None


def _logging() -> dict[str, Any]:
    """Logging from LUTNAS_LOG_FORMAT / LUTNAS_LOG_LEVEL (server/logs.py): polling at DEBUG."""
    from server.logs import configure

    return configure()


@serve_app.command()
def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="address to listen on"),
    port: int = typer.Option(8000, "--port", min=1, max=65535, help="port to listen on"),
    workers: int = typer.Option(1, "--workers", min=1, max=64, help="API processes (one job worker "
                                "runs beside them unless --no-worker)"),
    no_worker: bool = typer.Option(False, "--no-worker", help="do not run the embedded job worker"),
    access_log: bool = typer.Option(True, "--access-log/--no-access-log", help="log every request"),
    database_url: str | None = DbOption,
) -> None:
    """Serve the API (migrating the database first) with an embedded search worker."""
    import os

    import uvicorn

    from server.app import create_app

    log_config = _logging()
    log_level = log_config["root"]["level"].lower()
    settings = _settings(database_url)
    if workers == 1:
        with _database_errors(settings.database_url):
            app = create_app(settings, worker=not no_worker)
        uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=access_log, log_config=log_config)
        return
    # Several API processes: migrate once here, let each process build its app from the
    # environment (no migration, no worker), and run the one job worker in this supervisor.
    from server.db import create_engine_for
    from server.migrate import upgrade

    with _database_errors(settings.database_url):
        engine = create_engine_for(settings.database_url)
        upgrade(engine)
    os.environ["LUTNAS_DATABASE_URL"] = settings.database_url
    job_worker = None
    if not no_worker:
        from server.db import make_sessionmaker
        from server.jobs.worker import Worker

        job_worker = Worker(make_sessionmaker(engine), settings, name="embedded").start_thread()
    try:
        uvicorn.run("server.app:create_api_process_app", factory=True, host=host, port=port, workers=workers,
                    log_level=log_level, access_log=access_log, log_config=log_config)
    finally:
        if job_worker is not None:
            job_worker.stop()
        engine.dispose()


@worker_app.command()
def worker(
    database_url: str | None = DbOption,
    once: bool = typer.Option(False, "--once", help="take at most one job, then exit"),
) -> None:
    """Claim and run queued search jobs until SIGTERM (the current job goes back to the queue
    at the next evaluation-batch boundary and resumes from its last finished generation)."""
    from server.db import create_engine_for, make_sessionmaker
    from server.jobs.worker import Worker
    from server.migrate import upgrade

    _logging()
    settings = _settings(database_url)
    with _database_errors(settings.database_url):
        engine = create_engine_for(settings.database_url)
        upgrade(engine)
    w = Worker(make_sessionmaker(engine), settings, name="cli")

    def _stop(signum: int, _frame: Any) -> None:
        logging.getLogger("lutnas.worker").info("signal %s: stopping after the current batch", signum)
        w.stop_event.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    if once:
        w.run_once()
    else:
        w.run_forever()
    engine.dispose()


@admin_app.command("create-team")
def create_team(name: str = typer.Argument(..., help="team name"), database_url: str | None = DbOption) -> None:
    """Create a team and print its API key (shown only this once)."""
    from server.auth import create_team as _create
    from server.db import create_engine_for, make_sessionmaker, session_scope
    from server.migrate import upgrade
    from server.problems import Problem
    from server.schemas import TeamCreate

    try:
        TeamCreate(name=name)
    except Exception:  # noqa: BLE001
        raise typer.BadParameter("team names are letters, digits, '_', '.', '-' (1..128)", param_hint="NAME") from None
    settings = _settings(database_url)
    with _database_errors(settings.database_url):
        engine = create_engine_for(settings.database_url)
        upgrade(engine)
        try:
            with session_scope(make_sessionmaker(engine)) as s:
                team, key = _create(s, name)
        except Problem as e:
            raise ValueError(e.detail) from None
        finally:
            engine.dispose()
    typer.echo(f"team {team.id} {team.name}")
    typer.echo(key)


@admin_app.command("migrate")
def migrate(database_url: str | None = DbOption) -> None:
    """Bring the database schema to the newest version shipped with this package."""
    from server.db import create_engine_for
    from server.migrate import current_revision, upgrade

    settings = _settings(database_url)
    with _database_errors(settings.database_url):
        engine = create_engine_for(settings.database_url)
        upgrade(engine)
        typer.echo(f"database at revision {current_revision(engine)}")
        engine.dispose()


@contextmanager
def _admin_session(database_url: str | None) -> Iterator[Any]:
    """A migrated database's session for one admin command (committed when the command returns)."""
    from server.db import create_engine_for, make_sessionmaker, session_scope
    from server.migrate import upgrade

    settings = _settings(database_url)
    with _database_errors(settings.database_url):
        engine = create_engine_for(settings.database_url)
        try:
            upgrade(engine)
            with session_scope(make_sessionmaker(engine)) as s:
                yield s
        finally:
            engine.dispose()


def _one_target(team: str | None, hardware: int | None) -> None:
    if (team is None) == (hardware is None):
        raise typer.BadParameter("name exactly one of --team (API keys) or --hardware (agent tokens)",
                                 param_hint="--team/--hardware")


@admin_app.command("rotate-key")
def rotate_key(
    team: str | None = typer.Option(None, "--team", help="a new API key for this team"),
    hardware: int | None = typer.Option(None, "--hardware", min=1, max=2**31 - 1,
                                        help="a new agent token for this hardware id"),
    name: str = typer.Option("agent", "--name", help="name of the new agent token"),
    keep_old: bool = typer.Option(False, "--keep-old", help="leave the old keys valid (revoke them later with "
                                  "revoke-key once every client has the new one)"),
    database_url: str | None = DbOption,
) -> None:
    """Issue a new team API key or agent token and revoke the old ones; prints the new secret
    (shown only this once). Team keys cached by a running server stop working within 5 s."""
    from server.auth import rotate_agent_token, rotate_team_key
    from server.problems import Problem

    _one_target(team, hardware)
    try:
        with _admin_session(database_url) as s:
            secret = (rotate_team_key(s, team, keep_old) if team is not None
                      else rotate_agent_token(s, int(hardware or 0), name, keep_old))
    except Problem as e:
        raise ValueError(e.detail) from None
    what = f"team {team}" if team is not None else f"hardware {hardware}"
    typer.echo(f"new {'API key' if team is not None else 'agent token'} of {what}"
               f"{'' if keep_old else '; the old ones are revoked'}", err=True)
    typer.echo(secret)


@admin_app.command("revoke-key")
def revoke_key(
    key: str | None = typer.Argument(None, help="the team API key (lnt_...) or agent token (lna_...) to revoke; "
                                     "read from stdin when '-'"),
    team: str | None = typer.Option(None, "--team", help="revoke every API key of this team"),
    hardware: int | None = typer.Option(None, "--hardware", min=1, max=2**31 - 1,
                                        help="revoke every agent token of this hardware id"),
    database_url: str | None = DbOption,
) -> None:
    """Revoke one key (given in clear), or all keys of a team or agent tokens of a hardware target."""
    import sys

    from server.auth import revoke_all, revoke_secret
    from server.problems import Problem

    if key is not None and (team is not None or hardware is not None):
        raise typer.BadParameter("give a KEY or --team/--hardware, not both", param_hint="KEY")
    if key is None:
        _one_target(team, hardware)
    elif key == "-":
        key = sys.stdin.readline().strip()
    try:
        with _admin_session(database_url) as s:
            if key is not None:
                typer.echo(f"revoked the {revoke_secret(s, key)}")
            else:
                n = revoke_all(s, team, hardware)
                typer.echo(f"revoked {n} {'API key' if team is not None else 'agent token'}{'' if n == 1 else 's'} of "
                           f"{'team ' + str(team) if team is not None else 'hardware ' + str(hardware)}")
    except Problem as e:
        raise ValueError(e.detail) from None
