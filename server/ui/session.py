"""Dashboard sign-in: a team API key exchanged for a server-side session held in a cookie.

The cookie carries a random token; the database keeps only its sha256 (``ui_sessions``), so a
database dump opens no session, and signing out deletes the row (the cookie is then worthless
even if kept). The cookie is HttpOnly (no script reads it), SameSite=Strict (no other site's
page sends it) and scoped to ``/ui``. State-changing forms (cancel, sign out) also carry a
per-session CSRF token derived from the session token, checked in constant time.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from fastapi import Request
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from server.auth import TEAM_PREFIX, hash_secret
from server.models import ApiKey, Team, UiSession, utcnow

COOKIE = "lutnas_session"
COOKIE_PATH = "/ui"
LIFETIME = dt.timedelta(hours=12)


class SignInError(Exception):
    """A key that may not sign in; the message is what the page shows."""


class NotSignedIn(Exception):
    """No valid session on a page request: the page answers with the sign-in form."""


@dataclass(frozen=True)
class UiUser:
    """The signed-in team of a dashboard request."""

    team: Team
    csrf: str


def csrf_of(token: str) -> str:
    # Derived, not stored: only the holder of the session cookie can compute it.
    return hashlib.sha256(b"lutnas-ui-csrf:" + token.encode()).hexdigest()[:32]


def sign_in(session: Session, api_key: str) -> tuple[Team, str]:
    """The team of ``api_key`` and a new session token. Only team API keys sign in: agent
    tokens and the admin token are refused with the same message as an unknown key."""
    key = api_key.strip()
    if not key:
        raise SignInError("enter your team's API key")
    team = None
    if key.startswith(TEAM_PREFIX):
        team = session.scalar(select(Team).join(ApiKey, ApiKey.team_id == Team.id)
                              .where(ApiKey.key_hash == hash_secret(key)))
    if team is None:
        raise SignInError("that is not a team API key this server knows (agent and admin tokens cannot sign in)")
    token = secrets.token_urlsafe(32)
    now = utcnow()
    session.execute(delete(UiSession).where(UiSession.expires_at < now))  # housekeeping, cheap (indexed by id)
    session.add(UiSession(token_hash=hash_secret(token), team_id=team.id, created_at=now, expires_at=now + LIFETIME))
    session.commit()
    return team, token


def current_user(request: Request, session: Session) -> UiUser:
    token = request.cookies.get(COOKIE, "")
    if not token or len(token) > 128:
        raise NotSignedIn()
    row = session.execute(select(Team.id, Team.name, UiSession.expires_at)
                          .join(UiSession, UiSession.team_id == Team.id)
                          .where(UiSession.token_hash == hash_secret(token))).first()
    if row is None or row.expires_at <= utcnow():
        raise NotSignedIn()
    return UiUser(team=Team(id=row.id, name=row.name), csrf=csrf_of(token))


def check_csrf(request: Request, user: UiUser, submitted: str) -> bool:
    """The form's token matches the session's, and a browser-sent Origin (if any) is this host."""
    origin = request.headers.get("origin")
    if origin and origin != "null":
        expected = f"{request.url.scheme}://{request.url.netloc}"
        if origin != expected:
            return False
    return hmac.compare_digest(submitted.encode(), user.csrf.encode())


def sign_out(session: Session, request: Request) -> None:
    token = request.cookies.get(COOKIE, "")
    if token:
        session.execute(delete(UiSession).where(UiSession.token_hash == hash_secret(token)))
        session.commit()
