"""Fixtures shared by every test package."""

from __future__ import annotations

from collections.abc import Callable

import pytest


@pytest.fixture
def lutnas_main(capsys) -> Callable[..., tuple[int, str, str]]:
    """Run ``lutnas ARGS`` in this process: ``lutnas_main("arch", "sample") -> (exit code, stdout,
    stderr)`` (the CLI's own error handling included, as a user meets it)."""
    from lutnas.cli import main

    def run(*argv: str) -> tuple[int, str, str]:
        with pytest.raises(SystemExit) as exc:
            main(list(argv))
        out, err = capsys.readouterr()
        return exc.value.code, out, err

    return run
