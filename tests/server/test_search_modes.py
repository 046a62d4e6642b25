"""Every kind of search through the live service (real uvicorn and worker processes), checked on its
results, not only on 422s: two targets at once, the latency-budget objective, the accuracy
predictor, sequences scoring; and an ONNX export from the service that computes what the torch
subnet with the supernet's weights computes (onnxruntime vs torch, to tolerance)."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest

from tests.server.conftest import BIN, Service, agent_token, register_hardware
from tests.server.test_faults import fill_table, register_supernet
from tests.server.test_flow import all_results, wait_search

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_search_modes_and_onnx_export_through_the_service(service: Service, artifacts: dict[str, Path],
                                                          tmp_path: Path) -> None:
    from tracking.space import LIGHTTRACK_MOBILE

    c = service.team("modes")
    h1, h2 = (register_hardware(c, name)["id"] for name in ("modes-a", "modes-b"))
    for h in (h1, h2):
        fill_table(service.url, agent_token(c, h))
    sn = register_supernet(c, "modes", artifacts)
    mobile_ms = c.post(f"/v1/hardware/{h2}/latency-table/predict",
                       json={"architectures": [LIGHTTRACK_MOBILE]}).json()["predictions"][0]["latency_ms"]
    base = {"supernet_id": sn, "population": 4, "generations": 1, "seed": 3}
    requests = {
        "two targets": {**base, "hardware_ids": [h1, h2]},
        "budget": {**base, "hardware_ids": [h1, h2], "objective": "budget", "budget_ms": mobile_ms,
                   "budget_hardware_id": h2},
        "predictor": {**base, "hardware_ids": [h1], "use_predictor": True, "generations": 2},
        "sequences": {**base, "hardware_ids": [h1], "mode": "sequences"},
    }
    ids = {name: c.post("/v1/searches", json=body).json()["id"] for name, body in requests.items()}
    # the suite's scoring settings (8 pairs, BN recalibrated): cheaper ones score every path of the
    # random-init supernet 0, and fronts and the pairs/sequences comparison need real differences
    service.spawn([str(BIN / "lutnas"), "worker"], "worker", LUTNAS_EVAL_BATCH_SIZE="4")
    done = {name: wait_search(c, sid, 400) for name, sid in ids.items()}
    for name, s in done.items():
        assert s["status"] == "succeeded", (name, s)
        assert s["progress"]["evaluated"] >= 4 and s["progress"]["generation"] == requests[name]["generations"]
        results = all_results(c, s["id"])
        assert len(results) == s["progress"]["evaluated"], name
        assert all(set(r["latency_ms"]) == {str(h) for h in requests[name]["hardware_ids"]} for r in results), name

    # two targets: one front per target, each over that target's latencies
    results = {r["architecture_id"]: r for r in all_results(c, ids["two targets"])}
    for h in (h1, h2):
        front = c.get(f"/v1/searches/{ids['two targets']}/pareto", params={"hardware_id": h}).json()
        assert front["points"] and 0 < front["hypervolume"] < 1  # normalised, per target
        assert front["hypervolume_score_ms"] == pytest.approx(front["hypervolume"]
                                                              * front["reference_point"]["latency_ms"])
        assert all(p["latency_ms"] == results[p["architecture_id"]]["latency_ms"][str(h)] for p in front["points"])
    # one target: the front's normalised hypervolume is the search's own (its progress)
    for name in ("predictor", "sequences"):
        front = c.get(f"/v1/searches/{ids[name]}/pareto", params={"hardware_id": h1}).json()
        assert front["hypervolume"] == done[name]["progress"]["hypervolume"], name
    # the budget: every result marked feasible meets it on the budget's target, and some do
    budget = all_results(c, ids["budget"])
    assert any(r["feasible"] for r in budget)
    assert all(r["latency_ms"][str(h2)] <= mobile_ms + 1e-9 for r in budget if r["feasible"])
    # sequences scoring gives other scores than pairs scoring of the same architectures
    seq = {r["architecture_id"]: r["score"] for r in all_results(c, ids["sequences"])}
    pairs = {r["architecture_id"]: r["score"] for r in all_results(c, ids["predictor"])}
    common = set(seq) & set(pairs)
    assert common and any(abs(seq[a] - pairs[a]) > 1e-9 for a in common)

    # ONNX export through the service == the torch subnet with the supernet's weights
    best = budget[0]
    r = c.get(f"/v1/architectures/{best['architecture_id']}/export", params={"format": "onnx", "supernet_id": sn})
    assert r.status_code == 200, r.text
    out = tmp_path / "onnx"
    zipfile.ZipFile(io.BytesIO(r.content)).extractall(out)
    assert (out / "architecture.txt").read_text().strip() == best["lighttrack"]
    _onnx_matches_torch(out, artifacts["checkpoint"], best["lighttrack"])


def _onnx_matches_torch(directory: Path, checkpoint: Path, lighttrack: str) -> None:
    import torch

    from tracking.checkpoint import load_supernet
    from tracking.export import OnnxTrackerModel
    from tracking.space import Architecture

    torch.set_num_threads(1)
    supernet, _ = load_supernet(str(checkpoint))
    supernet.eval()  # the supernet itself along the architecture's path: extraction and export both checked
    arch = Architecture.from_string(lighttrack, supernet.space)
    rng = np.random.default_rng(0)
    z = rng.standard_normal((1, 3, 128, 128)).astype(np.float32)
    x = rng.standard_normal((1, 3, 256, 256)).astype(np.float32)
    with torch.no_grad():
        zf_t = supernet.template_feature(torch.from_numpy(z), arch)
        cls_t, reg_t = supernet.track(zf_t, torch.from_numpy(x), arch)
    onnx = OnnxTrackerModel(directory, threads=1)
    zf_o = onnx.template_feature(z)
    cls_o, reg_o = onnx.track(zf_o, x)
    for got, want in ((zf_o, zf_t), (cls_o, cls_t), (reg_o, reg_t)):
        want = want.numpy()
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4 * max(1.0, float(np.abs(want).max())))
