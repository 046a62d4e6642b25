"""``lutnas data evaluate-results`` on hand-made results, its errors, and the round trip from
``lutnas supernet evaluate --save-results``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from tests.tracking.conftest import small_dataset
from tracking.checkpoint import save_checkpoint
from tracking.results import evaluate_results, write_results
from tracking.space import LIGHTTRACK_MOBILE
from tracking.supernet import Supernet

torch.set_num_threads(1)


def got10k_seq(root: Path, name: str, boxes: list[str], absence: list[int] | None = None,
               cover: list[int] | None = None, resolution: str | None = None) -> None:
    seq = root / name
    seq.mkdir(parents=True)
    for i in range(1, len(boxes) + 1):
        Image.new("RGB", (64, 48)).save(seq / f"{i:08d}.png")
    (seq / "groundtruth.txt").write_text("\n".join(boxes) + "\n")
    for fname, values in (("absence.label", absence), ("cover.label", cover)):
        if values is not None:
            (seq / fname).write_text("".join(f"{v}\n" for v in values))
    if resolution is not None:
        (seq / "meta_info.ini").write_text(f"[METAINFO]\nresolution: {resolution}\n")



@pytest.fixture
def hand(tmp_path) -> tuple[Path, Path]:
    """Two sequences whose scored IoUs are known by hand: A [1/3, 1/4], B [1, 2/3]."""
    data = tmp_path / "data"
    # A: 100x80 from meta_info.ini (frames are 64x48); frame 3 hidden; frame 4's truth runs past
    # the bottom-right corner
    got10k_seq(data, "A", ["10,10,20,20", "10,10,20,20", "50,50,10,10", "90,70,20,20"],
               absence=[0, 0, 1, 0], cover=[8, 8, 0, 8], resolution="(100, 80)")
    got10k_seq(data, "B", ["0,0,10,10", "0,0,10,10", "30,30,10,10"])  # 64x48 from the frame header
    (data / "list.txt").write_text("A\nB\n")
    res = tmp_path / "results"
    (res / "A").mkdir(parents=True)
    (res / "B").mkdir()
    # A frame 2: shifted 10 px, 200 / 600; frame 3 hidden (not scored, however wrong); frame 4:
    # truth clipped to [90, 70, 10, 10], prediction [80, 60, 20, 20] fits: 100 / 400
    (res / "A" / "A_001.txt").write_text("10,10,20,20\n20,10,20,20\n0,0,5,5\n80,60,20,20\n")
    # B frame 2 exact; frame 3 shifted 2 px: 80 / 120. Tabs are read too.
    (res / "B" / "B_001.txt").write_text("0\t0\t10\t10\n0,0,10,10\n32,30,10,10\n")
    (res / "B" / "B_time.txt").write_text("0.01\n0.01\n0.01\n")  # toolkit's timing file: ignored
    return data, res


def test_hand_made_results(hand, lutnas_main):
    data, res = hand
    code, out, err = lutnas_main("data", "evaluate-results", "--data", str(data), "--results", str(res), "--json")
    assert code == 0, err
    r = json.loads(out)
    assert r["ao"] == pytest.approx((1 / 3 + 1 / 4 + 1 + 2 / 3) / 4, abs=1e-12)
    assert (r["sr50"], r["sr75"], r["frames"], r["sequences"]) == (0.5, 0.25, 4, 2)
    a, b = r["per_sequence"]["A"], r["per_sequence"]["B"]
    assert a["ao"] == pytest.approx((1 / 3 + 1 / 4) / 2, abs=1e-12) and (a["sr50"], a["sr75"], a["frames"]) == (0, 0, 2)
    assert b["ao"] == pytest.approx((1 + 2 / 3) / 2, abs=1e-12) and (b["sr50"], b["sr75"], b["frames"]) == (1, 0.5, 2)
    code, out, _ = lutnas_main("data", "evaluate-results", "--data", str(data), "--results", str(res))
    assert code == 0 and "overall: AO 0.5625  SR@0.5 0.5000  SR@0.75 0.2500" in out


def test_repetitions_are_pooled(hand):
    data, res = hand
    (res / "B" / "B_002.txt").write_text("0,0,10,10\n50,0,10,10\n30,30,10,10\n")  # IoUs 0 and 1
    r = evaluate_results(data, res)
    assert r["per_sequence"]["B"]["repetitions"] == 2 and r["per_sequence"]["B"]["frames"] == 4
    assert r["per_sequence"]["B"]["ao"] == pytest.approx((1 + 2 / 3 + 0 + 1) / 4)
    assert r["frames"] == 6 and r["repetitions"] == 2


def _break(res: Path, what: str) -> None:
    if what == "malformed":
        (res / "A" / "A_001.txt").write_text("10,10,20,20\n20,10,x,20\n0,0,5,5\n80,60,20,20\n")
    elif what == "count":
        (res / "B" / "B_001.txt").write_text("0,0,10,10\n0,0,10,10\n")
    elif what == "unknown":
        (res / "ZZZ").mkdir()
    elif what == "missing":
        (res / "B" / "B_001.txt").unlink()
    elif what == "values":
        (res / "B" / "B_001.txt").write_text("0,0,10,10\n0,0,10\n32,30,10,10\n")


@pytest.mark.parametrize("what, needle", [
    ("malformed", "A_001.txt:2: not numbers"),
    ("count", "B_001.txt: 2 boxes for 3 frames"),
    ("unknown", "unknown sequence 'ZZZ'"),
    ("missing", "results for sequence 'B' missing"),
    ("values", "B_001.txt:2: 3 values, expected 4"),
])
def test_bad_results_one_line_exit_2(hand, lutnas_main, what, needle):
    data, res = hand
    _break(res, what)
    code, out, err = lutnas_main("data", "evaluate-results", "--data", str(data), "--results", str(res))
    assert code == 2 and needle in err and err.count("\n") == 1 and "Traceback" not in err + out


def test_missing_folders_exit_2(hand, tmp_path, lutnas_main):
    data, res = hand
    for argv in (["--data", str(tmp_path / "nope"), "--results", str(res)],
                 ["--data", str(data), "--results", str(tmp_path / "nope")]):
        code, _, err = lutnas_main("data", "evaluate-results", *argv)
        assert code == 2 and "does not exist" in err and err.count("\n") == 1


def test_write_results_round_trips_exactly(hand, tmp_path):
    data, _ = hand
    boxes = {"A": [[10, 10, 20, 20], [20 + 1 / 3, 10, 20, 20], [0, 0, 5, 5], [80, 60, 20, 20]],
             "B": [[0, 0, 10, 10], [0, 0, 10, 10], [32, 30, 10, 10]]}
    paths = write_results(tmp_path / "out", boxes)
    assert [p.relative_to(tmp_path / "out").as_posix() for p in paths] == ["A/A_001.txt", "B/B_001.txt"]
    assert (tmp_path / "out/A/A_001.txt").read_text().splitlines()[1] == f"{20 + 1 / 3!r},10.0,20.0,20.0"
    assert evaluate_results(data, tmp_path / "out")["frames"] == 4


def test_save_results_round_trip(tmp_path, lutnas_main):
    data = small_dataset(tmp_path / "syn", 2, 4, seed=7)
    torch.manual_seed(0)
    ckpt = save_checkpoint(tmp_path / "s.pt", Supernet(), {})
    base = ["supernet", "evaluate", LIGHTTRACK_MOBILE, "--supernet", str(ckpt), "--data", str(data),
            "--mode", "sequences", "--bn-batches", "1", "--bn-batch-size", "2", "--json"]
    out_dir = tmp_path / "results"
    code, out, err = lutnas_main(*base, "--frames", "3", "--save-results", str(out_dir))
    assert code == 2 and "pass --frames 4" in err and err.count("\n") == 1 and not out_dir.exists()
    code, _, err = lutnas_main(*[a if a != "sequences" else "pairs" for a in base], "--save-results", str(out_dir))
    assert code == 2 and "--mode sequences" in err
    code, out, err = lutnas_main(*base, "--frames", "4", "--save-results", str(out_dir))
    assert code == 0, err
    printed = json.loads(out)
    assert sorted(p.name for p in out_dir.iterdir()) == ["SYN_000001", "SYN_000002"]
    code, out, err = lutnas_main("data", "evaluate-results", "--data", str(data), "--results", str(out_dir), "--json")
    assert code == 0, err
    scored = json.loads(out)
    assert scored["ao"] == pytest.approx(printed["ao"], abs=1e-12)
    assert (scored["sr50"], scored["sr75"], scored["frames"]) == (printed["sr50"], printed["sr75"], printed["frames"])
