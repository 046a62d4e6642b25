"""Shared fixtures of the latency-table tests."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from latency_tables.units import all_units
from tracking.space import SearchSpace


@pytest.fixture(autouse=True)
def _one_torch_thread():
    import torch

    torch.set_num_threads(1)


def _synthetic_medians(space: SearchSpace, seed: int = 0) -> dict[str, float]:
    """Arbitrary positive unit costs (inputs for arithmetic checks, not latency claims)."""
    rng = np.random.default_rng(seed)
    return {u.key: float(rng.uniform(0.05, 1.0)) for u in all_units(space)}


@pytest.fixture
def synthetic_medians():
    return _synthetic_medians


@pytest.fixture(params=["paper", "code"])
def space(request) -> SearchSpace:
    return SearchSpace.paper() if request.param == "paper" else SearchSpace.code()


@pytest.fixture(scope="session")
def _profiled_once(tmp_path_factory) -> tuple[Path, str]:
    """One full ``lutnas profile`` (every unit, 3 anchor subnets, the frame record) at the fastest
    protocol, shared: each test gets its own copy, so what one test writes no other sees."""
    db = tmp_path_factory.mktemp("profiled") / "lut.db"
    r = subprocess.run([sys.executable, "-m", "lutnas.cli", "profile", "--out", str(db), "--rounds", "1",
                        "--anchors", "3", "--quiet", "--min-time", "0.01", "--max-time", "0.03"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return db, r.stdout


@pytest.fixture
def profiled_table(_profiled_once, tmp_path) -> tuple[Path, str]:
    """A copy of the shared fully profiled table, and what ``lutnas profile`` printed making it."""
    src, stdout = _profiled_once
    db = tmp_path / "lut.db"
    shutil.copyfile(src, db)
    return db, stdout


@pytest.fixture
def lutnas_cli(lutnas_main):
    """``lutnas ARGS`` in this process (no interpreter and torch start-up per call) as a
    ``CompletedProcess``; bad-input tests that need the real process keep ``subprocess``."""

    def run(*argv: str) -> subprocess.CompletedProcess:
        code, out, err = lutnas_main(*argv)
        return subprocess.CompletedProcess(["lutnas", *argv], code or 0, out, err)

    return run
