"""Code health of the service package: no function in ``server/`` grows past about 50 lines
(issue #22): a longer one is split into named steps before it lands."""

from __future__ import annotations

import ast
from pathlib import Path

SERVER = Path(__file__).resolve().parents[2] / "server"
MAX_LINES = 50
# Alembic revisions are history: written once as the schema was then, never edited afterwards
# (0001 creates every table in one upgrade()).
HISTORY = SERVER / "migrations" / "versions"


def long_functions(root: Path, limit: int = MAX_LINES, skip: Path | None = None) -> list[str]:
    """``path:line name (n lines)`` of every function or method under ``root`` (nested ones too;
    decorators count) longer than ``limit`` lines, except in the ``skip`` folder."""
    out = []
    for path in sorted(root.rglob("*.py")):
        if skip is not None and path.is_relative_to(skip):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                n = (node.end_lineno or node.lineno) - first + 1
                if n > limit:
                    out.append(f"{path.relative_to(root.parent)}:{node.lineno} {node.name} ({n} lines)")
    return out


def test_no_function_in_server_is_longer_than_50_lines() -> None:
    assert list(SERVER.rglob("*.py")), f"no Python files under {SERVER}"
    assert HISTORY.is_dir()
    assert long_functions(SERVER, skip=HISTORY) == []


def test_the_check_sees_a_long_function(tmp_path: Path) -> None:
    body = "".join(f"        x{i} = {i}\n" for i in range(MAX_LINES))
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "m.py").write_text(f"class C:\n    def f(self):\n{body}\n\ndef g():\n    return 1\n")
    assert long_functions(tmp_path / "pkg") == [f"pkg/m.py:2 f ({MAX_LINES + 1} lines)"]


def test_nothing_cites_a_design_page_outside_the_repository() -> None:
    """docs/architecture.md is the repository's own design page (issue #28): code, docs and
    configuration never send a reader to a file a clone does not have."""
    root = SERVER.parent
    cited = []
    for path in [*root.glob("*/**/*.py"), *root.glob("docs/*.md"), root / "README.md", root / "pyproject.toml"]:
        if ".venv" in path.parts or path == Path(__file__).resolve():
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        cited += [f"{path.relative_to(root)}: {needle}" for needle in ("DESIGN.md", "../shared/") if needle in text]
    assert cited == []


# Every package is held to the same rule (issue #28 item 6). Nothing is grandfathered any more: the
# functions that predated the rule have been split. Keep this empty; an entry ("pkg/file.py name": n)
# would only let that function stay at n lines while it is split, and the test fails once it shrinks.
PACKAGES = ("lutnas", "tracking", "profilers", "latency_tables", "search", "client")
KNOWN_LONG: dict[str, int] = {}


def test_no_new_long_function_in_any_package() -> None:
    root = SERVER.parent
    found = {}
    for pkg in PACKAGES:
        for line in long_functions(root / pkg):
            where, name, n = line.split(":")[0], line.split()[1], int(line.split("(")[-1].split()[0])
            found[f"{where} {name}"] = n
    grown = {k: (n, KNOWN_LONG.get(k)) for k, n in found.items() if n > KNOWN_LONG.get(k, MAX_LINES)}
    assert grown == {}, f"new or grown functions over {MAX_LINES} lines (split them): {grown}"
    stale = sorted(set(KNOWN_LONG) - set(found))
    assert stale == [], f"no longer long: delete from KNOWN_LONG: {stale}"
