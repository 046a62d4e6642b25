"""Reading a finished search through the SDK and the CLI: ranked results, fronts, exports.

A real profiler agent measures the hardware target's latency table on this machine (very short
timing windows: the figures are not the point here), and a real ``lutnas worker`` process runs
a tiny search (population 4, 2 generations, a 4-pair validation proxy on an untrained
supernet) against the test server's database.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from client import Client, Search

pytestmark = [pytest.mark.timeout(900), pytest.mark.slow]

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def finished(live_server, supernet_files, tmp_path_factory) -> Iterator[tuple[Client, Search, int]]:
    ckpt, data = supernet_files
    logs = tmp_path_factory.mktemp("finished-search")
    c = live_server.new_team("finished")
    hw = c.hardware.register("finished-cpu")
    token = c.agent_tokens.create(hw.id, "local").token
    agent = subprocess.run(
        [str(BIN / "lutnas-agent"), "--server", live_server.url, "--token", str(token), "--exit-when-done",
         "--max-other-load", "off",  # not what this test is about (tests/server/test_agent_protocol.py)
         "--min-time", "0.005", "--max-time", "0.02", "--batch", "32"],
        capture_output=True, text=True, timeout=600,
    )
    assert agent.returncode == 0, agent.stderr[-2000:]
    assert c.latency.coverage(hw.id).fraction == 1.0

    sn = c.supernets.register("untrained", str(ckpt), str(data))
    search = c.searches.submit(sn.id, [hw.id], population=4, generations=2, seed=0)
    env = dict(live_server.env, LUTNAS_SCORER_PAIRS="4", LUTNAS_SCORER_BN_BATCHES="0",
               LUTNAS_TORCH_THREADS="1", LUTNAS_POLL_SECONDS="0.2")
    with (logs / "worker.log").open("wb") as log:
        worker = subprocess.Popen([str(BIN / "lutnas"), "worker"], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        seen: list[int] = []
        search.wait(progress=lambda s: seen.append(s.progress.generation), poll=0.3, timeout=600)
    finally:
        worker.terminate()
        worker.wait(timeout=120)
    assert search.status == "succeeded", (search.error, (logs / "worker.log").read_text()[-3000:])
    assert seen == sorted(seen) and seen[-1] == 2  # progress only moves forward
    yield c, search, hw.id
    c.close()


def test_results_and_fronts_as_dataframes(finished) -> None:
    c, search, hw = finished
    df = search.results_df()
    assert list(df["rank"]) == list(range(1, len(df) + 1)) and 4 <= len(df) <= search.progress.evaluated
    assert df["architecture_id"].is_unique and df["architecture_id"].str.fullmatch(r"[0-9a-f]{16}").all()
    latency = df[f"latency_ms_{hw}"]
    assert (latency > 0).all() and df["flops"].gt(0).all() and df["params"].gt(0).all()

    front = search.pareto_df(hw)
    assert list(front.columns) == ["architecture_id", "lighttrack", "score", "score_se", "latency_ms",
                                   "predicted_ms", "measured_ms", "over_budget"]
    assert (front["predicted_ms"] == front["latency_ms"]).all()  # measured_ms: once the target's agents ran them
    assert front["score_se"].notna().all() and (front["score_se"] >= 0).all()
    assert df["score_se"].notna().all()  # every ranked score has its standard error
    ref = front.attrs["reference"]  # LightTrack-Mobile's own point on this hardware
    assert ref["name"] == "LightTrack-Mobile" and ref["score_se"] is not None and ref["latency_ms"] > 0
    [mobile] = c.latency.predict(hw, [ref["lighttrack"]])
    assert mobile.id == ref["architecture_id"] and mobile.latency_ms == pytest.approx(ref["latency_ms"])
    assert len(front) == search.progress.front_size >= 1
    assert front["latency_ms"].is_monotonic_increasing
    assert front["score"].is_monotonic_increasing  # slower points on a front must score higher
    assert set(front["architecture_id"]) <= set(df["architecture_id"])
    ranked = df.set_index("architecture_id")
    assert np.allclose(front["latency_ms"], ranked.loc[front["architecture_id"], f"latency_ms_{hw}"])
    for _, row in df.iterrows():  # nothing evaluated dominates a front point
        dominated = (front["latency_ms"] > row[f"latency_ms_{hw}"]) & (front["score"] < row["score"])
        assert not dominated.any()
    assert front.attrs["hardware_id"] == hw and 0 <= front.attrs["hypervolume"] <= 1
    # one target: the front's normalised hypervolume is the search's own (its progress), and the
    # score x ms area is that times the reference latency
    assert front.attrs["hypervolume"] == search.progress.hypervolume
    ref_ms = front.attrs["reference_point"]["latency_ms"]
    assert front.attrs["hypervolume_score_ms"] == pytest.approx(front.attrs["hypervolume"] * ref_ms)

    team_front = c.pareto_df(search.supernet_id, hw)  # one finished search: the same front
    assert team_front["architecture_id"].tolist() == front["architecture_id"].tolist()

    best = search.best()
    assert best is not None and best.architecture_id == df["architecture_id"][0]
    [predicted] = c.latency.predict(hw, [best.lighttrack])  # the LUT the search used
    assert predicted.id == best.architecture_id
    assert predicted.latency_ms == pytest.approx(best.latency_ms[str(hw)])


def test_architecture_details_and_exports(finished, tmp_path: Path) -> None:
    c, search, _ = finished
    best = search.best()
    assert best is not None
    info = c.architectures.get(best.architecture_id)
    assert info.lighttrack == best.lighttrack and info.flops == best.flops
    assert any(s.search_id == search.id for s in info.scores)

    text = c.architectures.export(best.architecture_id, "lighttrack")
    assert text.decode().strip() == best.lighttrack
    as_json = json.loads(c.architectures.export(best.architecture_id, "json"))
    assert as_json["id"] == best.architecture_id

    # The server has one request thread (conftest): the export runs on its heavy pool, so other
    # requests are answered while it runs.
    exported: dict[str, Path] = {}
    exporter = threading.Thread(target=lambda: exported.update(search.export(format="onnx", out_dir=tmp_path / "onnx")))
    exporter.start()
    answered = 0
    time.sleep(0.05)
    while exporter.is_alive():
        assert c.searches.get(search.id).status == "succeeded"
        answered += 1 if exporter.is_alive() else 0
    exporter.join()
    assert answered >= 3, f"only {answered} requests answered while the ONNX export ran"
    files = exported
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    template = ort.InferenceSession(str(files["template"]), options)
    tracker = ort.InferenceSession(str(files["search"]), options)
    rng = np.random.default_rng(0)
    [zf] = template.run(None, {"template": rng.standard_normal((1, 3, 128, 128), dtype=np.float32)})
    cls, reg = tracker.run(None, {"search": rng.standard_normal((1, 3, 256, 256), dtype=np.float32), "zf": zf})
    assert cls.shape == (1, 1, 16, 16) and reg.shape == (1, 4, 16, 16)
    assert np.isfinite(cls).all() and (reg >= 0).all()


def test_cli_reads_a_finished_search(lutnas, live_server, finished, tmp_path: Path) -> None:
    c, search, hw = finished
    env = dict((k, v) for k, v in live_server.env.items() if k not in ("LUTNAS_ADMIN_TOKEN",))
    env.update(LUTNAS_SERVER=live_server.url, LUTNAS_API_KEY=c.api_key or "")
    sid = str(search.id)

    watch = lutnas("search", "watch", sid, env=env)
    assert watch.returncode == 0 and "succeeded" in watch.stdout

    results = lutnas("search", "results", sid, "--limit", "2", "--csv", str(tmp_path / "r.csv"), env=env)
    assert results.returncode == 0, results.stderr
    with (tmp_path / "r.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(search.results_df()) and rows[0]["architecture_id"] in results.stdout
    top2 = json.loads(lutnas("search", "results", sid, "--limit", "2", "--json", env=env).stdout)
    assert [r["rank"] for r in top2] == [1, 2]

    pareto = lutnas("search", "pareto", sid, "--hardware", str(hw), "--plot", str(tmp_path / "front.png"),
                    "--csv", str(tmp_path / "front.csv"), env=env)
    assert pareto.returncode == 0, pareto.stderr
    assert (tmp_path / "front.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with (tmp_path / "front.csv").open() as f:
        front_rows = list(csv.DictReader(f))
    assert len(front_rows) == search.progress.front_size and all(r["score_se"] for r in front_rows)
    assert "LightTrack-Mobile (reference): score" in pareto.stdout and " ± " in pareto.stdout
    team = lutnas("search", "pareto", "--supernet", str(search.supernet_id), "--hardware", str(hw), "--json",
                  env=env)
    team_json = json.loads(team.stdout)
    assert team_json["hardware_id"] == hw and team_json["reference"]["name"] == "LightTrack-Mobile"
    assert all(p["score_se"] is not None for p in team_json["points"])

    best = search.best()
    assert best is not None
    lighttrack = lutnas("search", "export", sid, "--format", "lighttrack", env=env)
    assert lighttrack.returncode == 0 and lighttrack.stdout.strip() == best.lighttrack
    exported = lutnas("search", "export", sid, "--rank", "2", "--format", "json", "--out", str(tmp_path / "j"),
                      env=env)
    assert exported.returncode == 0, exported.stderr
    [written] = (tmp_path / "j").glob("*.json")
    assert json.loads(written.read_text())["id"] == written.stem == search.results_df()["architecture_id"][1]

    missing = lutnas("search", "export", sid, "--rank", "999", env=env)
    assert missing.returncode == 2 and "no result at rank 999" in missing.stderr
