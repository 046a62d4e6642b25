"""Request dependencies: the database session and the service settings."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

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


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


SessionDep = Annotated[Session, Depends(get_session)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
