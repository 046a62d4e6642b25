"""The states of a search job, shared by the models, the API schemas, the routes and the worker.

A ``StrEnum``: each member is its wire value (``SearchStatus.queued == "queued"``), so the
``searches.status`` column stays a plain string and the JSON the API sends is unchanged.
"""

from __future__ import annotations

from enum import StrEnum


class SearchStatus(StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"


#: Statuses after which a search never changes again.
TERMINAL_STATUSES: frozenset[SearchStatus] = frozenset(
    {SearchStatus.succeeded, SearchStatus.failed, SearchStatus.cancelled})
