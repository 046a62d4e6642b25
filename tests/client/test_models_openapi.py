"""The client's pydantic models (client/models.py) against the server's OpenAPI schemas, so the two
cannot drift: the client reads every field the server sends, and names none the server lacks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from client import models
from server.app import create_app
from server.jobs.status import TERMINAL_STATUSES
from server.settings import Settings

# client model -> the server's response schema(s) it reads
PAIRS: list[tuple[type, str]] = [
    (models.Team, "TeamCreated"),
    (models.Runtime, "Runtime"),
    (models.Coverage, "CoverageDetail"),
    (models.Hardware, "HardwareOut"),
    (models.Drift, "DriftOut"),
    (models.DriftReading, "DriftReading"),
    (models.AgentToken, "AgentTokenOut"),
    (models.LatencyEntry, "LatencyEntryOut"),
    (models.Prediction, "Prediction"),
    (models.Supernet, "SupernetOut"),
    (models.SearchProgress, "Progress"),
    (models.SearchInfo, "SearchOut"),
    (models.SearchResult, "ResultItem"),
    (models.ParetoPoint, "FrontPointOut"),
    (models.ParetoReference, "ReferenceArchOut"),
    (models.ParetoFront, "ParetoOut"),
    (models.ArchitectureScore, "ArchScore"),
    (models.ArchitectureInfo, "ArchitectureOut"),
]


@pytest.fixture(scope="module")
def schemas(tmp_path_factory) -> dict[str, Any]:
    tmp: Path = tmp_path_factory.mktemp("openapi")
    app = create_app(Settings(database_url=f"sqlite:///{tmp / 'o.db'}", data_dir=tmp), migrate=False)
    return app.openapi()["components"]["schemas"]


@pytest.mark.parametrize(("model", "name"), PAIRS, ids=[m.__name__ for m, _ in PAIRS])
def test_client_model_has_exactly_the_server_fields(schemas: dict[str, Any], model: type, name: str) -> None:
    server = set(schemas[name]["properties"])
    client = set(model.model_fields)
    assert server - client == set(), f"{model.__name__} lacks the server's {sorted(server - client)}"
    assert client - server == set(), f"{model.__name__} names fields the server does not send: {sorted(client - server)}"


def test_every_response_schema_the_client_reads_is_paired(schemas: dict[str, Any]) -> None:
    # a renamed server schema fails here rather than silently dropping out of the comparison
    assert {name for _, name in PAIRS} <= set(schemas)


def test_client_search_statuses_are_the_servers(schemas: dict[str, Any]) -> None:
    # the client may not import the server (client-light contract): its enum is a copy, held here
    # to the values the server's document declares, in the same order
    assert [s.value for s in models.SearchStatus] == schemas["SearchStatus"]["enum"]
    assert schemas["SearchOut"]["properties"]["status"] == {"$ref": "#/components/schemas/SearchStatus"}
    assert models.TERMINAL_STATUSES == TERMINAL_STATUSES < set(models.SearchStatus)
