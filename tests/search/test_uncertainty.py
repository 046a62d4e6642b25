"""Standard errors travel with every score, and LightTrack-Mobile's own point marks every front.

Search level (the analytic surrogate, and a seeded evaluator that also reports a standard error),
the written outputs (ranked.csv/json, front table, plot), states saved before either existed,
and the real ``lutnas search run`` on a tiny untrained supernet, whose reference score must
equal scoring Mobile's path directly with the same validation settings.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np
import pytest

from search.config import SearchConfig
from search.evaluators import CachedAccuracy, Score, SurrogateAccuracy, as_score
from search.report import fmt_score, front_table, plot_pareto, ranked_frame, reference_gains, write_ranked
from search.runner import run_search
from tracking.space import LIGHTTRACK_MOBILE, Architecture, lighttrack_mobile

from .conftest import synthetic_unit_ms, write_store


class SurrogateWithSE:
    """The surrogate's score plus a standard error that depends on the architecture only (a
    seeded hash of its canonical id), as the supernet scorer's does."""

    def __init__(self, surrogate: SurrogateAccuracy) -> None:
        self.surrogate = surrogate
        self.calls: list[str] = []

    def evaluate(self, archs: Sequence[Architecture]) -> list[Score]:
        self.calls.extend(a.canonical_id() for a in archs)
        values = self.surrogate.evaluate(archs)
        return [Score(v, 0.005 + int(a.canonical_id()[:4], 16) / 65535 * 0.02) for v, a in zip(values, archs,
                                                                                                strict=True)]


def small(**kw: object) -> SearchConfig:
    base: dict[str, object] = dict(population=12, generations=4, parents=4, seed=0, algorithm="pareto")
    base.update(kw)
    return SearchConfig(**base)  # type: ignore[arg-type]


def test_score_normalisation_and_old_caches() -> None:
    assert as_score(0.5) == Score(0.5, None)
    assert as_score((0.5, 0.01)) == Score(0.5, 0.01) and as_score(Score(0.4, None)) == Score(0.4, None)
    cached = CachedAccuracy(SurrogateAccuracy(), cache={lighttrack_mobile().canonical_id(): 0.3})  # old: no se
    assert cached.evaluate([lighttrack_mobile()]) == [Score(0.3, None)] and cached.evaluated == 0


def test_reference_point_is_mobiles_own_score_and_latency(space, surrogate, cpu_table, gpu_table) -> None:
    r = run_search(small(), surrogate, {"cpu": cpu_table, "gpu": gpu_table})
    ref = r.reference_arch
    mobile = lighttrack_mobile()
    assert ref is not None and ref.name == "LightTrack-Mobile" and ref.arch == LIGHTTRACK_MOBILE
    assert ref.canonical_id == mobile.canonical_id()
    assert ref.score == surrogate.evaluate([mobile])[0] and ref.score_se is None  # the surrogate has none
    assert ref.latency_ms == {"cpu": float(cpu_table.predict_batch([mobile])[0]),
                              "gpu": float(gpu_table.predict_batch([mobile])[0])}
    assert ref.feasible  # a Pareto search has no constraint
    in_ranked = [x for x in r.ranked if x.canonical_id == ref.canonical_id]
    assert ref.evaluated_for_reference == (not in_ranked)  # never a second evaluation of one architecture
    assert r.state["reference_arch"]["accuracy"] == ref.score  # kept in the resumable state
    # a budget below Mobile's latency: still shown, marked infeasible
    budget = float(cpu_table.predict_batch([mobile])[0]) * 0.8
    rb = run_search(small(algorithm="evolution", budget_ms=budget, target="cpu"), surrogate, {"cpu": cpu_table})
    assert rb.reference_arch is not None and not rb.reference_arch.feasible


def test_reference_taken_from_the_records_when_the_search_evaluated_mobile(surrogate, cpu_table) -> None:
    states: list[dict] = []
    run_search(small(generations=1), surrogate, {"cpu": cpu_table}, on_generation=lambda p, s: states.append(s))
    state = json.loads(json.dumps(states[0]))
    mobile = lighttrack_mobile()
    # as if the first generation had evaluated Mobile itself (records are the evaluation cache)
    state["records"][mobile.canonical_id()] = {"arch": LIGHTTRACK_MOBILE, "accuracy": 0.123, "accuracy_se": 0.004,
                                               "latency": {"cpu": float(cpu_table.predict_batch([mobile])[0])},
                                               "generation": 0}
    counting = SurrogateWithSE(surrogate)
    r = run_search(small(generations=1), counting, {"cpu": cpu_table}, state=state)
    assert r.reference_arch is not None and (r.reference_arch.score, r.reference_arch.score_se) == (0.123, 0.004)
    assert not r.reference_arch.evaluated_for_reference and counting.calls == []


def test_standard_errors_in_ranked_front_state_and_resume(surrogate, cpu_table, gpu_table) -> None:
    acc = SurrogateWithSE(surrogate)
    tables = {"cpu": cpu_table, "gpu": gpu_table}
    states: list[str] = []
    r = run_search(small(), acc, tables, on_generation=lambda p, s: states.append(json.dumps(s)))
    assert len(acc.calls) == len(set(acc.calls)) == r.evaluated + (1 if r.reference_arch.evaluated_for_reference
                                                                     else 0)  # type: ignore[union-attr]
    assert all(x.score_se is not None and x.score_se > 0 for x in r.ranked)
    for x in r.ranked:
        assert x.score_se == pytest.approx(0.005 + int(x.canonical_id[:4], 16) / 65535 * 0.02)
    assert all(x.score_se is not None for x in r.front)
    assert r.reference_arch is not None and r.reference_arch.score_se is not None
    assert all(rec["accuracy_se"] > 0 for rec in r.state["records"].values())
    resumed = run_search(small(), SurrogateWithSE(surrogate), tables, state=json.loads(states[1]))
    assert resumed.model_dump(exclude={"state"}) == r.model_dump(exclude={"state"})


def test_states_saved_before_standard_errors_still_resume(surrogate, cpu_table) -> None:
    states: list[dict] = []
    full = run_search(small(), surrogate, {"cpu": cpu_table}, on_generation=lambda p, s: states.append(s))
    old = json.loads(json.dumps(states[1]))
    for rec in old["records"].values():
        del rec["accuracy_se"]
    del old["reference_arch"]
    resumed = run_search(small(), surrogate, {"cpu": cpu_table}, state=old)
    assert [x.score for x in resumed.ranked] == [x.score for x in full.ranked]
    assert all(x.score_se is None for x in resumed.ranked)
    assert resumed.reference_arch == full.reference_arch


def test_written_outputs_carry_se_and_reference(tmp_path, surrogate, cpu_table) -> None:
    from rich.console import Console

    r = run_search(small(), SurrogateWithSE(surrogate), {"cpu": cpu_table})
    df = ranked_frame(r)
    assert df["score_se"].notna().all() and list(df.columns[:5]) == ["rank", "arch", "canonical_id", "score",
                                                                      "score_se"]
    csv_path, json_path = write_ranked(r, tmp_path)
    doc = json.loads(json_path.read_text())
    assert all(a["score_se"] is not None for a in doc["architectures"])
    assert doc["reference_arch"]["arch"] == LIGHTTRACK_MOBILE and doc["reference_arch"]["score_se"] > 0
    gains = doc["reference_gains"]["cpu"]
    ref = r.reference_arch
    assert ref is not None and gains == reference_gains(r)["cpu"]
    faster = [x.score for x in r.ranked if x.latency_ms["cpu"] <= ref.latency_ms["cpu"]]
    assert gains["best_score_at_latency"] == (max(faster) if faster else None)
    console = Console(width=250, record=True)
    console.print(front_table(r))
    text = console.export_text()
    assert "ref: LightTrack-Mobile" in text and " ± " in text
    ref_line = [ln for ln in text.splitlines() if ref.canonical_id in ln]
    assert len(ref_line) == 1 and ref_line[0].split()[1] == "ref"
    assert fmt_score(ref.score, ref.score_se) in ref_line[0]
    best = r.front[0]
    assert f"{best.score:.4f} ± {best.score_se:.4f}" in text
    assert plot_pareto(r, tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_lutnas_search_run_reports_se_and_mobiles_point(tmp_path, space, capsys) -> None:
    import pandas as pd
    import torch

    from lutnas.cli import main
    from tracking.checkpoint import load_supernet, save_checkpoint
    from tracking.data.synth import generate_synthetic
    from tracking.supernet import Supernet
    from tracking.validate import ValidationScorer

    torch.set_num_threads(1)
    torch.manual_seed(0)
    ckpt = save_checkpoint(tmp_path / "net.pt", Supernet(space), {"note": "untrained, for the CLI path"})
    data = generate_synthetic(tmp_path / "val", sequences=2, frames=6, seed=0, progress=False)
    tables = write_store(tmp_path / "t.sqlite", {"cpu": synthetic_unit_ms(space, 1.0, 1)})
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as e:
        main(["search", "run", "--supernet", str(ckpt), "--data", str(data), "--table", tables, "--pareto",
              "--population", "4", "--generations", "1", "--pairs", "6", "--bn-batches", "0", "--out", str(out)])
    captured = capsys.readouterr()
    assert e.value.code == 0, captured.err
    assert "LightTrack-Mobile (reference)" in captured.out and " ± " in captured.out
    assert "vs Mobile on cpu:" in captured.out
    doc = json.loads((out / "ranked.json").read_text())
    assert all(isinstance(a["score_se"], float) and a["score_se"] >= 0 for a in doc["architectures"])
    csv = pd.read_csv(out / "ranked.csv")
    assert csv["score_se"].notna().all()
    ref = doc["reference_arch"]
    # the reference is Mobile's path scored exactly as every candidate: same scorer, same pairs
    net, _ = load_supernet(str(ckpt))
    direct = ValidationScorer(net, data, "pairs", n_pairs=6, bn_batches=0).score(lighttrack_mobile())
    assert ref["arch"] == LIGHTTRACK_MOBILE
    assert ref["score"] == pytest.approx(direct["score"], abs=1e-6)
    assert ref["score_se"] == pytest.approx(direct["score_se"], abs=1e-6)
    from latency_tables.predict import LatencyPredictor

    assert ref["latency_ms"]["cpu"] == pytest.approx(
        float(LatencyPredictor(synthetic_unit_ms(space, 1.0, 1), space).predict_batch([lighttrack_mobile()])[0]))
    assert (out / "pareto.png").stat().st_size > 1000
    assert np.isfinite(doc["hypervolume"])
