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
