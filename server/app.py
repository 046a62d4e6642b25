"""FastAPI application factory.

``create_app(settings)`` builds the app over one engine; ``migrate=True`` (the default) brings
the schema to the newest Alembic revision at startup, and ``worker=True`` runs an embedded job
worker thread (the one-machine default of ``lutnas serve``).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import anyio
import anyio.to_thread
from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute
from sqlalchemy import Engine

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
    app = FastAPI(title="lutnas", version="1", lifespan=_lifespan(settings, engine, worker),
                  description="Hardware-aware NAS for lightweight trackers (docs/api.md).")
    app.state.settings = settings
    app.state.engine = engine
    # Reads that need no transaction (hot GET endpoints): same pool, autocommit.
    app.state.read_engine = engine.execution_options(isolation_level="AUTOCOMMIT")
    app.state.sessionmaker = make_sessionmaker(engine)
    app.state.heavy_limiter = anyio.CapacityLimiter(settings.api_heavy_threads)  # deps.run_heavy
    problems.install(app)
    routers = _include_routers(app)
    document_errors(app, routers)
    return app


Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


def _lifespan(settings: Settings, engine: Engine, worker: bool) -> Lifespan:
    """The app's lifespan: API thread limit, the embedded worker if asked for, engine disposal."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Sync endpoints are short, CPU-bound Python: 16 clients on anyio's default 40 threads
        # fought over the GIL (results pages, 2 processes: p99 174 ms with 40, 96 ms with 4;
        # docs/service.md).
        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.api_threads
        thread = None
        if worker:
            from server.jobs.worker import Worker

            thread = Worker(app.state.sessionmaker, settings, name="embedded").start_thread()
        try:
            yield
        finally:
            if thread is not None:
                thread.stop()
            engine.dispose()

    return lifespan


def _include_routers(app: FastAPI) -> list[APIRouter]:
    """Mount the REST routers and the dashboard; the REST routers (whose errors are documented)."""
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

    routers = [m.router for m in (teams, hardware, agent, latency, supernets, searches, architectures, pareto)]
    routers.append(supernets.admin_router)
    for router in routers:
        app.include_router(router)
    from server.ui.routes import router as ui_router

    app.include_router(ui_router)  # the web dashboard at /ui (and / redirects there)
    for route in app.routes:  # operation ids are the function names given in docs/api.md
        if isinstance(route, APIRoute) and route.operation_id is None:
            route.operation_id = route.name
    return routers


_PROBLEM_REF = {"$ref": "#/components/schemas/ProblemDetails"}
_SECURITY = {
    "teamKey": {"type": "http", "scheme": "bearer", "description": "a team's API key (lnt_...)"},
    "agentToken": {"type": "http", "scheme": "bearer", "description": "a profiler agent's token (lna_...)"},
    "adminToken": {"type": "http", "scheme": "bearer", "description": "the server's LUTNAS_ADMIN_TOKEN"},
}


# OpenAPI links: what a created resource's id opens next (clients and stateful fuzzers follow them).
_LINKS = {
    "register_hardware": ("201", "hardware_id", ["get_hardware", "create_agent_token", "list_latency_entries",
                                                 "get_coverage", "export_latency_table", "predict_latency"]),
    "register_supernet": ("201", "supernet_id", ["get_supernet"]),
    "register_supernet_ensemble": ("201", "supernet_id", ["get_supernet"]),
    "submit_search": ("202", "search_id", ["get_search", "cancel_search", "list_results", "get_search_pareto"]),
}


def _calls(dependant: Any) -> set[Any]:
    out = set()
    for dep in dependant.dependencies:
        out.add(dep.call)
        out |= _calls(dep)
    return out


def document_errors(app: FastAPI, routers: list[APIRouter]) -> None:
    """Declare, on every operation, the error answers it really gives, all as problem+json
    (ProblemDetails): 401 where a key is needed (and 404 on admin routes, which do not exist
    without an admin token), 404 where the path names a resource, 400 for a forged page token,
    422 for any invalid parameter or body, plus what a route declares itself
    (``problems.documented(409)``). The one place that keeps the document truthful; the
    schemathesis test (tests/server/test_schemathesis.py) holds it to that."""
    scheme_of = _schemes(routers)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _openapi(app, scheme_of)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _schemes(routers: list[APIRouter]) -> dict[str, str]:
    """Operation id -> the security scheme of the key it needs (operations needing none left out)."""
    from server.auth import current_agent, current_team, require_admin

    scheme_of: dict[str, str] = {}
    for router in routers:
        for route in router.routes:
            if isinstance(route, APIRoute) and route.operation_id:
                calls = _calls(route.dependant)
                for call, scheme in ((require_admin, "adminToken"), (current_agent, "agentToken"),
                                     (current_team, "teamKey")):
                    if call in calls:
                        scheme_of[route.operation_id] = scheme
                        break
    return scheme_of


def _openapi(app: FastAPI, scheme_of: dict[str, str]) -> dict[str, Any]:
    """FastAPI's document with ProblemDetails, the security schemes and every operation's errors."""
    from fastapi.openapi.utils import get_openapi

    from server.schemas import ProblemDetails

    spec = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    components = spec.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas["ProblemDetails"] = ProblemDetails.model_json_schema()
    for name in ("HTTPValidationError", "ValidationError"):  # replaced by ProblemDetails
        schemas.pop(name, None)
    components["securitySchemes"] = _SECURITY
    for item in spec["paths"].values():
        for op in item.values():
            _document_operation(op, scheme_of.get(op.get("operationId", "")))
    return spec


def _error_statuses(op: dict[str, Any], scheme: str | None) -> set[int]:
    """The 4xx answers operation ``op`` gives: those it declares and those its inputs imply."""
    statuses = {int(s) for s in op.get("responses", {}) if s.isdigit() and int(s) >= 400}
    params = op.get("parameters", [])
    if scheme:
        statuses.add(401)
    if scheme == "adminToken" or any(p["in"] == "path" for p in params):
        statuses.add(404)
    if any(p["name"] == "page_token" for p in params):
        statuses.add(400)
    if params or "requestBody" in op:
        statuses.add(422)
    return statuses


def _document_operation(op: dict[str, Any], scheme: str | None) -> None:
    """Add ``op``'s security, its error answers as problem+json, and its links."""
    responses = op.setdefault("responses", {})
    if scheme:
        op["security"] = [{scheme: []}]
    for status in sorted(_error_statuses(op, scheme)):
        entry = responses.setdefault(str(status), {})
        if not entry.get("description") or status == 422:
            entry["description"] = problems.title(status)
        entry["content"] = {problems.MEDIA_TYPE: {"schema": _PROBLEM_REF}}
    op["responses"] = dict(sorted(responses.items()))
    if op.get("operationId") in _LINKS:
        status_code, param, targets = _LINKS[op["operationId"]]
        responses[status_code]["links"] = {
            target: {"operationId": target, "parameters": {param: "$response.body#/id"}}
            for target in targets}


def create_api_process_app() -> FastAPI:
    """App factory of one of ``lutnas serve --workers N``'s processes: settings from the
    environment, schema already migrated by the supervisor, no job worker."""
    return create_app(Settings.from_env(), migrate=False, worker=False)
