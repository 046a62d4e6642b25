"""Candidate scoring on Ray (search/ray_pool.py), on a real local Ray and a real ``ray start`` cluster.

One small search (a random-weight supernet whose BN statistics are recalibrated, so scores differ
between architectures) is run in-process on one thread; every Ray variant must write byte-identical
results files: two actors, an actor killed mid-generation, and a cluster that goes away and comes
back (the search resumes from the state saved after its last finished generation).
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import pytest

pytest.importorskip("ray")

from lutnas.cli import main  # noqa: E402
from search.ray_pool import (  # noqa: E402
    ClusterPool,
    RayClusterError,
    RayScoringPool,
    ScorerSpec,
    connect,
    open_pool,
    shutdown,
)
from tests.conftest import RayCluster, free_port  # noqa: E402

from .conftest import synthetic_unit_ms, write_store  # noqa: E402

SCORER = {"n_pairs": 2, "bn_batches": 1, "bn_batch_size": 2}  # tiny but non-trivial scores
RAY = Path(sys.executable).parent / "ray"


@pytest.fixture(scope="module", autouse=True)
def ray_session():
    """One setting for every Ray this module starts or joins (Ray reads it once per process: a
    driver and a cluster that disagree refuse each other's calls); Ray is stopped at the end."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RAY_AUTH_MODE", "disabled")  # loopback test clusters; docs/deployment.md sets a token
        yield
        shutdown()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, space):
    import torch

    from latency_tables.predict import LatencyPredictor
    from search.cli import _config
    from tracking.checkpoint import save_checkpoint
    from tracking.data.synth import generate_synthetic
    from tracking.supernet import Supernet

    root = tmp_path_factory.mktemp("ray")
    torch.manual_seed(0)
    ckpt = save_checkpoint(root / "net.pt", Supernet(space), {"note": "random weights"})
    data = generate_synthetic(root / "val", sequences=2, frames=6, seed=0, progress=False)
    cfg = _config(algorithm="pareto", population=4, generations=2, seed=0, parents=4, batch_size=8)
    tables = {"cpu": LatencyPredictor(synthetic_unit_ms(space, 1.0, 1), space)}
    return {"spec": ScorerSpec(str(ckpt), str(data), "pairs", SCORER), "cfg": cfg, "tables": tables,
            "root": root}


def files_of(result, out: Path) -> dict[str, bytes]:
    from search.report import write_ranked

    return {p.name: p.read_bytes() for p in write_ranked(result, out)}


@pytest.fixture(scope="module")
def reference(inputs):
    """The search scored in this process on one thread (as each actor scores)."""
    import torch

    from search.evaluators import SupernetAccuracy
    from search.runner import run_search

    spec = inputs["spec"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        acc = SupernetAccuracy.from_checkpoint(spec.supernet_path, spec.data_dir, mode=spec.mode, **SCORER)
        result = run_search(inputs["cfg"], acc, inputs["tables"])
    finally:
        torch.set_num_threads(threads)
    assert len({r.score for r in result.ranked}) > 2, "scores must differ for the comparison to mean anything"
    return files_of(result, inputs["root"] / "reference")


@pytest.fixture(scope="module")
def local_pool(inputs):
    connect(None, num_cpus=4)  # the local Ray, with room for this pool and the service test's
    with RayScoringPool(inputs["spec"], workers=2) as pool:
        yield pool


def test_two_ray_actors_write_the_same_results_as_one_in_process_worker(inputs, reference, local_pool, tmp_path):
    from search.runner import run_search

    pool = local_pool
    assert len(set(pool.pids)) == 2 and os.getpid() not in pool.pids
    result = run_search(inputs["cfg"], pool, inputs["tables"])
    assert pool.scored == result.evaluated + (1 if result.reference_arch.evaluated_for_reference else 0)
    assert pool.restarts == 0
    assert files_of(result, tmp_path) == reference


def test_an_actor_killed_mid_generation_is_replaced_and_the_result_is_identical(inputs, reference, local_pool,
                                                                                 tmp_path):
    from search.runner import run_search

    gens_done, killed = [0], []

    def kill_once(slot: int, pid: int) -> None:
        if gens_done[0] == 1 and not killed:  # the second generation's first candidate is in flight
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    pool = local_pool
    pool.on_dispatch = kill_once
    try:
        result = run_search(inputs["cfg"], pool, inputs["tables"],
                            on_generation=lambda p, s: gens_done.__setitem__(0, gens_done[0] + 1))
    finally:
        pool.on_dispatch = None
    assert killed and killed[0] not in pool.pids and pool.restarts >= 1
    assert files_of(result, tmp_path) == reference


def test_the_service_worker_scores_on_ray_and_keeps_its_cache(inputs, reference, local_pool, tmp_path):
    """LUTNAS_EVAL_WORKERS=2: the worker's cached evaluator asks Ray actors only for architectures
    its score_cache lacks, and gets the in-process scores."""
    import json

    from server.db import create_engine_for, make_sessionmaker, session_scope
    from server.jobs.worker import DbCachedAccuracy
    from server.migrate import upgrade
    from server.models import ScoreCache, Supernet, Team
    from server.settings import Settings
    from tracking.space import Architecture

    engine = create_engine_for(f"sqlite:///{tmp_path / 'w.db'}")
    upgrade(engine)
    factory = make_sessionmaker(engine)
    spec = inputs["spec"]
    with session_scope(factory) as s:
        team = Team(name="ray")
        s.add(team)
        s.flush()
        s.add(Supernet(team_id=team.id, name="x", checkpoint_path=spec.supernet_path, data_path=spec.data_dir,
                       space={}))
    settings = Settings(eval_workers=2, scorer_pairs=SCORER["n_pairs"], scorer_bn_batches=SCORER["bn_batches"],
                        scorer_bn_batch_size=SCORER["bn_batch_size"])
    ranked = json.loads(reference["ranked.json"])["architectures"][:3]
    archs = [Architecture.from_string(r["arch"]) for r in ranked]
    with factory() as s:
        acc = DbCachedAccuracy(factory, s.get(Supernet, 1), "pairs", settings)
        try:
            assert [x.value for x in acc.evaluate(archs[:2])] == [r["score"] for r in ranked[:2]]
            pool = acc._base()
            assert isinstance(pool, RayScoringPool) and pool.scored == 2
            assert [x.value for x in acc.evaluate(archs)] == [r["score"] for r in ranked]
            assert pool.scored == 3 and acc.hits == 2  # the cached two never reached an actor
        finally:
            acc.close()
    with factory() as s:
        assert len(s.query(ScoreCache).all()) == 3
    engine.dispose()


def test_cluster_gone_fails_with_one_line_then_resumes_to_the_same_result(inputs, reference, tmp_path, capsys,
                                                                          space):
    from search.runner import run_search

    port = free_port()
    # nothing there yet: the CLI says so in one line, without starting anything
    with pytest.raises(SystemExit) as e:
        main(["search", "run", "--supernet", inputs["spec"].supernet_path, "--data", inputs["spec"].data_dir,
              "--table", write_store(tmp_path / "t.sqlite", {"cpu": synthetic_unit_ms(space, 1.0, 1)}), "--pareto", "--out", str(tmp_path / "cli"),
              "--ray-address", f"127.0.0.1:{port}"])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and len(err.splitlines()) == 1 and "cannot connect to the Ray cluster" in err, err
    cluster = RayCluster(port, tmp_path)
    cluster.start()
    try:
        saved: list[dict] = []

        def gone_after_first(p: dict, state: dict) -> None:
            saved.append(state)
            if len(saved) == 1:
                cluster.kill()

        with open_pool(inputs["spec"], workers=2, address=cluster.address) as pool:
            assert isinstance(pool, ClusterPool)  # the driver is a child process: Ray may end it, not us
            with pytest.raises(RayClusterError) as gone:
                run_search(inputs["cfg"], pool, inputs["tables"], on_generation=gone_after_first)
        msg = str(gone.value)
        assert len(saved) == 1 and "went away" in msg and len(msg.splitlines()) == 1
        cluster.start()  # back, at the same address
        with open_pool(inputs["spec"], workers=2, address=cluster.address) as pool:
            result = run_search(inputs["cfg"], pool, inputs["tables"], state=saved[0])
            assert pool.scored < result.evaluated  # generation 0 was not scored again
        assert files_of(result, tmp_path / "resumed") == reference
    finally:
        cluster.kill()
