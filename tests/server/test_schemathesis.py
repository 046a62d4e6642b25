"""Schemathesis over the live server's own OpenAPI document, on SQLite and PostgreSQL.

Every operation is fuzzed with schema-valid (positive) and schema-breaking (negative) requests
carrying the key its ``security`` names (team key, agent token, admin token), then the document's
links are followed by a stateful run (register hardware -> its latency table, agent tokens;
submit search -> get, cancel, results). Four checks must hold for every response: no 5xx, only
documented status codes, only documented content types, and bodies that match their schemas.
A fixed seed and bounded example counts keep the run repeatable and short.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.server.conftest import ADMIN, Service, agent_token, register_hardware

pytestmark = pytest.mark.timeout(600)

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
SEED = 19
EXAMPLES = {GenerationMode.POSITIVE: 12, GenerationMode.NEGATIVE: 6}
STATEFUL_STEPS = 12
STATEFUL_EXAMPLES = 6


def _settings(max_examples: int, **extra: Any) -> settings:
    # no shrinking: every failing case is reported as found, and the run stays short
    return settings(max_examples=max_examples, deadline=None, database=None,
                    phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck),
                    print_blob=False, **extra)


@pytest.fixture()
def fuzz_keys(service: Service, artifacts: dict[str, Any]) -> dict[str, str]:
    """A team with a hardware target, a supernet and a queued search (small ids exist), and the
    three kinds of key the document's security schemes name."""
    with service.admin() as a:
        r = a.post("/v1/teams", json={"name": f"fuzz-{service.url.rsplit(':', 1)[1]}"})
    assert r.status_code == 201, r.text
    team_key = r.json()["api_key"]
    with httpx.Client(base_url=service.url, headers={"Authorization": f"Bearer {team_key}"}, timeout=60) as c:
        hw = register_hardware(c, "fuzz-cpu")
        token = agent_token(c, hw["id"])
        sn = c.post("/v1/supernets", json={"name": "fuzz", "checkpoint_path": str(artifacts["checkpoint"]),
                                            "data_path": str(artifacts["data"])})
        assert sn.status_code == 201, sn.text
        s = c.post("/v1/searches", json={"supernet_id": sn.json()["id"], "hardware_ids": [hw["id"]],
                                         "population": 4, "generations": 1})
        assert s.status_code == 202, s.text
    return {"teamKey": team_key, "agentToken": token, "adminToken": ADMIN}


def _headers(operation: Any, keys: dict[str, str]) -> dict[str, str]:
    security = operation.definition.raw.get("security") or []
    scheme = next(iter(security[0]), None) if security else None
    return {"Authorization": f"Bearer {keys[scheme]}"} if scheme else {}


def _failure(label: str, e: BaseException) -> str:
    return f"{label}: {' '.join(str(e).split())[:1500]}"


def test_schemathesis_over_the_live_api(service: Service, fuzz_keys: dict[str, str]) -> None:
    schema = schemathesis.openapi.from_url(f"{service.url}/openapi.json")
    failures: list[str] = []
    operations = [r.ok() for r in schema.get_all_operations()]
    assert len(operations) >= 25  # every operation of docs/api.md, not a filtered few

    def fuzz(op: Any, mode: GenerationMode, n: int) -> Any:
        headers = _headers(op, fuzz_keys)

        @seed(SEED)
        @_settings(n)
        @given(case=op.as_strategy(generation_mode=mode))
        def run(case: Any) -> None:
            response = case.call(base_url=service.url, headers=headers, timeout=60)
            case.validate_response(response, checks=CHECKS)

        return run

    for op in operations:
        for mode, n in EXAMPLES.items():
            try:
                fuzz(op, mode, n)()
            except Unsatisfiable:
                assert mode is GenerationMode.NEGATIVE  # nothing to break in an operation without inputs
            except Exception as e:  # noqa: BLE001 - collected: one report lists every operation that fails
                failures.append(_failure(f"{op.label} ({mode.value})", e))

    class Links(schema.as_state_machine()):  # type: ignore[misc]
        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return {"base_url": service.url, "headers": _headers(case.operation, fuzz_keys), "timeout": 60}

        def validate_response(self, response: Any, case: Any, additional_checks: Any = None, **kwargs: Any) -> None:
            case.validate_response(response, checks=CHECKS)

    try:
        # derandomize: the stateful run's seed is fixed too
        Links.run(settings=_settings(STATEFUL_EXAMPLES, stateful_step_count=STATEFUL_STEPS, derandomize=True))
    except Exception as e:  # noqa: BLE001 - reported with the rest
        failures.append(_failure("stateful (links)", e))

    assert not failures, "\n".join(failures)
    # and nothing above was a silent 500 the checks missed: the server is still healthy
    assert httpx.get(f"{service.url}/healthz", timeout=10).json()["status"] == "ok"
