"""How candidates reach the evaluators: in batches, through an :class:`Executor`.

The search only calls ``map_batches(fn, items, should_stop)``; an in-process executor runs the
batches one after another. A distributed backend (a pool of GPU workers, a job queue) implements
the same method and plugs in without touching the search. Cancellation is checked between
batches, never inside one, so an evaluator is never interrupted half-way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class SearchStopped(Exception):
    """Raised when ``should_stop()`` says so between evaluation batches."""


class Executor(Protocol):
    def map_batches(self, fn: Callable[[list[T]], Sequence[R]], items: Sequence[T],
                    should_stop: Callable[[], bool] | None = None) -> list[R]: ...


class InProcessExecutor:
    """Runs ``fn`` on consecutive batches of ``batch_size`` items in this process."""

    def __init__(self, batch_size: int = 16) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = batch_size
        self.batches = 0

    def map_batches(self, fn: Callable[[list[T]], Sequence[R]], items: Sequence[T],
                    should_stop: Callable[[], bool] | None = None) -> list[R]:
        out: list[R] = []
        for i in range(0, len(items), self.batch_size):
            if should_stop is not None and should_stop():
                raise SearchStopped("search stopped between evaluation batches")
            batch = list(items[i: i + self.batch_size])
            res = list(fn(batch))
            if len(res) != len(batch):
                raise ValueError(f"evaluator returned {len(res)} results for a batch of {len(batch)}")
            out.extend(res)
            self.batches += 1
        return out
