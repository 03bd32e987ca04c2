"""Executors: schedulers of the unit of work, nothing else.

File naming, retries, resume and the manifest live in the export's stages
(:mod:`odyssey_data.pipeline` and the modules it drives), so every executor produces
the same dataset. An executor maps a picklable function over items and yields results
as they finish (in any order), keeping only a bounded number of items in flight
(:class:`InFlight`, the one such loop) so memory stays flat however many recordings
there are. It says what it can do (:class:`Capabilities`) so the driver never asks
for its name, and it owns whatever scheduling is its own concern: the local executor
runs the downloads ahead of its workers (:meth:`LocalExecutor.ahead`).
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Iterator
from concurrent.futures import (
    FIRST_COMPLETED,
    Future,
    ProcessPoolExecutor,
    ThreadPoolExecutor,
    wait,
)
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from odyssey_data.errors import ConfigError, MissingDependencyError, OdysseyDataError

if TYPE_CHECKING:
    from odyssey_data.options import RunOptions

__all__ = [
    "Capabilities",
    "Executor",
    "InFlight",
    "LocalExecutor",
    "Prefetcher",
    "default_workers",
    "make_executor",
]

T = TypeVar("T")
R = TypeVar("R")
H = TypeVar("H", bound=Hashable)


@dataclass(frozen=True)
class Capabilities:
    """What an executor's workers share with the driver (asked instead of its name).

    Attributes:
        same_machine: workers run on this machine: files the driver or a worker writes
            to a local folder (spilled frames, downloads fetched ahead) reach the other.
        in_process: workers run in this process: a dataset that lives only in this
            process (``memory://``) is visible to them.
    """

    same_machine: bool
    in_process: bool


class InFlight(Generic[T, H]):
    """Items taken lazily from ``items``, at most ``limit`` submitted and not collected.

    The one "at most N in flight" loop of the package: the local pool, the Ray tasks
    and the download-ahead threads all use it, so neither the items nor their results
    pile up in memory however many there are. ``pending`` maps each submitted handle (a
    future, a Ray object reference) to its item, oldest first.
    """

    def __init__(self, items: Iterable[T], limit: int) -> None:
        self._items = iter(items)
        self.limit = limit
        self.pending: dict[H, T] = {}
        self.exhausted = False

    def fill(self, submit: Callable[[T], H]) -> None:
        """Submit the next items until ``limit`` are pending or there are no more."""
        while not self.exhausted and len(self.pending) < self.limit:
            try:
                item = next(self._items)
            except StopIteration:
                self.exhausted = True
                return
            self.pending[submit(item)] = item

    def take(self, handle: H) -> T:
        """The item of a collected handle (no longer pending)."""
        return self.pending.pop(handle)

    def oldest(self) -> H:
        """The handle submitted first among those pending (for in-order consumers)."""
        return next(iter(self.pending))


class Prefetcher(Generic[T]):
    """Runs ``prepare`` on items ahead of their consumer, in ``ahead`` threads, in order.

    While the consumer works on the items it has, the next ones are prepared: up to
    ``2 × ahead`` prepared (or preparing) and not yet handed on, so the threads stay
    busy while the consumer is busy and what the prepared items hold (a downloaded
    video each) stays bounded. :meth:`close` hands every prepared item to ``release``
    (call it once the consumer is done with them: the local executor closes its pool
    first).
    """

    def __init__(self, ahead: int, prepare: Callable[[T], T], release: Callable[[T], None]) -> None:
        self.ahead = ahead
        self._prepare = prepare
        self._release = release
        self._prepared: list[T] = []
        self._pool = ThreadPoolExecutor(max_workers=ahead, thread_name_prefix="odyssey-fetch")

    def _run(self, item: T) -> T:
        prepared = self._prepare(item)
        self._prepared.append(prepared)
        return prepared

    def items(self, items: Iterable[T]) -> Iterator[T]:
        """``items`` in order, each prepared; raises what ``prepare`` raised."""
        flight: InFlight[T, Future[T]] = InFlight(items, 2 * self.ahead)

        def submit(item: T) -> Future[T]:
            return self._pool.submit(self._run, item)

        flight.fill(submit)
        while flight.pending:
            future = flight.oldest()
            flight.take(future)
            flight.fill(submit)  # the next one starts before the consumer gets this one
            yield future.result()

    def close(self, wait: bool = True) -> None:
        """Stop preparing, and release every prepared item (unless ``wait`` is False:
        an interrupted run abandons the preparations in flight)."""
        self._pool.shutdown(wait=wait, cancel_futures=True)
        if not wait:
            return
        while self._prepared:
            self._release(self._prepared.pop())


def default_workers() -> int:
    """One worker per core this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


class Executor(Protocol):
    """What the pipeline needs of an engine."""

    #: What its workers share with the driver.
    capabilities: Capabilities

    def ahead(
        self, prepare: Callable[[T], T], items: Iterable[T], release: Callable[[T], None]
    ) -> Iterator[T]:
        """``items`` with ``prepare`` run ahead of the workers where the engine gains by it.

        The local executor runs it in threads of this process while its workers work
        (downloads overlap processing); ``release`` gets each prepared item when the
        executor closes. Engines whose workers are elsewhere return ``items`` as they
        are (the workers prepare their own).
        """
        ...

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
        self.capabilities = Capabilities(same_machine=True, in_process=threads or self.workers == 1)
        self._pool: ThreadPoolExecutor | ProcessPoolExecutor | None = None
        self._prefetchers: list[Prefetcher[Any]] = []

    def ahead(
        self, prepare: Callable[[T], T], items: Iterable[T], release: Callable[[T], None]
    ) -> Iterator[T]:
        """``items`` prepared ahead in one thread per worker (see :class:`Prefetcher`).

        The workers then only process: while they work on the items in flight, the next
        ones are prepared (downloads overlap processing instead of every worker
        downloading, then every worker processing).
        """
        prefetcher = Prefetcher(self.workers, prepare, release)
        self._prefetchers.append(prefetcher)
        return prefetcher.items(items)

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
        flight: InFlight[T, Future[R]] = InFlight(items, 2 * self.workers)
        pending = flight.pending
        suspects: deque[T] = deque()
        alone: Future[R] | None = None  # a suspect running alone

        def submit(item: T) -> Future[R]:
            assert self._pool is not None
            return self._pool.submit(fn, item)

        while True:
            if suspects or alone is not None:
                if not pending:
                    item = suspects.popleft()
                    alone = submit(item)
                    pending[alone] = item
            else:
                flight.fill(submit)
            if not pending:
                return
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            broken = False
            for future in done:
                item = flight.take(future)
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
        while self._prefetchers:
            self._prefetchers.pop().close(wait=wait)


def make_executor(
    run: RunOptions | str,
    workers: int | None = None,
    *,
    threads: bool = False,
    **options: Any,
) -> Executor:
    """The executor the run options name: the one place an executor's name is read.

    The export calls it with its options' group (``make_executor(config.run,
    threads=...)``); programs may name one instead (``make_executor("ray", 4,
    address="auto")``). Everything else asks an executor for its
    :class:`Capabilities`, never its name.

    Args:
        run: the run options (``executor``, ``workers``, ``ray_address``), or the
            name of an executor: ``"local"`` (a pool on this machine) or ``"ray"``
            (with the ray extra).
        workers: with a name: recordings in parallel. Local: pool size (default: the
            cores). Ray: tasks in flight at once (default: twice the cluster's task slots).
        threads: local only: a pool of threads instead of processes (for work that
            runs without the GIL; see :class:`LocalExecutor`). Ray ignores it.
        **options: with a name: executor options; for Ray those of
            :class:`odyssey_data.ray_executor.RayExecutor` (``address``,
            ``num_cpus_per_task``, ``memory_per_task``…). Options set to ``None`` are
            ignored, so a caller can pass its defaults whatever the executor.

    Raises:
        ConfigError: unknown executor name, or an option the executor does not take.
        MissingDependencyError: ``"ray"`` without ray installed.
        TypeError: run options and ``workers`` or ``options`` besides.
    """
    if not isinstance(run, str):
        if workers is not None or options:
            raise TypeError("make_executor: the run options hold the workers and the options")
        return make_executor(run.executor, run.workers, threads=threads, address=run.ray_address)
    name = run
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
