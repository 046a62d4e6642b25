"""The service worker scoring on a real Ray cluster (``ray start``) that goes away mid-search: the
job goes back to the queue saying why, waits, and when the cluster is back at the same address it
resumes from its last finished generation to the result an uninterrupted search gives."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("ray")

from tests.conftest import RayCluster, free_port  # noqa: E402
from tests.server.conftest import BIN, Service, agent_token, register_hardware, wait_for  # noqa: E402
from tests.server.test_faults import QUICK_SCORES, comparable, fill_table, register_supernet  # noqa: E402
from tests.server.test_flow import all_results, wait_search  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_search_whose_ray_cluster_goes_away_waits_then_resumes_to_the_same_result(
        service: Service, artifacts: dict[str, Path], tmp_path: Path) -> None:
    c = service.team("ray-gone")
    hid = register_hardware(c, "ray-cpu")["id"]
    fill_table(service.url, agent_token(c, hid))
    gone_sn, reference_sn = (register_supernet(c, n, artifacts) for n in ("ray-gone", "ray-reference"))
    request = {"hardware_ids": [hid], "population": 4, "generations": 3, "seed": 3, "mode": "pairs"}
    cluster = RayCluster(free_port(), tmp_path)
    cluster.start()
    try:
        service.spawn([str(BIN / "lutnas"), "worker"], "ray-worker", **QUICK_SCORES, RAY_AUTH_MODE="disabled",
                      LUTNAS_RAY_ADDRESS=cluster.address, LUTNAS_EVAL_WORKERS="2", LUTNAS_RAY_RETRY_SECONDS="1")
        sid = c.post("/v1/searches", json={**request, "supernet_id": gone_sn}).json()["id"]

        def get() -> dict[str, Any]:
            return c.get(f"/v1/searches/{sid}").json()

        wait_for(lambda: get()["progress"]["generation"] >= 1, 400, 0.1, "a finished generation")
        cluster.kill()

        def waiting() -> dict[str, Any] | None:
            s = get()
            note = s["progress"].get("note") or ""
            return s if s["status"] == "queued" and note.startswith("waiting:") and "Ray" in note else None

        held = wait_for(waiting, 120, 0.2, "the job back in the queue, waiting for its Ray cluster")
        assert held["progress"]["generation"] >= 1  # the finished generations are kept
        assert len(held["progress"]["note"].splitlines()) == 1 and "Traceback" not in held["progress"]["note"]
        time.sleep(4)  # a few retries later (1 s apart): the job still waits, nothing failed it
        assert get()["status"] in ("queued", "running")
        cluster.start()  # back, at the same address
        resumed = wait_search(c, sid, 400)
        assert resumed["status"] == "succeeded", resumed
        assert resumed["progress"]["generation"] == request["generations"]
        reference = wait_search(c, c.post("/v1/searches", json={**request, "supernet_id": reference_sn})
                                .json()["id"], 400)
        assert reference["status"] == "succeeded", reference
    finally:
        cluster.kill()
    assert comparable(all_results(c, sid)) == comparable(all_results(c, reference["id"]))
