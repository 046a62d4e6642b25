"""API keys and agent tokens: generated once, stored as sha256, looked up per request."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from typing import Annotated

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from server.deps import SessionDep
from server.models import AgentToken, ApiKey, Hardware, Team, UiSession, utcnow
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


def rotate_team_key(session: Session, team_name: str, keep_old: bool = False) -> str:
    """A new API key for ``team_name`` (returned in clear, once); the team's other keys are
    revoked unless ``keep_old`` (then revoke them later, once every client has the new one)."""
    team = session.scalar(select(Team).where(Team.name == team_name))
    if team is None:
        raise Problem(404, f"team {team_name!r} not found", "team")
    if not keep_old:
        _revoke_team(session, team.id)
    key = new_secret(TEAM_PREFIX)
    session.add(ApiKey(team_id=team.id, key_hash=hash_secret(key), prefix=key[:8]))
    session.flush()
    return key


def rotate_agent_token(session: Session, hardware_id: int, name: str = "agent", keep_old: bool = False) -> str:
    """A new agent token for hardware ``hardware_id``; its other tokens are revoked unless
    ``keep_old``. Units leased under a revoked token go back to the pool when their lease ends."""
    if session.get(Hardware, hardware_id) is None:
        raise Problem(404, f"hardware {hardware_id} not found", "hardware")
    if not keep_old:
        session.execute(delete(AgentToken).where(AgentToken.hardware_id == hardware_id))
    token = new_secret(AGENT_PREFIX)
    session.add(AgentToken(hardware_id=hardware_id, name=name, token_hash=hash_secret(token)))
    session.flush()
    return token


def revoke_secret(session: Session, secret: str) -> str:
    """Revoke one team API key or agent token given in clear; says what it was."""
    digest = hash_secret(secret.strip())
    if secret.startswith(TEAM_PREFIX):
        team = _team_of_key(session, digest)
        if team is None or not session.execute(delete(ApiKey).where(ApiKey.key_hash == digest)).rowcount:  # type: ignore[attr-defined]
            raise Problem(404, "no such API key (already revoked?)", "key")
        return f"API key of team {team.name!r}"
    if secret.startswith(AGENT_PREFIX):
        hw_id = session.scalar(select(AgentToken.hardware_id).where(AgentToken.token_hash == digest))
        if hw_id is None:
            raise Problem(404, "no such agent token (already revoked?)", "key")
        session.execute(delete(AgentToken).where(AgentToken.token_hash == digest))
        return f"agent token of hardware {hw_id}"
    raise Problem(422, f"not a lutnas key: team API keys start with {TEAM_PREFIX}, agent tokens with {AGENT_PREFIX}",
                  "key")


def _revoke_team(session: Session, team_id: int) -> int:
    # dashboard sessions were opened with one of these keys: they end with them
    session.execute(delete(UiSession).where(UiSession.team_id == team_id))
    return int(session.execute(delete(ApiKey).where(ApiKey.team_id == team_id)).rowcount or 0)  # type: ignore[attr-defined]


def revoke_all(session: Session, team_name: str | None = None, hardware_id: int | None = None) -> int:
    """Revoke every API key of a team, or every agent token of a hardware target; how many."""
    if team_name is not None:
        team = session.scalar(select(Team).where(Team.name == team_name))
        if team is None:
            raise Problem(404, f"team {team_name!r} not found", "team")
        return _revoke_team(session, team.id)
    else:
        if session.get(Hardware, hardware_id) is None:
            raise Problem(404, f"hardware {hardware_id} not found", "hardware")
        res = session.execute(delete(AgentToken).where(AgentToken.hardware_id == hardware_id))
    return int(res.rowcount or 0)  # type: ignore[attr-defined]


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Problem(401, "missing or malformed Authorization header (expected 'Bearer <key>')",
                      headers={"WWW-Authenticate": "Bearer"})
    return token.strip()


# key hash -> (expiry on the monotonic clock, team id, team name). Saves a query per request; kept
# short because `lutnas admin revoke-key` runs in another process: a revoked key stops working in
# every API process within this many seconds.
_TEAM_CACHE: dict[str, tuple[float, int, str]] = {}
_TEAM_CACHE_SECONDS = 5.0


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
    team = session.scalar(select(Team).join(ApiKey, ApiKey.team_id == Team.id).where(ApiKey.key_hash == digest))
    release(session)
    return team


def release(session: Session) -> None:
    """End a dependency's read transaction, returning its connection to the pool. A dependency
    runs in a thread of its own, and the request then queues for a route thread: holding the
    connection meanwhile let 16+ concurrent first requests take every pooled connection while the
    threads that would finish them waited for one (requests stuck 30 s, then 500 on the pool
    timeout; bench_api --mixed). Loaded objects stay usable (the sessions do not expire on commit)."""
    session.commit()


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
    release(session)
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
