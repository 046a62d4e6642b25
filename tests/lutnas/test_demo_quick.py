"""``lutnas demo --quick``: the README's first command runs end to end in the suite (tiny sizes),
so it cannot silently break: every step's output exists and the summary names the front."""

from __future__ import annotations

import csv
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tracking.space import lighttrack_mobile


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_demo_quick_runs_every_step(tmp_path: Path) -> None:
    work = tmp_path / "demo"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LUTNAS_")}
    env.update(COLUMNS="200", OMP_NUM_THREADS="1")
    out = subprocess.run([str(Path(sys.executable).parent / "lutnas"), "demo", "--quick", "--workdir", str(work),
                          "--threads", "1"], capture_output=True, text=True, timeout=880, env=env)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    text = out.stdout
    for step in ("1/6", "2/6", "3/6", "4/6", "5/6", "6/6", "demo finished", "hypervolume", "a box that never moves",
                 "LightTrack-Mobile"):
        assert step in text, step
    assert "Traceback" not in text + out.stderr

    # the search ranked with a uniformly trained supernet: no path favoured (not Mobile's)
    from tracking.checkpoint import load_supernet

    cfg = load_supernet(work / "supernet.pt")[1]["config"]
    assert cfg["focus_prob"] == 0.0 and cfg["focus_arch"] is None and cfg["init_from"] is None
    summary = json.loads((work / "summary.json").read_text())
    assert summary["held_out"]["LightTrack-Mobile"]["arch"] == lighttrack_mobile().to_string()
    if summary.get("compare"):  # the last table: the pick and Mobile retrained with the same seeds
        assert summary["compare"]["rows"][0]["name"] == "LightTrack-Mobile"
    else:
        assert "no front point at or below Mobile's latency" in text
    with sqlite3.connect(work / "latency.db") as db:  # the whole table: every unit of the paper space
        from latency_tables.units import all_units
        from tracking.space import SearchSpace

        n = db.execute("SELECT count(*) FROM lut_entries").fetchone()[0]
        assert n == len({u.key for u in all_units(SearchSpace.paper())})
    rows = list(csv.DictReader((work / "search" / "ranked.csv").open()))
    assert len(rows) >= 4 and rows[0]["rank"] == "1"
    assert (work / "search" / "pareto.png").stat().st_size > 0
