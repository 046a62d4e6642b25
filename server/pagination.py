"""Keyset pagination: ``page_size`` (1..1000, default 50) and an opaque ``page_token``.

A token encodes the sort key of the last item served, so a page is one indexed range scan
whatever its depth (no OFFSET).
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel

from server.problems import Problem

T = TypeVar("T")

PageSize = Annotated[int, Query(ge=1, le=1000, description="items per page (1..1000)")]
PageToken = Annotated[str | None, Query(max_length=2048, description="opaque token from the previous page")]


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_page_token: str | None = None


def encode_token(key: Any) -> str:
    raw = json.dumps({"k": key}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str | None, kind: type | tuple[type, ...] = int) -> Any:
    """The sort key inside ``token`` (None for the first page); a bad token is a 400 problem."""
    if token is None or token == "":  # an empty page token, not a password  # nosec B105
        return None
    try:
        padded = token + "=" * (-len(token) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()))
        key = data["k"]
    except (binascii.Error, ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise Problem(400, "page_token is not a token this server issued", "page_token") from None
    if not isinstance(key, kind) or isinstance(key, bool) or not _storable(key):
        raise Problem(400, "page_token is not a token this server issued", "page_token")
    return key


def _storable(key: Any) -> bool:
    """A forged token's key must still be a value the database can compare with: an INTEGER
    id or rank, or text without NUL or lone surrogates."""
    if isinstance(key, int):
        return -(2**31) <= key <= 2**31 - 1
    if "\x00" in key or len(key) > 1024:
        return False
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def page(items: list[Any], page_size: int, key_of: Any) -> dict[str, Any]:
    """``items`` fetched with limit ``page_size + 1``: cut and build the next token."""
    more = len(items) > page_size
    items = items[:page_size]
    token = encode_token(key_of(items[-1])) if more and items else None
    return {"items": items, "next_page_token": token}
