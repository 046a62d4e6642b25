"""Exceptions raised by the lutnas SDK.

Every SDK error derives from :class:`LutnasError`, so callers can catch one class. Errors that
the server reported carry its ``application/problem+json`` body (:class:`LutnasAPIError`).
"""

from __future__ import annotations

from typing import Any


class LutnasError(Exception):
    """Base class of every error raised by the SDK."""


class LutnasConfigError(LutnasError, ValueError):
    """The client is misconfigured (no API key, malformed server URL, bad argument)."""


class LutnasConnectionError(LutnasError, ConnectionError):
    """The server could not be reached, even after the bounded retries."""


class LutnasTimeoutError(LutnasError, TimeoutError):
    """A wait (e.g. :meth:`Search.wait`) ran past its timeout."""


class LutnasAPIError(LutnasError):
    """The server answered with an error status; fields mirror its problem+json body.

    ``status`` (HTTP code), ``title``, ``detail``, ``field`` (dotted path of the offending
    request field, or None), ``type`` (problem type URI) and ``body`` (the whole parsed body).
    """

    def __init__(
        self,
        status: int,
        title: str,
        detail: str | None = None,
        field: str | None = None,
        type: str | None = None,  # mirrors the problem+json member name
        body: dict[str, Any] | None = None,
        method: str | None = None,
        url: str | None = None,
    ) -> None:
        self.status = status
        self.title = title
        self.detail = detail
        self.field = field
        self.type = type
        self.body = body or {}
        self.method = method
        self.url = url
        super().__init__(self._message())

    def _message(self) -> str:
        text = f"{self.status} {self.title}"
        if self.detail and self.detail != self.title:
            text += f": {self.detail}"
        if self.field:
            text += f" (field: {self.field})"
        return " ".join(text.split())  # always one line

    @classmethod
    def from_body(
        cls, status: int, reason: str, body: Any, method: str | None = None, url: str | None = None
    ) -> LutnasAPIError:
        """Build from a decoded response body: problem+json, FastAPI's ``{"detail": ...}``, or text."""
        if isinstance(body, dict):
            detail = body.get("detail")
            field = body.get("field")
            if isinstance(detail, list) and detail:  # FastAPI's default validation shape
                first = detail[0] if isinstance(detail[0], dict) else {"msg": str(detail[0])}
                loc = [str(p) for p in first.get("loc", []) if p not in ("body", "query", "path")]
                field = field or (".".join(loc) or None)
                detail = first.get("msg")
            return cls(
                status=int(body.get("status") or status),
                title=str(body.get("title") or reason or "error"),
                detail=None if detail is None else str(detail),
                field=None if field is None else str(field),
                type=body.get("type"),
                body=body,
                method=method,
                url=url,
            )
        text = str(body or "").strip()
        first_line = text.splitlines()[0][:200] if text else None
        return cls(status=status, title=reason or "error", detail=first_line, method=method, url=url)
