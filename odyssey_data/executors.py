"""Executors: schedulers of the unit of work, nothing else.

File naming, retries, resume and the manifest live in :mod:`odyssey_data.pipeline`, so
every executor produces the same dataset. An executor maps a picklable function over
items and yields results as they finish (in any order), keeping only a bounded number
of items in flight so memory stays flat however many recordings there are.
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import (
    FIRST_COMPLETED,
    Future,
    ProcessPoolExecutor,
    ThreadPoolExecutor,
    wait,
)
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Protocol, TypeVar

from odyssey_data.errors import ConfigError, MissingDependencyError, OdysseyDataError

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

    def map_unordered(
        self,
        fn: Callable[[T], R],
        items: Iterable[T],
        on_lost: Callable[[T, str], R] | None = None,
    ) -> Iterator[R]:
        """Run ``fn`` on every item, yielding results as they complete.

        ``on_lost(item, reason)``, when given, makes the result of an item whose worker
        died running it (where the engine can tell which item that was); without it,
        such a death is an error.
        """
        ...

    def close(self, wait: bool = True) -> None:
        """Release workers; with ``wait=False`` running tasks are abandoned, not awaited."""
        ...


class LocalExecutor:
    """A pool of processes, or of threads, on this machine (``workers=1``: this thread).

    Processes suit work that runs Python per frame (materialised frames). Threads suit
    work whose heavy parts run in C without the GIL (downloads, hashing, demuxing, the
    first-frame decode: reference mode): no process to start, nothing to import again,
    no result to pickle. Worker processes are started with ``spawn``: forking a process
    that holds threads (progress bars, HTTP pools, decoder threads) is not safe.
    """

    def __init__(self, workers: int | None = None, *, threads: bool = False) -> None:
        self.workers = default_workers() if workers is None else workers
        if self.workers < 1:
            raise ConfigError(f"workers must be at least 1, not {self.workers}")
        self.threads = threads
        self._pool: ThreadPoolExecutor | ProcessPoolExecutor | None = None

    def _new_pool(self) -> ThreadPoolExecutor | ProcessPoolExecutor:
        if self.threads:
            return ThreadPoolExecutor(self.workers, thread_name_prefix="odyssey-worker")
        return ProcessPoolExecutor(
            max_workers=self.workers, mp_context=multiprocessing.get_context("spawn")
        )

    def map_unordered(
        self,
        fn: Callable[[T], R],
        items: Iterable[T],
        on_lost: Callable[[T, str], R] | None = None,
    ) -> Iterator[R]:
        """Run ``fn`` over ``items``; at most ``2 × workers`` are in flight at once.

        A worker process that dies (a crash in native code, the kernel's OOM killer)
        breaks the whole pool, and every item in flight with it. The pool is made again
        and those items, the suspects, run again one at a time: one that kills its
        worker alone is the culprit, and ``on_lost`` makes its result (without
        ``on_lost``, an error). The others go on as if nothing happened.

        Raises:
            OdysseyDataError: a worker died and there is no ``on_lost``.
        """
        if self.workers == 1:
            for item in items:
                yield fn(item)
            return
        if self._pool is None:
            self._pool = self._new_pool()
        pending: dict[Future[R], T] = {}
        suspects: deque[T] = deque()
        alone: Future[R] | None = None  # a suspect running alone
        iterator = iter(items)
        exhausted = False
        while True:
            if suspects or alone is not None:
                if not pending:
                    item = suspects.popleft()
                    alone = self._pool.submit(fn, item)
                    pending[alone] = item
            else:
                while not exhausted and len(pending) < 2 * self.workers:
                    try:
                        item = next(iterator)
                    except StopIteration:
                        exhausted = True
                        break
                    pending[self._pool.submit(fn, item)] = item
            if not pending:
                return
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            broken = False
            for future in done:
                item = pending.pop(future)
                if future is alone:
                    alone = None
                try:
                    result = future.result()
                except BrokenProcessPool:
                    broken = True
                    suspects.append(item)
                    continue
                yield result
            if broken:
                was_alone = not pending and len(suspects) == 1 and alone is None
                suspects.extend(pending.values())
                pending.clear()
                alone = None
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = self._new_pool()
                if on_lost is None:
                    raise OdysseyDataError(
                        "a worker process died (a crash in native code, or out of memory); "
                        "the dataset keeps what was committed, re-run to finish"
                    )
                if was_alone:
                    culprit = suspects.pop()
                    yield on_lost(
                        culprit,
                        "its worker process died while exporting it (a crash in the video "
                        "decoder, or out of memory)",
                    )

    def close(self, wait: bool = True) -> None:
        """Shut the pool down: waits for running tasks, unless ``wait`` is False (an
        interrupted export: they are abandoned; queued ones are cancelled either way)."""
        if self._pool is not None:
            self._pool.shutdown(wait=wait, cancel_futures=True)
            self._pool = None


def make_executor(
    name: str, workers: int | None = None, *, threads: bool = False, **options: Any
) -> Executor:
    """The executor called ``name``: ``"local"`` or ``"ray"`` (with the ray extra).

    Args:
        name: ``"local"`` (a pool on this machine) or ``"ray"``.
        workers: recordings in parallel. Local: pool size (default: the cores).
            Ray: tasks in flight at once (default: twice the cluster's task slots).
        threads: local only: a pool of threads instead of processes (for work that
            runs without the GIL; see :class:`LocalExecutor`). Ray ignores it.
        **options: executor options; for Ray those of
            :class:`odyssey_data.ray_executor.RayExecutor` (``address``,
            ``num_cpus_per_task``, ``memory_per_task``…). Options set to ``None`` are
            ignored, so a caller can pass its defaults whatever the executor.

    Raises:
        ConfigError: unknown executor name, or an option the executor does not take.
        MissingDependencyError: ``"ray"`` without ray installed.
    """
    given = {key: value for key, value in options.items() if value is not None}
    if name == "local":
        if given:
            raise ConfigError(
                f"option(s) {', '.join(sorted(given))} apply to the ray executor, not 'local'"
            )
        return LocalExecutor(workers, threads=threads)
    if name == "ray":
        try:
            # Imported here: ray is an optional extra and slow to import.
            from odyssey_data.ray_executor import RayExecutor
        except ImportError as exc:
            if exc.name is not None and exc.name.split(".")[0] != "ray":
                raise
            raise MissingDependencyError("ray", "ray", "the Ray executor") from exc
        if workers is not None and "max_in_flight" not in given:
            if workers < 1:
                raise ConfigError(f"workers must be at least 1, not {workers}")
            given["max_in_flight"] = workers
        try:
            return RayExecutor(**given)
        except TypeError as exc:
            raise ConfigError(f"invalid option for the ray executor: {exc}") from exc
    raise ConfigError(f"unknown executor {name!r}; choose 'local' or 'ray'")
