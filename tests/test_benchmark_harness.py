"""benchmarks/harness.py: where benchmarks and studies write their results (issue #28 item 6)."""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import io
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# a script folder, not a package: loaded from its file, as the scripts beside it import it
_spec = importlib.util.spec_from_file_location("harness", ROOT / "benchmarks" / "harness.py")
harness = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(harness)


def test_a_run_is_written_under_its_name_and_date(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(sys, "argv", ["bench_x.py", "--runs", "2"])
    path = harness.write_result("bench_x", {"rows": [1, 2]}, "figures", {"runs": 2}, out_dir=tmp_path)
    today = dt.datetime.now(dt.UTC).date().isoformat()
    assert path == tmp_path / "bench_x" / f"{today}.json"
    assert path.with_suffix(".txt").read_text() == "figures\n"
    data = json.loads(path.read_text())
    assert data == {"name": "bench_x", "date": today, "variant": {"runs": 2},
                    "command": ["bench_x.py", "--runs", "2"], "rows": [1, 2]}


def test_a_second_run_on_the_same_date_overwrites_nothing(tmp_path: Path) -> None:
    paths = [harness.write_result("bench_x", {"i": i}, f"run {i}", out_dir=tmp_path) for i in range(3)]
    assert [p.name[10:] for p in paths] == [".json", "-2.json", "-3.json"]
    assert [json.loads(p.read_text())["i"] for p in paths] == [0, 1, 2]
    assert [p.with_suffix(".txt").read_text() for p in paths] == ["run 0\n", "run 1\n", "run 2\n"]
    again = harness.write_result("bench_x", {"i": 9}, "partial", out_dir=tmp_path, path=paths[1])
    assert again == paths[1] and json.loads(paths[1].read_text())["i"] == 9


def test_the_data_cannot_shadow_the_header(tmp_path: Path) -> None:
    with pytest.raises(AssertionError, match="variant"):
        harness.write_result("bench_x", {"variant": 1}, "", out_dir=tmp_path)


def test_variant_holds_the_arguments_off_their_defaults_and_the_named_ones() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--work", type=Path, default=Path("runs/x"))
    harness.add_arguments(ap)
    args = ap.parse_args(["--runs", "5", "--work", "/tmp/w", "--results-dir", "/tmp/r"])
    assert harness.variant(ap, args) == {"runs": 5, "work": "/tmp/w"}
    assert harness.variant(ap, args, "seed") == {"runs": 5, "seed": 7, "work": "/tmp/w"}
    assert args.results_dir == Path("/tmp/r")


def test_latest_finds_the_newest_run_of_a_name_and_variant(tmp_path: Path) -> None:
    assert harness.latest("bench_x", out_dir=tmp_path) is None
    folder = tmp_path / "bench_x"
    folder.mkdir()
    for stem, v in (("2026-12-01", {"seed": 0}), ("2026-12-07", {"seed": 0}), ("2026-12-07-2", {"seed": 1}),
                    ("2026-12-07-10", {"seed": 0}), ("2026-11-30-3", {"seed": 2})):
        (folder / f"{stem}.json").write_text(json.dumps({"variant": v}))
    (folder / "2026-12-08.txt").write_text("an older result kept as text only\n")
    assert harness.latest("bench_x", out_dir=tmp_path) == folder / "2026-12-07-10.json"
    assert harness.latest("bench_x", {"seed": 1}, out_dir=tmp_path) == folder / "2026-12-07-2.json"
    assert harness.latest("bench_x", {"seed": 2}, out_dir=tmp_path) == folder / "2026-11-30-3.json"
    assert harness.latest("bench_x", {"seed": 3}, out_dir=tmp_path) is None
    assert harness.latest("bench_x", out_dir=tmp_path, suffix=".txt") == folder / "2026-12-08.txt"


def test_keep_stdout_keeps_what_is_printed_and_still_prints_it(monkeypatch) -> None:
    screen = io.StringIO()
    monkeypatch.setattr(sys, "stdout", screen)
    kept = harness.keep_stdout()
    print("figure 1")
    print("figure 2", flush=True)
    assert screen.getvalue() == kept.getvalue() == "figure 1\nfigure 2\n"
    assert sys.stdout.isatty() is screen.isatty() is False
