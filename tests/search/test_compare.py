"""``lutnas search compare``: the front's points at or below Mobile's latency and Mobile itself,
retrained with the same budget and seeds, side by side on held-out sequences."""

from __future__ import annotations

import json

import pytest
import torch

from lutnas.cli import main
from tracking.space import lighttrack_mobile

from .conftest import synthetic_unit_ms, write_store


def _run(capsys, *argv):
    with pytest.raises(SystemExit) as e:
        main(list(argv))
    out, err = capsys.readouterr()
    return e.value.code, out, err


@pytest.fixture(scope="module")
def search_out(tmp_path_factory):
    """A real (tiny) search on a briefly trained supernet, with a synthetic-unit latency table."""
    from tracking.data.synth import SynthConfig, generate_synthetic
    from tracking.space import SearchSpace
    from tracking.train import TrainConfig, train_supernet

    root = tmp_path_factory.mktemp("compare")
    small = SynthConfig(width=160, height=120, max_size=40)
    train = generate_synthetic(root / "train", 2, 6, seed=0, config=small, progress=False)
    test = generate_synthetic(root / "test", 2, 6, seed=1, config=small, progress=False)
    torch.manual_seed(0)
    ckpt = root / "supernet.pt"
    train_supernet(train, ckpt, TrainConfig(iters_per_epoch=2, batch_size=2, warmup_iters=1, threads=1),
                   progress=False)
    table = write_store(root / "t.sqlite", {"cpu": synthetic_unit_ms(SearchSpace.paper(), 1.0, 1)})
    out = root / "out"
    with pytest.raises(SystemExit) as e:
        main(["search", "run", "--supernet", str(ckpt), "--data", str(train), "--table", table, "--pareto",
              "--population", "4", "--generations", "1", "--pairs", "4", "--bn-batches", "0", "--out", str(out)])
    assert e.value.code == 0
    return {"root": root, "ckpt": ckpt, "train": train, "test": test, "out": out}


def compare_args(f, *extra):
    return ["search", "compare", str(f["out"]), "--supernet", str(f["ckpt"]), "--data", str(f["train"]),
            "--test-data", str(f["test"]), "--reference", "mobile", "--iters", "2", "--seeds", "2", "--picks", "1",
            "--sequences", "2", "--frames", "4", "--threads", "1", *extra]


def test_compare_has_mobile_and_spread_and_reproduces(capsys, search_out):
    f = search_out
    code, out, err = _run(capsys, *compare_args(f, "--quiet"))
    assert code == 0, err
    assert "LightTrack-Mobile" in out and "±" in out and "pick 1" in out
    doc = json.loads((f["out"] / "compare.json").read_text())
    ref, pick = doc["rows"]
    assert ref["arch"] == lighttrack_mobile().to_string() and ref["seeds"] == [0, 1]
    assert pick["latency_ms"] <= ref["latency_ms"] and pick["seeds"] == [0, 1]
    for r in (ref, pick):
        assert r["ao_sd"] is not None and len(r["ao"]) == 2 and 0 <= r["ao_mean"] <= 1
    v = doc["verdicts"][0]
    assert v["name"] == "pick 1" and v["ao_diff_se"] is not None and v["note"]
    # a fresh work folder retrains everything again: the same seeds give the same figures
    code, out, err = _run(capsys, *compare_args(f, "--json", "--workdir", str(f["root"] / "again")))
    assert code == 0, err
    again = json.loads(out)
    assert [r["ao"] for r in again["rows"]] == [r["ao"] for r in doc["rows"]]
    assert [r["sr50"] for r in again["rows"]] == [r["sr50"] for r in doc["rows"]]


@pytest.mark.parametrize("extra, message", [
    (["--reference", "resnet"], "--reference"),
    (["--target", "npu"], "--target 'npu'"),
])
def test_compare_bad_input_is_one_line(capsys, search_out, extra, message):
    code, _, err = _run(capsys, *compare_args(search_out, *extra))
    assert code == 2 and message in err and err.strip().count("\n") == 0


def test_compare_needs_a_search_result(capsys, search_out, tmp_path):
    f = {**search_out, "out": tmp_path}
    code, _, err = _run(capsys, *compare_args(f))
    assert code == 2 and "ranked.json" in err
