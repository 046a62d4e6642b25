"""One progress protocol for long work, owned by the lowest layer so every package can use it.

Work functions (training, validation, tuning, data generation, profiling) take an optional
``progress`` callback and call ``progress(phase, done, total)`` (``note=``: a short status such as
the running loss); they never draw anything. Callers decide the display: the CLIs and the demo
draw a bar with :func:`progress_bar`, the worker stores job progress, tests collect the calls.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol


class Progress(Protocol):
    """``done`` of ``total`` steps of ``phase`` finished; ``note``: optional short status."""

    def __call__(self, phase: str, done: int, total: int, note: str = "") -> None: ...


def silent(phase: str, done: int, total: int, note: str = "") -> None:
    """A progress callback that ignores every report."""


@contextmanager
def progress_bar(description: str, enabled: bool = True, transient: bool = False) -> Iterator[Progress]:
    """A rich bar on stderr fed by progress callbacks, one line per phase (for CLIs and the demo).
    Nothing is drawn before the first report, so work that fails first prints only its error."""
    if not enabled:
        yield silent
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
    from rich.progress import Progress as Bar

    bar = Bar(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[note]}"),
              TimeElapsedColumn(), console=Console(stderr=True), transient=transient)
    tasks: dict[str, Any] = {}

    def update(phase: str, done: int, total: int, note: str = "") -> None:
        if not tasks:
            bar.start()
        if phase not in tasks:
            tasks[phase] = bar.add_task(f"{description}: {phase}", total=total, note=note)
        bar.update(tasks[phase], completed=done, total=total, note=note)

    try:
        yield update
    finally:
        if tasks:
            bar.stop()
