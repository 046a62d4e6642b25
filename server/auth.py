"""API keys and agent tokens: generated once, stored as sha256, looked up per request."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from typing import Annotated

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from server.deps import SessionDep
from server.models import AgentToken, ApiKey, Hardware, Team, utcnow
from server.problems import Problem

TEAM_PREFIX = "lnt_"
AGENT_PREFIX = "lna_"


def new_secret(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_team(session: Session, name: str) -> tuple[Team, str]:
    """A new team and its first API key (returned in clear, once)."""
    if session.scalar(select(Team).where(Team.name == name)) is not None:
        raise Problem(409, f"team {name!r} already exists", "name")
    team = Team(name=name)
    session.add(team)
    session.flush()
    key = new_secret(TEAM_PREFIX)
    session.add(ApiKey(team_id=team.id, key_hash=hash_secret(key), prefix=key[:8]))
    session.flush()
    return team, key


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Problem(401, "missing or malformed Authorization header (expected 'Bearer <key>')",
                      headers={"WWW-Authenticate": "Bearer"})
    return token.strip()


# key hash -> (expiry on the monotonic clock, team id, team name). Keys are never revoked or
# re-assigned through the API, so a short-lived cache only saves a query per request.
_TEAM_CACHE: dict[str, tuple[float, int, str]] = {}
_TEAM_CACHE_SECONDS = 30.0


async def current_team(request: Request, session: SessionDep) -> Team:
    """The team of the request's API key. Async so that a cached key costs no thread-pool hop
    (the hot path of every team endpoint); a cache miss looks the key up in a worker thread."""
    token = _bearer(request)
    if not token.startswith(TEAM_PREFIX):
        raise Problem(401, "not a team API key", headers={"WWW-Authenticate": "Bearer"})
    digest = hash_secret(token)
    hit = _TEAM_CACHE.get(digest)
    if hit is not None and hit[0] > time.monotonic():
        return Team(id=hit[1], name=hit[2])  # transient: routes read id and name only
    team = await run_in_threadpool(_team_of_key, session, digest)
    if team is None:
        raise Problem(401, "unknown API key", headers={"WWW-Authenticate": "Bearer"})
    if len(_TEAM_CACHE) > 10_000:
        _TEAM_CACHE.clear()
    _TEAM_CACHE[digest] = (time.monotonic() + _TEAM_CACHE_SECONDS, team.id, team.name)
    return team


def _team_of_key(session: Session, digest: str) -> Team | None:
    return session.scalar(select(Team).join(ApiKey, ApiKey.team_id == Team.id).where(ApiKey.key_hash == digest))


# An agent's last contact (the dashboard's "last heartbeat"), stamped at most this often per
# agent and process, in a short transaction of its own before the route's work. The in-memory
# throttle matters on SQLite: an UPDATE takes the database's write lock even when it changes
# nothing, so stamping on every request slowed 8 agents leasing at once threefold; and the stamp
# runs in a fresh transaction because a read transaction cannot upgrade to a write while another
# writer waits (SQLite answers 'database is locked' at once).
_SEEN_EVERY = 5.0
_SEEN: dict[str, float] = {}


def current_agent(request: Request, session: SessionDep) -> tuple[AgentToken, Hardware]:
    token = _bearer(request)
    if not token.startswith(AGENT_PREFIX):
        raise Problem(401, "not an agent token", headers={"WWW-Authenticate": "Bearer"})
    digest = hash_secret(token)
    row = session.execute(
        select(AgentToken, Hardware).join(Hardware, Hardware.id == AgentToken.hardware_id)
        .where(AgentToken.token_hash == digest)).first()
    if row is None:
        raise Problem(401, "unknown agent token", headers={"WWW-Authenticate": "Bearer"})
    now = time.monotonic()
    if _SEEN.get(digest, -_SEEN_EVERY) + _SEEN_EVERY <= now:  # known tokens only: no writes for strangers
        if len(_SEEN) > 10_000:
            _SEEN.clear()
        _SEEN[digest] = now
        session.commit()  # end the read transaction: the stamp starts a write transaction of its own
        session.execute(update(AgentToken).where(AgentToken.id == row[0].id).values(last_seen_at=utcnow())
                        .execution_options(synchronize_session=False))
        session.commit()
    return row[0], row[1]


def require_admin(request: Request) -> None:
    admin = request.app.state.settings.admin_token
    if not admin:
        raise Problem(404, "no such resource")  # admin endpoints do not exist without a token
    token = _bearer(request)
    if not hmac.compare_digest(token, admin):
        raise Problem(401, "wrong admin token", headers={"WWW-Authenticate": "Bearer"})


TeamDep = Annotated[Team, Depends(current_team)]
AgentDep = Annotated[tuple[AgentToken, Hardware], Depends(current_agent)]
AdminDep = Annotated[None, Depends(require_admin)]
