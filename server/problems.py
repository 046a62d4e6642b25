"""RFC 9457 problem+json errors: every error the API returns goes through here.

Handlers cover our own :class:`Problem`, request validation (422 naming the field), Starlette's
HTTP errors (404 for unknown paths, 405, ...) and a catch-all that logs genuine bugs and
answers a bare 500 problem (never a traceback).
"""

from __future__ import annotations

import logging
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("lutnas.server")

PROBLEM_BASE = "https://lutnas.dev/problems/"
MEDIA_TYPE = "application/problem+json"

_TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Payload too large",
    415: "Unsupported media type",
    422: "Invalid request",
    429: "Too many requests",
    500: "Internal server error",
}
_TYPES = {400: "bad-request", 401: "unauthorized", 404: "not-found", 409: "conflict",
          413: "too-large", 422: "validation", 500: "internal"}


class Problem(Exception):
    """Raise anywhere in a request to answer a problem+json error."""

    def __init__(self, status: int, detail: str, field: str | None = None, *, kind: str | None = None,
                 title: str | None = None, headers: dict[str, str] | None = None,
                 extra: dict[str, Any] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.field = field
        self.kind = kind or _TYPES.get(status, "error")
        self.title = title or _TITLES.get(status, "Error")
        self.headers = headers
        self.extra = extra or {}


# Absolute file paths of two or more segments (not API paths such as /v1/searches/3).
_SERVER_PATH = re.compile(r"(?<![\w.:/~-])(?!/v1/)(?:/[\w.@+~-]+){2,}/?")


def scrub_paths(text: str) -> str:
    """``text`` with every absolute file path replaced by ``<server path>``: a last guard so that
    no message a team reads (problem details, a failed search's error) tells it the server's
    layout, whatever a library put in an exception message."""
    return _SERVER_PATH.sub("<server path>", text)


def title(status: int) -> str:
    return _TITLES.get(status, "Error")


def documented(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` of a route for the error statuses only its own code raises (409, 413, ...);
    server/app.py adds those every route of its kind answers (401, 404, 422, ...) and gives them
    all the problem+json content."""
    return {status: {"description": _TITLES.get(status, "Error")} for status in statuses}


def not_found(what: str, ident: object) -> Problem:
    return Problem(404, f"{what} {ident} not found")


def problem_response(status: int, detail: str, field: str | None = None, kind: str | None = None,
                     title: str | None = None, headers: dict[str, str] | None = None,
                     extra: dict[str, Any] | None = None) -> JSONResponse:
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + (kind or _TYPES.get(status, "error")),
        "title": title or _TITLES.get(status, "Error"),
        "status": status,
        "detail": scrub_paths(detail),
        "field": field,
    }
    body.update(extra or {})
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


_LOC_ROOTS = {"body", "query", "path", "header", "cookie"}


def _field(loc: tuple[Any, ...] | list[Any]) -> str | None:
    parts = [str(p) for p in loc]
    if parts and parts[0] in _LOC_ROOTS:
        parts = parts[1:]
    # pydantic adds the validator/union branch name for tagged unions and function validators
    parts = [p for p in parts if not p.startswith("function-") and "[" not in p]
    return ".".join(parts) or None


def _validation_detail(err: dict[str, Any]) -> str:
    msg = str(err.get("msg", "invalid value"))
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix):]
    return msg


async def _problem_handler(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Problem)  # type narrowing: registered for this class only  # nosec B101
    return problem_response(exc.status, exc.detail, exc.field, exc.kind, exc.title, exc.headers, exc.extra)


async def _validation_handler(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)  # type narrowing: registered for this class only  # nosec B101
    errors = list(exc.errors())
    if not errors:
        return problem_response(422, "invalid request")
    first = errors[0]
    field = _field(first.get("loc", ()))
    detail = _validation_detail(first)
    if first.get("type") == "json_invalid":
        return problem_response(422, "request body is not valid JSON")
    if field:
        detail = f"{field}: {detail}"
    extra = {"errors": [{"field": _field(e.get("loc", ())), "detail": _validation_detail(e)}
                        for e in errors[:20]]}
    return problem_response(422, detail, field, extra=extra)


async def _http_handler(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)  # type narrowing: registered for this class only  # nosec B101
    detail = exc.detail if isinstance(exc.detail, str) else _TITLES.get(exc.status_code, "error")
    if exc.status_code == 404 and detail == "Not Found":
        detail = "no such resource"
    if exc.status_code == 400 and detail == "There was an error parsing the body":
        # FastAPI's answer to a body that is not even text (bad UTF-8); malformed JSON is a 422
        # problem already, and so is this
        return problem_response(422, "request body is not valid JSON")
    return problem_response(exc.status_code, detail, headers=getattr(exc, "headers", None))


async def _bug_handler(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem_response(500, "internal error; the server log has the details")


def install(app: FastAPI) -> None:
    app.add_exception_handler(Problem, _problem_handler)
    app.add_exception_handler(RequestValidationError, _validation_handler)
    app.add_exception_handler(StarletteHTTPException, _http_handler)
    app.add_exception_handler(Exception, _bug_handler)
