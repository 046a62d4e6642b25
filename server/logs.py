"""Logging of ``lutnas serve`` and ``lutnas worker``: readable at INFO, JSON lines on request.

- Polling does not flood the access log: successful reads (GET/HEAD: search progress, health,
  the dashboard's live updates) and the agents' lease polls and heartbeats are logged at DEBUG;
  writes and every error answer stay at INFO.
- ``LUTNAS_LOG_FORMAT=json`` writes one JSON object per line (time, level, logger, message; and
  client, method, path, status for access lines) for log collectors; ``text`` is the default.
- ``LUTNAS_LOG_LEVEL`` (default ``INFO``; ``DEBUG`` shows the polling too).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import logging.config
import os
from typing import Any

FORMATS = ("text", "json")
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# POSTs that agents repeat while idle or busy (lease polls, lease heartbeats)
_POLLING_POSTS = ("/v1/agent/leases", "/v1/agent/heartbeat")


def _access_fields(record: logging.LogRecord) -> dict[str, Any] | None:
    """client, method, path, status of a uvicorn access record (None for any other record)."""
    args = record.args
    if record.name != "uvicorn.access" or not isinstance(args, tuple) or len(args) != 5:
        return None
    client, method, path, _version, status = args
    return {"client": str(client), "method": str(method), "path": str(path), "status": int(status)}


class PollingFilter(logging.Filter):
    """On ``uvicorn.access``: demote polling (successful reads, agent lease polls and heartbeats)
    to DEBUG, so it shows only when the access logger is set to DEBUG."""

    def filter(self, record: logging.LogRecord) -> bool:
        fields = _access_fields(record)
        if fields is None or fields["status"] >= 400 or record.levelno != logging.INFO:
            return True
        path = fields["path"].split("?", 1)[0]
        if fields["method"] in ("GET", "HEAD") or (fields["method"] == "POST" and path in _POLLING_POSTS):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        out.update(_access_fields(record) or {})
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False, default=str)


def settings_from_env() -> tuple[str, str]:
    """(format, level) from ``LUTNAS_LOG_FORMAT`` and ``LUTNAS_LOG_LEVEL``; a bad value is a
    one-line ValueError naming the variable."""
    fmt = os.environ.get("LUTNAS_LOG_FORMAT", "text").strip().lower() or "text"
    level = os.environ.get("LUTNAS_LOG_LEVEL", "INFO").strip().upper() or "INFO"
    if fmt not in FORMATS:
        raise ValueError(f"bad configuration: LUTNAS_LOG_FORMAT: {fmt!r} is not one of {', '.join(FORMATS)}")
    if level not in LEVELS:
        raise ValueError(f"bad configuration: LUTNAS_LOG_LEVEL: {level!r} is not one of {', '.join(LEVELS)}")
    return fmt, level


def log_config(fmt: str = "text", level: str = "INFO") -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for our loggers and uvicorn's (also handed to uvicorn, so
    each API process of ``lutnas serve --workers N`` logs the same way)."""
    formatter: dict[str, Any] = ({"()": f"{__name__}.JsonFormatter"} if fmt == "json"
                                 else {"format": TEXT_FORMAT})
    handler = {"class": "logging.StreamHandler", "formatter": "default", "stream": "ext://sys.stderr"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"default": formatter},
        "filters": {"polling": {"()": f"{__name__}.PollingFilter"}},
        "handlers": {"default": handler},
        "root": {"handlers": ["default"], "level": level},
        "loggers": {
            "uvicorn": {"handlers": [], "level": level, "propagate": True},
            "uvicorn.error": {"level": level, "propagate": True},
            "uvicorn.access": {"level": level, "propagate": True, "filters": ["polling"]},
        },
    }


def configure() -> dict[str, Any]:
    """Configure logging from the environment; returns the config (for ``uvicorn.run``)."""
    config = log_config(*settings_from_env())
    logging.config.dictConfig(config)
    return config
