"""Executors: schedulers of the unit of work, nothing else.

File naming, retries, resume and the manifest live in :mod:`odyssey_data.pipeline`, so
every executor produces the same dataset. An executor maps a picklable function over
items and yields results as they finish (in any order), keeping only a bounded number
of items in flight so memory stays flat however many recordings there are.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Protocol, TypeVar

from odyssey_data.errors import ConfigError

__all__ = ["Executor", "LocalExecutor", "default_workers", "make_executor"]

T = TypeVar("T")
R = TypeVar("R")


def default_workers() -> int:
    """One worker per core this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


class Executor(Protocol):
    """What the pipeline needs of an engine."""

    def map_unordered(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
        """Run ``fn`` on every item, yielding results as they complete."""
        ...

    def close(self) -> None:
        """Release workers."""
        ...


class LocalExecutor:
    """A process pool on this machine (``workers=1`` runs in this process).

    Worker processes are started with ``spawn``: forking a process that holds threads
    (progress bars, HTTP pools, decoder threads) is not safe.
    """

    def __init__(self, workers: int | None = None) -> None:
        self.workers = default_workers() if workers is None else workers
        if self.workers < 1:
            raise ConfigError(f"workers must be at least 1, not {self.workers}")
        self._pool: ProcessPoolExecutor | None = None

    def map_unordered(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
        """Run ``fn`` over ``items``; at most ``2 × workers`` are in flight at once."""
        if self.workers == 1:
            for item in items:
                yield fn(item)
            return
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers, mp_context=multiprocessing.get_context("spawn")
            )
        pending: set[Future[R]] = set()
        iterator = iter(items)
        exhausted = False
        while True:
            while not exhausted and len(pending) < 2 * self.workers:
                try:
                    item = next(iterator)
                except StopIteration:
                    exhausted = True
                    break
                pending.add(self._pool.submit(fn, item))
            if not pending:
                return
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                yield future.result()

    def close(self) -> None:
        """Shut the pool down (waits for running tasks)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


def make_executor(name: str, workers: int | None = None) -> Executor:
    """The executor called ``name`` (``"local"``; ``"ray"`` comes with the ray extra).

    Raises:
        ConfigError: unknown executor name.
    """
    if name == "local":
        return LocalExecutor(workers)
    raise ConfigError(f"unknown executor {name!r}; choose 'local'")
