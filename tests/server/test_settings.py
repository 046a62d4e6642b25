"""server/settings.py: ``LUTNAS_*`` parsing of :meth:`Settings.from_env`, and the documentation
table generated from the model (docs/deployment.md must hold exactly that table)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from server.settings import Settings, settings_table

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "deployment.md"
MARKED = re.compile(r"<!-- settings-table:start -->\n(.*?)<!-- settings-table:end -->", re.S)


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """A process environment without any LUTNAS_* of the caller's shell."""
    for name in list(os.environ):
        if name.upper().startswith("LUTNAS_"):
            monkeypatch.delenv(name)
    return monkeypatch


def test_docs_hold_the_generated_table() -> None:
    found = MARKED.findall(DOCS.read_text())
    assert len(found) == 1, "docs/deployment.md needs one settings-table:start/end block"
    assert found[0] == settings_table(), (
        "docs/deployment.md's settings table differs from the model: paste `python -m server.settings`")
    service = (ROOT / "docs" / "service.md").read_text()
    assert not re.search(r"^\| `LUTNAS_", service, re.M), "docs/service.md links to the table, lists none"


def test_generator_prints_the_table_without_this_machines_paths() -> None:
    out = subprocess.run([sys.executable, "-m", "server.settings"], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout
    assert out == settings_table()
    assert str(Path.home()) not in out and "`~/.lutnas`" in out
    names = re.findall(r"^\| `(LUTNAS_[A-Z0-9_]+)` \|", out, re.M)
    assert names == [f"LUTNAS_{f.upper()}" for f in Settings.model_fields]
    assert all(f.description for f in Settings.model_fields.values())


def test_scalars_from_env(env: pytest.MonkeyPatch) -> None:
    env.setenv("LUTNAS_MAX_UPLOAD_MB", "64")
    env.setenv("LUTNAS_TORCH_THREADS", "3")
    env.setenv("LUTNAS_DEVICE", " CPU ")
    env.setenv("LUTNAS_NOT_A_SETTING", "x")  # another component's variable: ignored
    s = Settings.from_env()
    assert (s.max_upload_mb, s.torch_threads, s.device) == (64.0, 3, "cpu")
    assert s.max_upload_bytes == 64 * 1024 * 1024


def test_list_formats(env: pytest.MonkeyPatch) -> None:
    env.setenv("LUTNAS_UNIT_FILTER", " stage1, stem ,,")
    env.setenv("LUTNAS_DATA_ROOTS", os.pathsep.join(["/a", " /b ", ""]) + ",/c")
    s = Settings.from_env()
    assert s.unit_filter == ["stage1", "stem"]
    assert s.data_roots == [Path("/a"), Path("/b"), Path("/c")]
    assert Settings.from_env(unit_filter=["x"]).unit_filter == ["x"]  # lists pass unchanged


def test_empty_value_is_unset(env: pytest.MonkeyPatch) -> None:
    for name in ("LUTNAS_MAX_UPLOAD_MB", "LUTNAS_ADMIN_TOKEN", "LUTNAS_UNIT_FILTER", "LUTNAS_DATA_ROOTS"):
        env.setenv(name, "")
    s = Settings.from_env()
    assert (s.max_upload_mb, s.admin_token, s.unit_filter, s.data_roots) == (200.0, None, None, [])


def test_invalid_value_names_the_field(env: pytest.MonkeyPatch) -> None:
    env.setenv("LUTNAS_EVAL_WORKERS", "0")
    with pytest.raises(ValidationError) as e:
        Settings.from_env()
    assert [err["loc"] for err in e.value.errors()] == [("eval_workers",)]
    env.setenv("LUTNAS_EVAL_WORKERS", "two")
    with pytest.raises(ValidationError, match="eval_workers"):
        Settings.from_env()


def test_overrides_win_and_none_is_no_override(env: pytest.MonkeyPatch) -> None:
    env.setenv("LUTNAS_DATABASE_URL", "sqlite:///env.db")
    env.setenv("LUTNAS_POLL_SECONDS", "2")
    s = Settings.from_env(database_url="sqlite:///cli.db", poll_seconds=None)
    assert (s.database_url, s.poll_seconds) == ("sqlite:///cli.db", 2.0)


def test_direct_construction_ignores_the_environment(env: pytest.MonkeyPatch) -> None:
    """Tests build Settings(...) directly: a LUTNAS_* of their process must not leak in."""
    env.setenv("LUTNAS_SCORER_PAIRS", "7")
    env.setenv("LUTNAS_DATA_DIR", "/somewhere/else")
    s = Settings(scorer_bn_batches=0)
    assert (s.scorer_pairs, s.scorer_bn_batches, s.data_dir) == (256, 0, Path("~/.lutnas").expanduser())
    assert Settings.from_env().scorer_pairs == 7
