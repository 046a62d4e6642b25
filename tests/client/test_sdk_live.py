"""The SDK against a real server (uvicorn on loopback, SQLite): auth, pagination, problems, isolation."""

from __future__ import annotations

import re

import httpx
import pytest

from client import (
    Client,
    Hardware,
    LutnasAPIError,
    LutnasConfigError,
    Runtime,
)

pytestmark = pytest.mark.timeout(300)


def test_admin_creates_team_and_key_identifies_it(live_server) -> None:
    with live_server.admin() as admin:
        created = admin.teams.create("sdk-identity")
        with pytest.raises(LutnasAPIError) as dup:
            admin.teams.create("sdk-identity")
    assert dup.value.status == 409 and dup.value.field == "name"
    with Client(live_server.url, created.api_key) as c:
        me = c.me()
        assert c.health()["status"] == "ok"
    assert (me.id, me.name) == (created.id, "sdk-identity")


def test_register_get_and_list_with_pagination(live_server, team: Client) -> None:
    names = ["pixel7-cpu", "jetson-orin", "xeon-4t"]
    registered = [
        team.hardware.register(names[0]),
        team.hardware.register(names[1], kind="jetson", runtime={"provider": "CUDAExecutionProvider"}),
        team.hardware.register(names[2], runtime=Runtime(threads=4), space="code"),
    ]
    assert all(isinstance(h, Hardware) for h in registered)
    assert registered[1].kind == "jetson" and registered[1].runtime.provider == "CUDAExecutionProvider"
    assert registered[2].runtime.threads == 4 and registered[2].space == "code"
    assert registered[0].coverage is not None and registered[0].coverage.total > 0

    got = team.hardware.get(registered[2].id)
    assert got.model_dump() == registered[2].model_dump()

    # page_size=1 forces one request per item: the iterator must follow next_page_token.
    pages: list[httpx.Request] = []
    http = httpx.Client(base_url=live_server.url, event_hooks={"request": [pages.append]})
    with Client(live_server.url, team.api_key, http=http) as counted:
        listed = list(counted.hardware.list(page_size=1))
    assert [h.name for h in listed] == names  # a team sees only its own targets, in id order
    assert len(pages) >= 3 and all(r.url.params["page_size"] == "1" for r in pages)
    assert any("page_token" in r.url.params for r in pages)


def test_validation_problem_names_the_field(team: Client) -> None:
    with pytest.raises(LutnasAPIError) as bad_kind:
        team.hardware.register("phone", kind="toaster")
    e = bad_kind.value
    assert e.status == 422 and e.field == "kind"
    assert e.title and e.detail and e.type and e.type.endswith("/validation")
    assert e.body["status"] == 422
    assert "\n" not in str(e) and "422" in str(e)

    with pytest.raises(LutnasAPIError) as bad_threads:
        team.hardware.register("phone", runtime={"threads": -1})
    assert bad_threads.value.status == 422 and bad_threads.value.field == "runtime.threads"


def test_other_teams_hardware_is_404(live_server, team: Client) -> None:
    mine = team.hardware.register("private-board")
    with live_server.new_team("other") as other:
        for call in (
            lambda: other.hardware.get(mine.id),
            lambda: other.agent_tokens.create(mine.id, "intruder"),
            lambda: other.latency.coverage(mine.id),
        ):
            with pytest.raises(LutnasAPIError) as err:
                call()
            assert err.value.status == 404
        assert [h.id for h in other.hardware.list()] == []


def test_bad_and_missing_keys(live_server, monkeypatch: pytest.MonkeyPatch) -> None:
    with Client(live_server.url, "lnt_not-a-real-key", retries=0) as c, pytest.raises(LutnasAPIError) as err:
        c.me()
    assert err.value.status == 401

    sent: list[httpx.Request] = []
    http = httpx.Client(base_url=live_server.url, event_hooks={"request": [sent.append]})
    monkeypatch.delenv("LUTNAS_API_KEY", raising=False)
    with Client(live_server.url, api_key=None, http=http) as c:
        with pytest.raises(LutnasConfigError, match="no API key"):
            c.hardware.list().__next__()
    assert sent == []  # refused before any request left


def test_agent_token_and_latency_table(team: Client) -> None:
    hw = team.hardware.register("bench-cpu")
    token = team.agent_tokens.create(hw.id, "bench-1")
    assert token.hardware_id == hw.id and token.name == "bench-1"
    assert token.token and token.token.startswith("lna_")

    coverage = team.latency.coverage(hw.id)
    assert coverage.measured == 0 and coverage.total == hw.coverage.total > 0
    assert coverage.fraction == 0.0 and coverage.missing_sample
    assert list(team.latency.entries(hw.id, page_size=10)) == []
    df = team.latency.entries_df(hw.id)
    assert len(df) == 0 and "median_ms" in df.columns
    assert team.latency.export_csv(hw.id).splitlines()[0].startswith("unit_key,median_ms")

    # Nothing is measured yet: prediction must refuse with a 409 naming how many are missing.
    with pytest.raises(LutnasAPIError) as err:
        team.latency.predict(hw.id, ["back_04502514044521042540+cls_211000022+reg_100000111_ops_32"])
    assert err.value.status == 409 and re.search(r"\d+ units", err.value.detail or "")


def test_local_argument_checks(team: Client) -> None:
    with pytest.raises(LutnasConfigError):
        team.latency.predict(1, "back_0450")  # a bare string is not a list of architectures
    with pytest.raises(LutnasConfigError):
        team.architectures.export("0123456789abcdef", "onnx")  # ONNX needs the supernet's weights
    with pytest.raises(LutnasConfigError):
        team.architectures.export("0123456789abcdef", "pdf")  # type: ignore[arg-type]
    with pytest.raises(LutnasConfigError):
        Client("localhost:8000")  # no scheme


def test_unknown_architecture_and_search_are_404(team: Client) -> None:
    with pytest.raises(LutnasAPIError) as arch:
        team.architectures.get("0123456789abcdef")
    assert arch.value.status == 404
    with pytest.raises(LutnasAPIError) as search:
        team.searches.get(987654)
    assert search.value.status == 404


def test_search_submit_is_validated_by_the_server(team: Client) -> None:
    hw = team.hardware.register("search-target")
    with pytest.raises(LutnasAPIError) as err:
        team.searches.submit(supernet_id=1, hardware_ids=[hw.id], population=2)
    assert err.value.status == 422 and err.value.field == "population"
    with pytest.raises(LutnasAPIError) as budget:
        team.searches.submit(supernet_id=1, hardware_ids=[hw.id], objective="budget")
    assert budget.value.status == 422
