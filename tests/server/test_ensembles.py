"""An ensemble of supernets through the service: registered from the team's supernets (bad
members are a 422 naming the field), shown by the SDK and CLI, and a search on it scores every
candidate with the mean of its members' scores, each computed as a search on that member alone
computes it."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from client import Client
from tests.server.conftest import BIN, Service, agent_token, register_hardware
from tests.server.test_faults import fill_table, register_supernet
from tests.server.test_flow import all_results, wait_search

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def second_checkpoint(artifacts: dict[str, Path]) -> Path:
    """Another random-init supernet (seed 1) beside the session's, under the same data root."""
    import torch

    from tracking.checkpoint import save_checkpoint
    from tracking.space import SearchSpace
    from tracking.supernet import Supernet

    path = artifacts["root"] / "supernet-seed1.pt"
    if not path.exists():
        torch.manual_seed(1)
        save_checkpoint(path, Supernet(SearchSpace.paper()), {"note": "random init, seed 1 (tests)"})
    return path


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_search_on_an_ensemble_scores_the_mean_of_its_members(service: Service, artifacts: dict[str, Path]) -> None:
    c = service.team("ensembles")
    a = register_supernet(c, "seed0", artifacts)
    b = register_supernet(c, "seed1", {**artifacts, "checkpoint": second_checkpoint(artifacts)})

    def ensemble(members: Any) -> Any:
        return c.post("/v1/supernets/ensembles", json={"name": "uniform-x2", "members": members})

    for members, needle in (([a], "members"), ([a, a], "given twice"), ([a, 10**6], f"supernet {10**6} not found")):
        r = ensemble(members)
        assert r.status_code == 422 and r.headers["content-type"].startswith("application/problem+json"), r.text
        assert needle in r.json()["detail"], r.text
    other = register_supernet(service.team("ensembles-other"), "theirs", artifacts)
    assert ensemble([a, other]).status_code == 422  # another team's supernet is not the caller's to use
    r = ensemble([a, b])
    assert r.status_code == 201, r.text
    ens = r.json()
    assert ens["members"] == [a, b] and r.headers["location"] == f"/v1/supernets/{ens['id']}"
    assert c.get(f"/v1/supernets/{a}").json()["members"] is None
    assert "an ensemble cannot be a member" in ensemble([ens["id"], a]).json()["detail"]

    hw = register_hardware(c, "ensemble-cpu")
    fill_table(service.url, agent_token(c, hw["id"]), overhead_ms=0.01)
    service.spawn([str(BIN / "lutnas"), "worker"], "worker", LUTNAS_EVAL_BATCH_SIZE="4")

    def scores(supernet_id: int) -> dict[str, tuple[float, float]]:
        request = {"supernet_id": supernet_id, "hardware_ids": [hw["id"]], "population": 4, "generations": 1,
                   "seed": 3, "mode": "pairs"}
        done = wait_search(c, c.post("/v1/searches", json=request).json()["id"], 300)
        assert done["status"] == "succeeded", done
        return {x["architecture_id"]: (x["score"], x["score_se"]) for x in all_results(c, done["id"])}

    mean, alone_a, alone_b = scores(ens["id"]), scores(a), scores(b)
    assert mean.keys() == alone_a.keys() == alone_b.keys()  # one generation: the seeded population only
    assert any(alone_a[k][0] != alone_b[k][0] for k in mean)  # two scorers that disagree
    for k, (score, se) in mean.items():
        assert score == pytest.approx((alone_a[k][0] + alone_b[k][0]) / 2, abs=1e-9)
        assert se == pytest.approx((alone_a[k][1] ** 2 + alone_b[k][1] ** 2) ** 0.5 / 2, abs=1e-9)

    key = c.headers["Authorization"].removeprefix("Bearer ")
    with Client(service.url, key, retries=0) as sdk:
        again = sdk.supernets.ensemble("uniform-x2", [a, b], exist_ok=True)
        assert again.id == ens["id"] and again.members == [a, b]
    env = {**service.env, "LUTNAS_SERVER": service.url, "LUTNAS_API_KEY": key}
    env.pop("LUTNAS_ADMIN_TOKEN", None)
    cli = subprocess.run([str(BIN / "lutnas"), "supernets", "ensemble", "pair", str(a), str(b)], env=env,
                         capture_output=True, text=True, timeout=120)
    assert cli.returncode == 0 and f"ensemble of {a}, {b}" in cli.stdout, cli.stdout + cli.stderr
    bad = subprocess.run([str(BIN / "lutnas"), "supernets", "ensemble", "solo", str(a)], env=env,
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and "members" in bad.stderr, bad.stderr
