"""Python SDK for a lutnas server (httpx + pydantic; imports nothing else of ours, no torch).

See :class:`client.sdk.Client`; the remote CLI commands live in :mod:`client.cli`.
"""

from client.errors import (
    LutnasAPIError,
    LutnasConfigError,
    LutnasConnectionError,
    LutnasError,
    LutnasTimeoutError,
)
from client.models import (
    AgentToken,
    ArchitectureInfo,
    Coverage,
    Hardware,
    LatencyEntry,
    ParetoFront,
    ParetoPoint,
    ParetoReference,
    Prediction,
    Runtime,
    SearchInfo,
    SearchProgress,
    SearchResult,
    Supernet,
    Team,
)
from client.resources import Search
from client.sdk import Client

__all__ = [
    "AgentToken",
    "ArchitectureInfo",
    "Client",
    "Coverage",
    "Hardware",
    "LatencyEntry",
    "LutnasAPIError",
    "LutnasConfigError",
    "LutnasConnectionError",
    "LutnasError",
    "LutnasTimeoutError",
    "ParetoFront",
    "ParetoPoint",
    "ParetoReference",
    "Prediction",
    "Runtime",
    "Search",
    "SearchInfo",
    "SearchProgress",
    "SearchResult",
    "Supernet",
    "Team",
]
