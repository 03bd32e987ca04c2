"""Crash safety, resume, and one writer at a time.

The kill test runs the real CLI (``python -m odyssey_data.cli export``) in a subprocess
against a demo server in this process, SIGKILLs it at chosen and random moments, checks
that the committed dataset is readable and consistent after every kill, and that the
re-runs end with exactly the rows of a clean export.
"""

from __future__ import annotations

import json
import logging
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from conftest import export_config
from storage_servers import (
    assert_same_tables,
    dataset_tables,
    gcs_fixture,  # noqa: F401 - fixture
    s3_fixture,  # noqa: F401 - fixture
    target_fixture,  # noqa: F401 - fixture
)

from odyssey_data.dataset import open_dataset
from odyssey_data.demo import DemoServer, make_demo_catalog
from odyssey_data.errors import StorageError
from odyssey_data.manifest import Manifest
from odyssey_data.pipeline import ExportReport, ProgressSink, RecordingResult, export
from odyssey_data.storage import LOCK_NAME, MANIFEST_NAME, DatasetStore, WriterLock

REPO = Path(__file__).resolve().parents[1]


def _generation(out: Path) -> int:
    try:
        return int(json.loads((out / MANIFEST_NAME).read_bytes())["generation"])
    except (FileNotFoundError, ValueError, KeyError):
        return 0


_RUNNING: list[subprocess.Popen[bytes]] = []


@pytest.fixture(autouse=True)
def _reap_subprocesses() -> Iterator[None]:
    """No export subprocess outlives its test, whatever the test's outcome."""
    yield
    while _RUNNING:
        proc = _RUNNING.pop()
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)


def _cli(server: DemoServer, out: Path, log_file: Path, *extra: str) -> subprocess.Popen[bytes]:
    cmd = [
        sys.executable,
        "-m",
        "odyssey_data.cli",
        "export",
        str(out),
        "--api-url",
        server.base_url,
        "--api-key",
        server.api_key,
        "--workers",
        "1",
        "--shard-rows",
        "100",
        "-q",
        *extra,
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO)}  # this working tree, not an installed copy
    with open(log_file, "ab") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=log, cwd=REPO)
    _RUNNING.append(proc)
    return proc


def _wait_for(proc: subprocess.Popen[bytes], ready: Any, timeout_s: float = 30.0) -> bool:
    """Poll ``ready()`` every 2 ms; False when the process ended first."""
    deadline = time.monotonic() + timeout_s
    while not ready():
        if proc.poll() is not None:
            return False
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("the export neither reached the kill point nor ended")
        time.sleep(0.002)
    return True


def _assert_committed_subset(out: Path, clean: dict[str, pl.DataFrame]) -> int:
    """The dataset at ``out`` is sound and holds exactly the clean rows of what it lists."""
    if not (out / MANIFEST_NAME).exists():
        return 0  # killed before the first commit: there is no dataset yet
    ds = open_dataset(str(out))
    assert ds.verify() == []
    exported = sorted(ds.manifest.exported())
    got = dataset_tables(str(out))
    want = {name: t.filter(pl.col("stream_id").is_in(exported)) for name, t in clean.items()}
    assert_same_tables(got, want)
    return len(exported)


def test_sigkill_at_any_moment_then_rerun_gives_the_clean_dataset(tmp_path: Path) -> None:
    catalog = make_demo_catalog(8, seed=21, active=0)
    out = tmp_path / "dataset"
    log_file = tmp_path / "stderr.log"
    rng = random.Random(1234)
    with DemoServer(catalog, page_cap=3) as server:
        export(export_config(server, tmp_path / "clean", shard_rows=100))
        clean = dataset_tables(str(tmp_path / "clean"))
        assert clean["recordings"].height == 8

        # Kill points, in turn: right after a run's first commit; right after a shard
        # file appears, before its commit; at a random moment once the run has the lock
        # (listing, downloading, writing a video or a shard, committing, releasing).
        kinds = ("commits", "shard", "random")
        kills = 0
        progress: list[int] = []
        while kills < 12:
            kind = kinds[kills % len(kinds)]
            start_gen = _generation(out)
            committed = (out / MANIFEST_NAME).exists()
            next_shard = open_dataset(str(out)).manifest.next_shard() if committed else 0
            proc = _cli(server, out, log_file)
            if kind == "commits":
                alive = _wait_for(proc, lambda g=start_gen + 1: _generation(out) >= g)
            elif kind == "shard":
                alive = _wait_for(proc, (out / "frames" / f"part-{next_shard:06d}.parquet").exists)
            else:
                alive = _wait_for(proc, (out / LOCK_NAME).exists)
                time.sleep(rng.uniform(0.0, 0.3))
            if alive and proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                kills += 1
            code = proc.wait(timeout=30)
            assert code in (0, -signal.SIGKILL), log_file.read_text()
            progress.append(_assert_committed_subset(out, clean))
            if code == 0:
                break
        assert kills >= 6, f"only {kills} kills landed; recordings committed: {progress}"
        assert progress == sorted(progress)  # a kill never loses what was committed
        print("recordings committed after each kill:", progress)

        final = _cli(server, out, log_file)
        assert final.wait(timeout=60) == 0, log_file.read_text()

    ds = open_dataset(str(out))
    assert ds.verify() == []
    assert ds.manifest.counts() == {"exported": 8}
    assert not (out / LOCK_NAME).exists()
    assert_same_tables(dataset_tables(str(out)), clean)
    # Every leftover of the killed runs is gone: only listed files remain.
    on_disk = {
        str(p.relative_to(out))
        for p in out.rglob("*")
        if p.is_file() and p.name not in (MANIFEST_NAME,)
    }
    assert on_disk == set(ds.manifest.files)
    # The killed runs' locks were broken (their processes were gone), with a warning.
    assert "breaking the lock" in log_file.read_text()


def test_second_export_fails_clearly_while_the_first_holds_the_lock(tmp_path: Path) -> None:
    """Two processes, one dataset: the second stops with a message, the first wins."""
    catalog = make_demo_catalog(3, seed=31, active=0, seconds=1.0)
    out = tmp_path / "dataset"
    log_file = tmp_path / "stderr.log"
    with DemoServer(catalog) as server:
        # Slow the first export down: its first downloads wait on Retry-After.
        server.inject("/blobs/", 503, times=3, headers={"Retry-After": "1"})
        first = _cli(server, out, log_file)
        assert _wait_for(first, (out / LOCK_NAME).exists), log_file.read_text()
        with pytest.raises(StorageError) as caught:
            export(export_config(server, out))
        message = str(caught.value)
        assert "locked by another writer" in message
        assert f"pid {first.pid}" in message
        assert "--break-lock" in message
        assert first.wait(timeout=60) == 0, log_file.read_text()
    ds = open_dataset(str(out))
    assert ds.verify() == []
    assert ds.manifest.counts() == {"exported": 3}


def _write_lock(store: DatasetStore, **fields: Any) -> None:
    doc = {
        "owner": "someone-else",
        "purpose": "export",
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "pid_namespace": None,
        "pid_start": None,
        "created_at": "2026-11-20T10:00:00.000Z",
        "refreshed_epoch": time.time(),
    }
    doc.update(fields)
    store.write_bytes(LOCK_NAME, json.dumps(doc).encode())


def test_lock_of_a_live_process_holds_and_break_lock_takes_it(
    fresh_server: DemoServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "dataset"
    store = DatasetStore(str(out))
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        probe = WriterLock(store)
        me = json.loads(probe._document())
        _write_lock(store, pid=sleeper.pid, pid_namespace=me["pid_namespace"], pid_start=None)
        with pytest.raises(StorageError, match="--break-lock"):
            export(export_config(fresh_server, out))
        assert not (out / MANIFEST_NAME).exists()
        with caplog.at_level(logging.WARNING, logger="odyssey_data.storage"):
            report = export(export_config(fresh_server, out, break_lock=True))
        assert report.exported == 3
        assert "--break-lock was given" in caplog.text
    finally:
        sleeper.kill()
        sleeper.wait()
    assert not (out / LOCK_NAME).exists()


@pytest.mark.parametrize(
    ("fields", "stale"),
    [
        ({"host": "another-machine", "refreshed_epoch": time.time()}, False),
        ({"host": "another-machine", "refreshed_epoch": time.time() - 7200}, True),
        ({"pid": 2**22 + 12345}, True),  # no such process on this machine
        ({"pid_start": "1"}, True),  # this pid now belongs to a newer process
        ({}, False),  # this very process: alive
    ],
)
def test_lock_staleness(fields: dict[str, Any], stale: bool, tmp_path: Path) -> None:
    store = DatasetStore(str(tmp_path))
    lock = WriterLock(store, timeout_s=3600)
    me = json.loads(lock._document())
    doc = {**me, "owner": "someone-else", **fields}
    assert (lock.stale_reason(doc) is not None) == stale


def test_stale_lock_by_age_is_broken_with_a_warning(
    fresh_server: DemoServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "dataset"
    store = DatasetStore(str(out))
    _write_lock(store, host="another-machine", refreshed_epoch=time.time() - 120)
    with pytest.raises(StorageError, match="another-machine"):
        export(export_config(fresh_server, out))
    with caplog.at_level(logging.WARNING, logger="odyssey_data.storage"):
        report = export(export_config(fresh_server, out, lock_timeout_s=60))
    assert report.exported == 3
    assert "longer than the lock timeout" in caplog.text


def test_the_lock_is_exclusive_on_every_target(target: Any) -> None:
    store = DatasetStore(target.url, target.storage_options)
    first = WriterLock(store)
    first.acquire()
    second = WriterLock(store)
    with pytest.raises(StorageError, match="locked by another writer"):
        second.acquire()
    first.refresh(force=True)
    first.check()
    with pytest.raises(StorageError, match="lost its lock"):
        second.check()
    second.release()  # not its lock: left alone
    assert store.file_info(LOCK_NAME) is not None
    first.release()
    assert store.file_info(LOCK_NAME) is None
    second.acquire()
    second.release()


class _Meddler(ProgressSink):
    """Does something to the dataset after the first commit (another writer's act)."""

    def __init__(self, out: Path, act: str) -> None:
        self.out = out
        self.act = act
        self.done = False

    def advance(self, result: RecordingResult) -> None:
        if self.done or result.status != "exported":
            return
        self.done = True
        store = DatasetStore(str(self.out))
        if self.act == "commit":
            # Another writer (one that broke the lock) commits a generation of its own.
            data = json.loads(store.read_bytes(MANIFEST_NAME) or b"")
            data["generation"] += 1
            store.write_bytes(MANIFEST_NAME, json.dumps(data).encode())
        else:
            _write_lock(store, host="another-machine", owner="the-other-writer")

    def finish(self, report: ExportReport) -> None:
        raise AssertionError("the export must not finish")


@pytest.mark.parametrize(
    ("act", "message"),
    [("commit", "another writer committed"), ("lock", "lost its lock")],
)
def test_commit_refuses_when_another_writer_got_in(
    act: str, message: str, fresh_server: DemoServer, tmp_path: Path
) -> None:
    out = tmp_path / "dataset"
    meddler = _Meddler(out, act)
    with pytest.raises(StorageError, match=message) as caught:
        export(export_config(fresh_server, out, shard_rows=1), progress=meddler)
    assert "run the export again" in str(caught.value)
    ds = open_dataset(str(out))
    before = ds.manifest.generation
    assert ds.verify() == []  # what is committed is still sound
    assert len(ds.manifest.exported()) == 1
    if act == "lock":
        (out / LOCK_NAME).unlink()  # the "other writer" is gone
    report = export(export_config(fresh_server, out, shard_rows=1))
    assert (report.exported, report.already) == (2, 1)
    final = open_dataset(str(out))
    assert final.verify() == []
    assert final.manifest.generation > before


def test_generation_counts_commits(fresh_server: DemoServer, tmp_path: Path) -> None:
    out = tmp_path / "dataset"
    report = export(export_config(fresh_server, out, shard_rows=1))
    manifest = open_dataset(str(out)).manifest
    assert report.shards == 3
    # One for the new (empty) dataset before any file is written, one per shard, one at
    # the end.
    assert manifest.generation == 1 + report.shards + 1
    assert isinstance(manifest, Manifest)
