"""Tests of odyssey_data.executors: the one in-flight loop, capabilities, injection."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import DemoExport, export_config

from odyssey_data import open_dataset
from odyssey_data.errors import ConfigError
from odyssey_data.executors import Capabilities, InFlight, LocalExecutor, Prefetcher
from odyssey_data.pipeline import export


def test_in_flight_never_holds_more_than_its_limit_and_takes_items_lazily() -> None:
    pulled: list[int] = []

    def items() -> Iterator[int]:
        for i in range(10):
            pulled.append(i)
            yield i

    flight: InFlight[int, str] = InFlight(items(), 3)
    flight.fill(lambda i: f"h{i}")
    assert list(flight.pending) == ["h0", "h1", "h2"]
    assert pulled == [0, 1, 2]  # not one item more than it holds
    assert flight.oldest() == "h0"
    assert flight.take("h1") == 1
    flight.fill(lambda i: f"h{i}")
    assert list(flight.pending) == ["h0", "h2", "h3"]
    while flight.pending:
        flight.take(flight.oldest())
        flight.fill(lambda i: f"h{i}")
    assert flight.exhausted
    assert pulled == list(range(10))


def test_prefetcher_keeps_order_releases_everything_and_raises_what_prepare_raised() -> None:
    released: list[int] = []

    def prepare(i: int) -> int:
        if i == 0:
            time.sleep(0.3)  # the first finishes after the next ones: order is still kept
        if i == 5:
            raise ValueError("five")
        return i * 10

    prefetcher = Prefetcher(2, prepare, released.append)
    stream = prefetcher.items(range(8))
    assert [next(stream) for _ in range(5)] == [0, 10, 20, 30, 40]
    with pytest.raises(ValueError, match="five"):
        next(stream)
    prefetcher.close()
    # Every item prepared (handed on or not) is released once.
    assert sorted(released) == sorted(set(released))
    assert {0, 10, 20, 30, 40} <= set(released)


class Recording:
    """An executor that runs in this thread and records what the driver asked of it."""

    def __init__(self, capabilities: Capabilities) -> None:
        self.capabilities = capabilities
        self.inner = LocalExecutor(1)
        self.mapped = 0
        self.ahead_asked = 0
        self.closed: list[bool] = []

    def ahead(
        self, prepare: Callable[[Any], Any], items: Iterable[Any], release: Callable[[Any], None]
    ) -> Iterator[Any]:
        self.ahead_asked += 1
        return iter(items)

    def map_unordered(
        self, fn: Callable[[Any], Any], items: Iterable[Any], on_lost: Any = None
    ) -> Iterator[Any]:
        for result in self.inner.map_unordered(fn, items, on_lost):
            self.mapped += 1
            yield result

    def close(self, wait: bool = True) -> None:
        self.closed.append(wait)


def test_export_runs_on_the_executor_it_is_given(demo_export: DemoExport, tmp_path: Path) -> None:
    executor = Recording(Capabilities(same_machine=False, in_process=True))
    out = tmp_path / "given"
    report = export(export_config(demo_export.server, out), executor=executor)
    assert report.exported == demo_export.report.exported
    assert executor.mapped == report.exported + report.failed
    assert executor.ahead_asked == 1  # download-ahead is the executor's call
    assert executor.closed == [True]
    assert open_dataset(str(out)).verify() == []


def test_a_memory_dataset_needs_an_executor_in_this_process(demo_export: DemoExport) -> None:
    elsewhere = Recording(Capabilities(same_machine=True, in_process=False))
    config = export_config(demo_export.server, "memory://injected-elsewhere")
    with pytest.raises(ConfigError, match="exists only in this process"):
        export(config, executor=elsewhere)
    assert elsewhere.mapped == 0
    assert elsewhere.closed == [True]
    here = Recording(Capabilities(same_machine=True, in_process=True))
    report = export(export_config(demo_export.server, "memory://injected-here"), executor=here)
    assert report.exported == demo_export.report.exported


def test_local_executor_capabilities() -> None:
    assert LocalExecutor(1).capabilities == Capabilities(same_machine=True, in_process=True)
    assert LocalExecutor(2, threads=True).capabilities.in_process
    assert not LocalExecutor(2).capabilities.in_process  # worker processes
