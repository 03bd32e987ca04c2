"""The Ray executor: the same unit of work, scheduled as plain Ray tasks on a cluster.

The only module that imports ``ray`` (install it with ``pip install 'odyssey-data[ray]'``).
Like every executor it only schedules: :func:`odyssey_data.pipeline.export` hands it the
unit of work and the tasks, gets results back as they finish, and writes shards and
commits the manifest itself, with the same code as the local path. Workers write each
recording's video straight to the dataset's store (S3, GCS…), which every task rebuilds
from the driver's URL and storage options, so no shared disk is needed.

Why plain tasks and not ``ray.data``: the unit of work returns one Python object per
recording (Arrow tables plus status and stats) that the driver must see as soon as it is
ready; ``ray.remote`` + ``ray.wait`` gives exactly that, with per-task CPU and memory
requests, Ray's retry of tasks whose worker died (``max_retries``) and a bounded number of
tasks in flight, without a streaming-executor start-up, batch format conversions or
extra logging. A recording is never split, so Ray Data's block machinery buys nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, TypeVar

import ray
import ray.exceptions

from odyssey_data.errors import ConfigError, OdysseyDataError
from odyssey_data.executors import Capabilities, InFlight

__all__ = ["RayExecutor"]

T = TypeVar("T")
R = TypeVar("R")

log = logging.getLogger(__name__)


class RayExecutor:
    """Run the unit of work as Ray tasks, at most ``max_in_flight`` at once.

    Connects to Ray on first use: to ``address`` (``"auto"``, ``"ray://head:10001"``,
    ``"10.0.0.5:6379"``) or, when it is ``None``, to ``RAY_ADDRESS`` if set (as under
    ``ray job submit``) or else to a new local instance. A Ray that was already
    initialised in this process is used as it is and left running; one this executor
    started is shut down by :meth:`close`.

    Args:
        address: the cluster to connect to (see above).
        num_cpus_per_task: CPUs Ray reserves for each recording (demux + copy is mostly
            one core; fractions pack more tasks per node when they wait on the network).
        memory_per_task: bytes of memory Ray reserves for each recording, so it does not
            put more tasks on a node than fit (see ``docs/ray.md`` for sizing); ``None``
            reserves nothing.
        max_in_flight: tasks submitted and not yet collected. ``None``: twice the
            task slots of the cluster (CPUs / ``num_cpus_per_task``), so every slot has
            one task queued behind it while results are small and memory stays flat.
        max_retries: times Ray re-runs a task whose worker process or node died.
            Exceptions raised by the task itself are not retried (the unit of work
            returns failures instead of raising; anything it raises is a bug).
        runtime_env: Ray runtime environment of the tasks (``pip``, ``env_vars``…).
        init_options: more keyword arguments for ``ray.init`` when this executor starts
            or connects to Ray (``num_cpus`` of a local instance, ``logging_level``…).

    Raises:
        ConfigError: a non-positive size or count.
    """

    def __init__(
        self,
        address: str | None = None,
        num_cpus_per_task: float = 1,
        memory_per_task: int | None = None,
        max_in_flight: int | None = None,
        *,
        max_retries: int = 3,
        runtime_env: Mapping[str, Any] | None = None,
        init_options: Mapping[str, Any] | None = None,
    ) -> None:
        if num_cpus_per_task <= 0:
            raise ConfigError(f"num_cpus_per_task must be positive, not {num_cpus_per_task}")
        if memory_per_task is not None and memory_per_task < 1:
            raise ConfigError(f"memory_per_task must be positive, not {memory_per_task}")
        if max_in_flight is not None and max_in_flight < 1:
            raise ConfigError(f"max_in_flight must be at least 1, not {max_in_flight}")
        if max_retries < 0:
            raise ConfigError(f"max_retries must be 0 or more, not {max_retries}")
        self.address = address
        self.num_cpus_per_task = num_cpus_per_task
        self.memory_per_task = memory_per_task
        self.max_in_flight = max_in_flight
        self.max_retries = max_retries
        self.runtime_env = dict(runtime_env) if runtime_env else None
        self.init_options = dict(init_options or {})
        self._started = False
        # Tasks submitted and not yet collected, so close() can let go of them even when a
        # map_unordered generator was abandoned half-way (an error in the driver).
        self._running: set[ray.ObjectRef[Any]] = set()

    #: Workers run elsewhere (other processes, other nodes): they share no disk and no
    #: memory with the driver.
    capabilities = Capabilities(same_machine=False, in_process=False)

    def ahead(
        self, prepare: Callable[[T], T], items: Iterable[T], release: Callable[[T], None]
    ) -> Iterator[T]:
        """``items`` as they are: each Ray task fetches its own recording's files."""
        return iter(items)

    def _connect(self) -> None:
        if ray.is_initialized():
            return
        options: dict[str, Any] = {"logging_level": logging.WARNING}
        options.update(self.init_options)
        try:
            ray.init(address=self.address, **options)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = self.address or "a new local Ray instance"
            raise OdysseyDataError(f"cannot start or reach Ray at {where}: {exc}") from exc
        self._started = True

    def _in_flight(self) -> int:
        if self.max_in_flight is not None:
            return self.max_in_flight
        # ray.cluster_resources has no annotations (ray ships py.typed otherwise).
        resources = ray.cluster_resources()  # type: ignore[no-untyped-call]
        cpus = float(resources.get("CPU", 1.0))
        return max(1, int(2 * cpus / self.num_cpus_per_task))

    def map_unordered(
        self,
        fn: Callable[[T], R],
        items: Iterable[T],
        on_lost: Callable[[T, str], R] | None = None,
    ) -> Iterator[R]:
        """Run ``fn`` on every item as a Ray task, yielding results as tasks finish.

        ``on_lost`` is not used: Ray re-runs a task whose worker or node died up to
        ``max_retries`` times, and a task lost for good then stops the run (see
        docs/ray.md, Failures): on a cluster that is more often a lost node than a bad
        item.

        Items are submitted lazily, at most ``max_in_flight`` at a time, so neither the
        items nor the results pile up in memory however many there are. If the caller
        stops early (an error while writing a shard, Ctrl-C), the tasks still running
        are abandoned (see :meth:`close`).

        Raises:
            OdysseyDataError: a task's worker kept dying after ``max_retries`` re-runs
                (out of memory, a lost node), or Ray cannot be reached.
            Exception: whatever ``fn`` itself raised (a bug: it is not retried).
        """
        self._connect()
        options: dict[str, Any] = {
            "num_cpus": self.num_cpus_per_task,
            "max_retries": self.max_retries,
            "retry_exceptions": False,
        }
        if self.memory_per_task is not None:
            options["memory"] = self.memory_per_task
        if self.runtime_env is not None:
            options["runtime_env"] = self.runtime_env
        remote = ray.remote(fn).options(**options)
        flight: InFlight[T, ray.ObjectRef[R]] = InFlight(items, self._in_flight())

        def submit(item: T) -> ray.ObjectRef[R]:
            ref: ray.ObjectRef[R] = remote.remote(item)
            self._running.add(ref)
            return ref

        try:
            while True:
                flight.fill(submit)
                if not flight.pending:
                    return
                done, _ = ray.wait(list(flight.pending), num_returns=1)
                for ref in done:
                    flight.take(ref)
                    self._running.discard(ref)
                    yield self._get(ref)
        finally:
            self._abandon(flight.pending)

    def _get(self, ref: ray.ObjectRef[R]) -> R:
        try:
            result: R = ray.get(ref)
        except ray.exceptions.RayTaskError:
            # The function raised: Ray's error is also an instance of the function's own
            # exception class, so callers catch it as they would from the local pool.
            raise
        except ray.exceptions.RayError as exc:
            raise OdysseyDataError(
                f"a Ray task was lost {self.max_retries + 1} times (its worker or node "
                "died; out of memory? see Sizing in docs/ray.md); the dataset keeps what "
                f"was committed, re-run to finish: {exc}"
            ) from exc
        return result

    def _abandon(self, refs: Iterable[ray.ObjectRef[Any]]) -> None:
        # Tasks not collected are forgotten, not cancelled: ray.cancel on a task that then
        # completes crashed the driver process in Ray 2.60 (a CHECK failure in
        # task_manager.cc, "Tried to complete task that was not pending", seen in this
        # project's test runs), and force=True would kill workers and leave their temp
        # files (a whole video each) behind. An abandoned task finishes its recording and
        # cleans up; its result is dropped. What it wrote is not in the manifest, and the
        # next run removes it as a leftover.
        for ref in list(refs):
            self._running.discard(ref)

    def close(self, wait: bool = True) -> None:
        """Forget the tasks not collected, and shut Ray down if this executor started it.

        ``wait`` is accepted for the :class:`~odyssey_data.executors.Executor` protocol:
        nothing here waits for running tasks either way.

        Those tasks run to the end of their recording and their results are dropped (see
        ``_abandon``). A Ray instance that was already initialised when the executor was
        first used is left running.
        """
        self._abandon(self._running)
        if self._started and ray.is_initialized():
            ray.shutdown()
        self._started = False
