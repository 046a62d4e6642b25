"""Request dependencies: the database session and the service settings."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any, TypeVar

import anyio.to_thread
from fastapi import Depends, Request
from sqlalchemy.orm import Session

from server.settings import Settings


async def get_session(request: Request) -> AsyncIterator[Session]:
    """A session per request. Async on purpose: creating it does no I/O (it connects on first
    use, in the route's worker thread) and closing only returns the connection to the pool, so
    this saves two thread-pool hops per request."""
    session = request.app.state.sessionmaker()
    try:
        yield session
    finally:
        session.close()


T = TypeVar("T")


async def run_heavy(request: Request, fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` on the process's small pool for slow work (torch exports, upload parsing):
    ordinary requests run on a pool of only ``api_threads`` threads (CPU-bound Python gains
    nothing from more), and a seconds-long export must not hold one of them."""
    return await anyio.to_thread.run_sync(fn, *args, limiter=request.app.state.heavy_limiter)


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


SessionDep = Annotated[Session, Depends(get_session)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
