"""Shared fixtures: the demo server over real HTTP on 127.0.0.1, and one demo export."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from odyssey_data.api import RetryPolicy
from odyssey_data.demo import DemoCatalog, DemoServer, make_demo_catalog
from odyssey_data.pipeline import ExportConfig, ExportReport, export

# Exports to object stores keep temp files in a per-user scratch folder: the tests' own
# (inherited by the CLI subprocesses they start), never the user's ~/.cache.
if "ODYSSEY_DATA_SCRATCH" not in os.environ:
    os.environ["ODYSSEY_DATA_SCRATCH"] = tempfile.mkdtemp(prefix="odyssey-data-test-scratch-")
    atexit.register(shutil.rmtree, os.environ["ODYSSEY_DATA_SCRATCH"], ignore_errors=True)

#: Retries that keep fault tests fast: tiny waits, few attempts.
FAST_RETRY = RetryPolicy(attempts=4, timeout_s=20.0, wait_initial_s=0.01, wait_max_s=0.05)


@dataclass
class DemoExport:
    """A finished export of the session's demo server."""

    server: DemoServer
    catalog: DemoCatalog
    output: Path
    report: ExportReport


@pytest.fixture(scope="session")
def demo_catalog() -> DemoCatalog:
    """Eight finished recordings (all three events shapes, both sizes) and one active."""
    return make_demo_catalog(8, seed=7, active=1)


@pytest.fixture(scope="session")
def demo_server(demo_catalog: DemoCatalog) -> Iterator[DemoServer]:
    """The session's demo server; page cap 3 so listing needs several pages.

    Shared: tests that inject faults or add recordings must start their own server.
    """
    with DemoServer(demo_catalog, page_cap=3) as server:
        yield server


@pytest.fixture
def fresh_server() -> Iterator[DemoServer]:
    """A demo server of its own (3 finished recordings, 1 active) for tests that change it."""
    with DemoServer(make_demo_catalog(3, seed=11, active=1), page_cap=2) as server:
        yield server


def export_config(server: DemoServer, output: str | Path, **options: object) -> ExportConfig:
    """Export options pointing at ``server``, with fast retries."""
    base: dict[str, object] = {
        "output": str(output),
        "api_url": server.base_url,
        "api_key": server.api_key,
        "workers": 1,
        "retry": FAST_RETRY,
    }
    base.update(options)
    return ExportConfig(**base)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def demo_export(
    demo_server: DemoServer, demo_catalog: DemoCatalog, tmp_path_factory: pytest.TempPathFactory
) -> DemoExport:
    """The demo recordings exported once with two worker processes (read-only for tests)."""
    output = tmp_path_factory.mktemp("demo-export") / "dataset"
    report = export(export_config(demo_server, output, workers=2))
    return DemoExport(demo_server, demo_catalog, output, report)
