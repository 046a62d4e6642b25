"""FastAPI application factory.

``create_app(settings)`` builds the app over one engine; ``migrate=True`` (the default) brings
the schema to the newest Alembic revision at startup, and ``worker=True`` runs an embedded job
worker thread (the one-machine default of ``lutnas serve``).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import anyio.to_thread
from fastapi import FastAPI
from fastapi.routing import APIRoute

from server import problems
from server.db import create_engine_for, make_sessionmaker
from server.settings import Settings

log = logging.getLogger("lutnas.server")


def create_app(settings: Settings | None = None, *, migrate: bool = True, worker: bool = False) -> FastAPI:
    settings = settings or Settings.from_env()
    engine = create_engine_for(settings.database_url)
    if migrate:
        from server.migrate import upgrade

        upgrade(engine)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Sync endpoints are short, CPU-bound Python: 16 clients on anyio's default 40 threads
        # fought over the GIL (results pages, 2 processes: p99 174 ms with 40, 96 ms with 4;
        # docs/service.md).
        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.api_threads
        thread = None
        if worker:
            from server.worker import Worker

            thread = Worker(app.state.sessionmaker, settings, name="embedded").start_thread()
        try:
            yield
        finally:
            if thread is not None:
                thread.stop()
            engine.dispose()

    app = FastAPI(title="lutnas", version="1", lifespan=lifespan,
                  description="Hardware-aware NAS for lightweight trackers (docs/api.md).")
    app.state.settings = settings
    app.state.engine = engine
    # Reads that need no transaction (hot GET endpoints): same pool, autocommit.
    app.state.read_engine = engine.execution_options(isolation_level="AUTOCOMMIT")
    app.state.sessionmaker = make_sessionmaker(engine)
    app.state.heavy_limiter = anyio.CapacityLimiter(settings.api_heavy_threads)  # deps.run_heavy
    problems.install(app)

    from server.routes import (
        agent,
        architectures,
        hardware,
        latency,
        pareto,
        searches,
        supernets,
        teams,
    )

    for module in (teams, hardware, agent, latency, supernets, searches, architectures, pareto):
        app.include_router(module.router)
    app.include_router(supernets.admin_router)
    from server.ui.routes import router as ui_router

    app.include_router(ui_router)  # the web dashboard at /ui (and / redirects there)
    for route in app.routes:  # operation ids are the function names given in docs/api.md
        if isinstance(route, APIRoute) and route.operation_id is None:
            route.operation_id = route.name
    return app



def create_api_process_app() -> FastAPI:
    """App factory of one of ``lutnas serve --workers N``'s processes: settings from the
    environment, schema already migrated by the supervisor, no job worker."""
    return create_app(Settings.from_env(), migrate=False, worker=False)
