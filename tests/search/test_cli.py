"""``lutnas search run`` error paths: one line on stderr, exit code 2, nothing evaluated."""

import pytest

from lutnas.cli import main
from search.evaluators import LatencyEvaluator

from .conftest import synthetic_unit_ms, write_store


@pytest.fixture
def files(tmp_path, space):
    ckpt = tmp_path / "supernet.pt"
    ckpt.write_bytes(b"not reached: the table checks fail first")
    data = tmp_path / "val"
    data.mkdir()
    one = write_store(tmp_path / "cpu.sqlite", {"cpu": synthetic_unit_ms(space, 1.0, 1)})
    two = write_store(tmp_path / "two.sqlite", {"a": synthetic_unit_ms(space, 1.0, 1),
                                               "b": synthetic_unit_ms(space, 0.5, 2)})
    partial = dict(list(synthetic_unit_ms(space, 1.0, 1).items())[::2])
    holes = write_store(tmp_path / "holes.sqlite", {"holes": partial})
    return {"ckpt": str(ckpt), "data": str(data), "one": one, "two": two, "holes": holes,
            "out": str(tmp_path / "out")}


def run_cli(capsys, argv):
    with pytest.raises(SystemExit) as e:
        main(["search", "run", *argv])
    err = capsys.readouterr().err.strip()
    return e.value.code, err


def base(f, table=None):
    return ["--supernet", f["ckpt"], "--data", f["data"], "--table", table or f["one"], "--out", f["out"]]


@pytest.mark.parametrize("extra, message", [
    ([], "exactly one of --budget-ms X or --pareto"),
    (["--pareto", "--budget-ms", "3"], "exactly one of --budget-ms X or --pareto"),
    (["--pareto", "--population", "3"], "population"),
    (["--pareto", "--generations", "0"], "generations"),
    (["--pareto", "--mode", "frames"], "--mode must be pairs or sequences"),
    (["--pareto", "--scoring-runtime", "tflite"], "--scoring-runtime must be torch or onnx"),
    (["--pareto", "--scoring-runtime", "onnx", "--device", "cuda"], "tracks on the CPU"),
    (["--budget-ms", "0.001"], "cannot be met: the fastest architecture of the space takes"),
    (["--budget-ms", "5", "--target", "npu"], "not one of the tables"),
    (["--pareto", "--resume"], "no state at"),
])
def test_bad_arguments_exit_2_with_one_line(capsys, files, extra, message):
    code, err = run_cli(capsys, base(files) + extra)
    assert code == 2
    assert len(err.splitlines()) == 1 and message in err, err


def test_infeasible_budget_names_the_fastest_latency(capsys, files, space):
    from latency_tables.predict import LatencyPredictor

    fastest = LatencyEvaluator("cpu", LatencyPredictor(synthetic_unit_ms(space, 1.0, 1), space), space).extreme()[0]
    code, err = run_cli(capsys, base(files) + ["--budget-ms", f"{fastest * 0.5:.4f}"])
    assert code == 2 and f"{fastest:.4g} ms" in err and "'cpu'" in err


@pytest.mark.parametrize("which, message", [
    ("missing", "no such file"),
    ("two", "holds 2 tables; name one"),
    ("holes", "no entry for"),
    ("notadb", "is not a latency-table database"),
])
def test_bad_tables(capsys, files, tmp_path, which, message):
    table = {"missing": str(tmp_path / "nope.sqlite"), "two": files["two"], "holes": files["holes"]}.get(which)
    if which == "notadb":
        table = str(tmp_path / "junk.sqlite")
        (tmp_path / "junk.sqlite").write_text("hello")
    code, err = run_cli(capsys, base(files, table) + ["--pareto"])
    assert code == 2 and len(err.splitlines()) == 1 and message in err, err


def test_named_table_and_missing_inputs(capsys, files):
    code, err = run_cli(capsys, base(files, files["two"] + "#zzz") + ["--pareto"])
    assert code == 2 and "no latency table named 'zzz'" in err
    f = dict(files, ckpt=files["ckpt"] + ".missing")
    code, err = run_cli(capsys, base(f) + ["--pareto"])
    assert code == 2 and "--supernet" in err and "no such file" in err
    f = dict(files, data=files["data"] + "/missing")
    code, err = run_cli(capsys, base(f) + ["--pareto"])
    assert code == 2 and "--data" in err


def test_code_space_table_check(capsys, files):
    # the paper table lacks the 40-channel stage's output units the code space needs
    code, err = run_cli(capsys, base(files) + ["--pareto", "--code-space"])
    assert code == 2 and "no entry for" in err


@pytest.mark.slow
def test_search_run_end_to_end_on_a_real_supernet(capsys, tmp_path, space):
    import json

    import pandas as pd
    import torch

    from tracking.checkpoint import save_checkpoint
    from tracking.data.synth import generate_synthetic
    from tracking.supernet import Supernet

    torch.set_num_threads(1)
    torch.manual_seed(0)
    ckpt = save_checkpoint(tmp_path / "net.pt", Supernet(space), {"note": "untrained, for the CLI path"})
    data = generate_synthetic(tmp_path / "val", sequences=2, frames=6, seed=0, progress=False)
    tables = write_store(tmp_path / "t.sqlite", {"cpu": synthetic_unit_ms(space, 1.0, 1),
                                                 "gpu": synthetic_unit_ms(space, 0.3, 2)})
    out = tmp_path / "out"
    argv = ["search", "run", "--supernet", str(ckpt), "--data", str(data), "--table", tables + "#cpu",
            "--table", tables + "#gpu", "--pareto", "--population", "4", "--generations", "2",
            "--pairs", "4", "--bn-batches", "0", "--out", str(out)]
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 0, capsys.readouterr().err
    assert "wrote" in capsys.readouterr().out
    doc = json.loads((out / "ranked.json").read_text())
    archs = doc["architectures"]
    assert doc["evaluated"] == len(archs) >= 4 and doc["front"]
    assert set(archs[0]["latency_ms"]) == {"cpu", "gpu"} and archs[0]["macs"] > 0 and archs[0]["params"] > 0
    csv = pd.read_csv(out / "ranked.csv")
    assert list(csv["arch"]) == [a["arch"] for a in archs]
    assert {"latency_ms[cpu]", "latency_ms[gpu]", "canonical_id", "score"} <= set(csv.columns)
    assert (out / "pareto.png").stat().st_size > 1000
    # resuming the finished state re-evaluates nothing and writes the same ranking
    with pytest.raises(SystemExit) as e:
        main(argv + ["--resume"])
    assert e.value.code == 0
    again = json.loads((out / "ranked.json").read_text())
    assert again["architectures"] == archs


def test_sequences_mode_on_onnxruntime(capsys, files, tmp_path, space):
    """--mode sequences --scoring-runtime onnx: every candidate tracked on onnxruntime, the run
    completes with a score per architecture."""
    import json

    import torch

    from tracking.checkpoint import save_checkpoint
    from tracking.data.synth import generate_synthetic
    from tracking.supernet import Supernet

    torch.set_num_threads(1)
    torch.manual_seed(0)
    ckpt = save_checkpoint(tmp_path / "net.pt", Supernet(space), {"note": "untrained, for the CLI path"})
    data = generate_synthetic(tmp_path / "seq", sequences=2, frames=4, seed=0, progress=False)
    out = tmp_path / "out"
    argv = ["search", "run", "--supernet", str(ckpt), "--data", str(data), "--table", files["one"],
            "--pareto", "--population", "4", "--generations", "1", "--mode", "sequences",
            "--scoring-runtime", "onnx", "--bn-batches", "0", "--out", str(out)]
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 0, capsys.readouterr().err
    archs = json.loads((out / "ranked.json").read_text())["architectures"]
    assert len(archs) >= 4 and all(0 <= a["score"] <= 1 for a in archs)


@pytest.mark.slow
def test_an_ensemble_of_supernets_scores_the_mean_of_its_members(capsys, tmp_path, space):
    """``--supernet A --supernet B``: every candidate's score is the mean of A's and B's scores of it
    (each scored alone with the same settings), its standard error the members' combined."""
    import json
    import math

    import torch

    from search.evaluators import SupernetAccuracy
    from tracking.checkpoint import save_checkpoint
    from tracking.data.synth import generate_synthetic
    from tracking.space import Architecture
    from tracking.supernet import Supernet

    torch.set_num_threads(1)
    ckpts = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        ckpts.append(str(save_checkpoint(tmp_path / f"net{seed}.pt", Supernet(space), {"note": f"seed {seed}"})))
    data = generate_synthetic(tmp_path / "val", sequences=2, frames=6, seed=0, progress=False)
    table = write_store(tmp_path / "t.sqlite", {"cpu": synthetic_unit_ms(space, 1.0, 1)})
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as e:
        main(["search", "run", "--supernet", ckpts[0], "--supernet", ckpts[1], "--data", str(data), "--table", table,
              "--pareto", "--population", "4", "--generations", "1", "--pairs", "4", "--bn-batches", "1",
              "--out", str(out)])
    assert e.value.code == 0, capsys.readouterr().err
    assert "ensemble of 2 supernets" in capsys.readouterr().out
    rows = json.loads((out / "ranked.json").read_text())["architectures"]
    rows = rows[:2]  # two candidates re-scored alone are enough, and keep the suite's time
    archs = [Architecture.parse(r["arch"], space) for r in rows]
    members = [SupernetAccuracy.from_checkpoint(c, str(data), n_pairs=4, bn_batches=1).evaluate(archs) for c in ckpts]
    assert any(a.value != b.value for a, b in zip(*members, strict=True))  # two different scorers
    for r, a, b in zip(rows, *members, strict=True):
        assert r["score"] == pytest.approx((a.value + b.value) / 2, abs=1e-9)
        assert r["score_se"] == pytest.approx(math.hypot(a.se, b.se) / 2, abs=1e-9)

    code, err = run_cli(capsys, ["--supernet", ckpts[0], "--supernet", ckpts[0], "--data", str(data),
                                 "--table", table, "--pareto", "--out", str(out)])
    assert code == 2 and len(err.splitlines()) == 1 and "the same checkpoint given twice" in err, err
