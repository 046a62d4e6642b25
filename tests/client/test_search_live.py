"""Supernets and the search lifecycle through the SDK and the CLI, against a real server.

The server of these tests runs without a worker, so a submitted search stays queued: that is
what lets the tests exercise waiting (timeout), listing, cancelling and the CLI's watch
deterministically. Searches that actually run are the end-to-end test's business.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from client import Client, LutnasAPIError, LutnasTimeoutError, Search

pytestmark = pytest.mark.timeout(300)


@pytest.fixture()
def queued(team: Client, supernet_files: tuple[Path, Path]) -> Iterator[Search]:
    ckpt, data = supernet_files
    hw = team.hardware.register("search-cpu")
    sn = team.supernets.register("paper-untrained", str(ckpt), str(data))
    search = team.searches.submit(sn.id, [hw.id], population=4, generations=1, seed=0)
    yield search
    for s in team.searches.list():  # leave no queued job for a worker another test may start
        if not s.done:
            s.cancel()


def _env(live_server, team: Client) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LUTNAS_")}
    env.update(LUTNAS_SERVER=live_server.url, LUTNAS_API_KEY=team.api_key or "")
    return env


def test_register_supernet_by_server_paths(team: Client, supernet_files: tuple[Path, Path]) -> None:
    ckpt, data = supernet_files
    first = team.supernets.register("sn-a", str(ckpt), str(data))
    second = team.supernets.register("sn-b", str(ckpt), str(data))
    assert isinstance(first.space, dict) and first.space == second.space
    assert team.supernets.get(first.id).model_dump() == first.model_dump()
    assert [s.name for s in team.supernets.list(page_size=1)] == ["sn-a", "sn-b"]

    with pytest.raises(LutnasAPIError) as err:
        team.supernets.register("sn-c", str(ckpt.parent / "missing.pt"), str(data))
    assert err.value.status == 422 and err.value.field == "checkpoint_path"


def test_upload_supernet_files(team: Client, supernet_files: tuple[Path, Path]) -> None:
    ckpt, data = supernet_files
    by_path = team.supernets.register("sn-path", str(ckpt), str(data))
    uploaded = team.supernets.upload("sn-upload", ckpt, data)  # the folder is packed as .tar.gz
    assert uploaded.name == "sn-upload" and uploaded.space == by_path.space


def test_search_lifecycle_through_the_sdk(team: Client, queued: Search) -> None:
    assert queued.status == "queued" and not queued.done
    assert queued.request["population"] == 4 and queued.hardware_ids and queued.supernet_id

    second = team.searches.submit(queued.supernet_id, queued.hardware_ids, population=4, generations=1, seed=1)
    assert [s.id for s in team.searches.list(page_size=1)][:2] == [second.id, queued.id]  # newest first

    polls: list[str] = []
    with pytest.raises(LutnasTimeoutError, match="still queued"):
        queued.wait(progress=lambda s: polls.append(s.status), poll=0.1, timeout=0.5)
    assert polls and set(polls) == {"queued"}

    assert list(queued.results()) == [] and queued.best() is None
    df = queued.results_df()
    assert len(df) == 0 and {"rank", "architecture_id", "score"} <= set(df.columns)

    cancelled = team.searches.cancel(queued.id)
    assert cancelled.status == "cancelled"
    assert queued.wait(poll=0.1, timeout=5).status == "cancelled" and queued.done
    assert second.cancel().status == "cancelled"


def test_search_submit_names_the_bad_field(team: Client, queued: Search) -> None:
    other_hw = team.hardware.register("code-space", space="code")
    cases = {
        "population": {"population": 3},
        "generations": {"generations": 0},
        "supernet_id": {"supernet_id": 999999},
        "hardware_ids.0": {"hardware_ids": [999999]},
        "budget_ms": {"objective": "budget", "budget_ms": -1.0},
    }
    for field, change in cases.items():
        kwargs = {"supernet_id": queued.supernet_id, "hardware_ids": queued.hardware_ids, **change}
        with pytest.raises(LutnasAPIError) as err:
            team.searches.submit(**kwargs)
        status = 404 if field in ("supernet_id", "hardware_ids.0") else 422  # unknown ids: not found
        assert err.value.status == status and err.value.field == field, (field, err.value)
    with pytest.raises(LutnasAPIError) as mixed:  # targets of different spaces cannot share a search
        team.searches.submit(queued.supernet_id, [*queued.hardware_ids, other_hw.id])
    assert mixed.value.status == 422


def test_search_commands(lutnas, live_server, team: Client, queued: Search) -> None:
    env = _env(live_server, team)
    status = lutnas("search", "status", str(queued.id), "--json", env=env)
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["status"] == "queued"

    watch = lutnas("search", "watch", str(queued.id), "--poll", "0.2", "--timeout", "1", env=env)
    assert watch.returncode == 2 and "Traceback" not in watch.stderr
    assert watch.stderr.strip().splitlines()[-1].startswith("error: search") and "still queued" in watch.stderr

    cancel = lutnas("search", "cancel", str(queued.id), env=env)
    assert cancel.returncode == 0 and "cancelled" in cancel.stdout
    watch = lutnas("search", "watch", str(queued.id), env=env)
    assert watch.returncode == 2 and watch.stderr.strip().splitlines()[-1] == f"error: search {queued.id} was cancelled"

    submit = lutnas("search", "submit", "--supernet", str(queued.supernet_id), "--hardware",
                    str(queued.hardware_ids[0]), "--population", "4", "--generations", "1", "--json", env=env)
    assert submit.returncode == 0, submit.stderr
    submitted = json.loads(submit.stdout)
    assert submitted["status"] == "queued" and submitted["request"]["population"] == 4
    listed = json.loads(lutnas("search", "list", "--json", "--limit", "1", env=env).stdout)
    assert [s["id"] for s in listed] == [submitted["id"]]

    for args, expected in (
        (["search", "submit", "--supernet", str(queued.supernet_id), "--hardware", "1", "--population", "2"],
         "field: population"),
        (["search", "status", "987654"], "404"),
        (["search", "cancel", "987654"], "404"),
        (["search", "pareto"], "--supernet"),
        (["search", "export", str(submitted["id"]), "--format", "pdf"], "--format"),
        (["search", "export", str(submitted["id"])], "no result at rank 1"),
    ):
        proc = lutnas(*args, env=env)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), (args, proc.stderr)
        assert expected in lines[0], (args, lines[0])
