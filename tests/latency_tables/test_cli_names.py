"""One vocabulary across commands: a table is ``PATH#NAME`` (``--name`` still works) and a space is
``--space paper|code`` (``--code-space`` still works, hidden)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from latency_tables.store import LatencyStore
from tracking.space import LIGHTTRACK_MOBILE, SearchSpace

STATS = {"p10_ms": 0.9, "p90_ms": 1.1, "iqr_ms": 0.1, "count": 5}


@pytest.fixture
def two_tables(tmp_path: Path, synthetic_medians) -> Path:
    """A database with two tables whose every unit costs differ (``slow`` = 2 x ``fast``)."""
    db = tmp_path / "two.db"
    store = LatencyStore(db)
    for name, factor in (("fast", 1.0), ("slow", 2.0)):
        info = store.get_or_create(name, {"label": name}, {"backend": "onnxruntime"})
        store.put(info.id, {k: {"median_ms": v * factor, **STATS}
                            for k, v in synthetic_medians(SearchSpace.code()).items()})
    return db


def _predict(run, *args: str) -> float:
    code, out, err = run("latency", "predict", LIGHTTRACK_MOBILE, "--json", *args)
    assert code == 0, err
    return json.loads(out)["predictions"][0]["latency_ms"]


def test_table_named_as_path_hash_name_or_with_name(lutnas_main, two_tables: Path) -> None:
    run = lutnas_main
    fast = _predict(run, "--table", f"{two_tables}#fast")
    assert _predict(run, "--table", str(two_tables), "--name", "fast") == fast
    assert _predict(run, "--table", f"{two_tables}#slow") == pytest.approx(2 * fast)
    code, out, err = run("latency", "fastest", "--table", f"{two_tables}#slow", "--json")
    assert code == 0 and json.loads(out)["latency_ms"] > 0
    for args in (["--table", f"{two_tables}#fast", "--name", "slow"],  # two different names
                 ["--table", "#fast"],  # a name without a database
                 ["--table", f"{two_tables}#absent"]):
        code, out, err = run("latency", "predict", LIGHTTRACK_MOBILE, *args)
        assert code == 2 and err.startswith("error:") and err.count("\n") == 1, (args, err)


def test_space_by_name_and_the_deprecated_flag(lutnas_main) -> None:
    run = lutnas_main
    code, paper, _ = run("arch", "sample", "--n", "30", "--seed", "3")
    assert code == 0
    code, code_space, _ = run("arch", "sample", "--n", "30", "--seed", "3", "--space", "code")
    assert code == 0 and code_space != paper
    code, alias, _ = run("arch", "sample", "--n", "30", "--seed", "3", "--code-space")
    assert code == 0 and alias == code_space
    code, _, err = run("arch", "sample", "--space", "mobile")
    assert code == 2 and "--space" in err and "paper, code" in err
    code, out, _ = run("arch", "sample", "--help")
    assert "--space" in out and "--code-space" not in out
