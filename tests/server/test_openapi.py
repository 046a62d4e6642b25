"""The OpenAPI document names every operation as docs/api.md does (the client is written to it)."""

from __future__ import annotations

import re
from pathlib import Path

from server.app import create_app
from server.settings import Settings

DOCS = Path(__file__).resolve().parents[2] / "docs" / "api.md"


def test_operation_ids_match_docs(tmp_path: Path) -> None:
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path / 'o.db'}", data_dir=tmp_path))
    spec = app.openapi()
    ops = {op["operationId"] for path in spec["paths"].values() for op in path.values()}
    documented = set(re.findall(r"\[([a-z_]+)\]", DOCS.read_text()))
    assert documented <= ops, documented - ops
    assert ops - documented <= {"healthz"}
    # paginated lists document their item shape
    schema = spec["paths"]["/v1/searches/{search_id}/results"]["get"]["responses"]["200"]["content"]
    assert schema["application/json"]["schema"]["$ref"].endswith("Page_ResultItem_")


def test_every_error_answer_is_documented_as_problem_json(tmp_path: Path) -> None:
    """server/app.py's hook: every 4xx of every operation is problem+json (ProblemDetails); keyed
    operations name their key and answer 401; ids are bounded to the INTEGER columns' range."""
    spec = create_app(Settings(database_url=f"sqlite:///{tmp_path / 'o.db'}", data_dir=tmp_path)).openapi()
    assert "ProblemDetails" in spec["components"]["schemas"] and "HTTPValidationError" not in spec["components"]["schemas"]
    for path, item in spec["paths"].items():
        for method, op in item.items():
            where = f"{method.upper()} {path}"
            errors = {s: r for s, r in op["responses"].items() if s.startswith("4")}
            for status, r in errors.items():
                assert r["content"] == {"application/problem+json": {"schema": {
                    "$ref": "#/components/schemas/ProblemDetails"}}}, (where, status)
            if path != "/healthz":
                assert op["security"] and "401" in errors, where
            for p in op.get("parameters", []):
                schema = p["schema"].get("anyOf", [p["schema"]])[0]
                if p["name"].endswith("_id") and schema["type"] == "integer":
                    assert (schema["minimum"], schema["maximum"]) == (1, 2**31 - 1), (where, p["name"])
            if "{" in path:
                assert "404" in errors, where
    # what each route raises itself is declared too
    assert "409" in spec["paths"]["/v1/hardware"]["post"]["responses"]
    assert {"404", "422"} <= set(spec["paths"]["/v1/searches"]["post"]["responses"])
    assert {"400", "413", "415"} <= set(spec["paths"]["/v1/supernets"]["post"]["responses"])
    # the document's links lead from a created resource to what it opens
    links = spec["paths"]["/v1/searches"]["post"]["responses"]["202"]["links"]
    assert links["get_search"] == {"operationId": "get_search", "parameters": {"search_id": "$response.body#/id"}}
