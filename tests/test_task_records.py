"""The records where the export's stages meet: the task (option groups whole), the stats
record that adds up, and the executor chosen by the run options."""

from __future__ import annotations

import json
import logging
import pickle
from dataclasses import fields, replace
from pathlib import Path

import pytest
from conftest import FAST_RETRY, export_config

from odyssey_data import fetch as fetch_module
from odyssey_data.api import open_client
from odyssey_data.demo import DemoServer, make_demo_catalog
from odyssey_data.executors import LocalExecutor, make_executor
from odyssey_data.manifest import Manifest
from odyssey_data.models import RecordingInfo
from odyssey_data.options import ClientOptions, RunOptions, ShapeOptions
from odyssey_data.pipeline import export
from odyssey_data.progress import ProgressSink
from odyssey_data.shards import status_details
from odyssey_data.storage import DatasetStore
from odyssey_data.task import RecordingResult, RecordingStats, RecordingTask

# -- the stats record ------------------------------------------------------------------


def test_stats_add_field_by_field_and_sum_to_the_totals() -> None:
    one = RecordingStats(fetched=1, attempts=2, retries=1, exported=1, video_bytes=500)
    two = RecordingStats(fetched=1, attempts=3, url_refreshes=1, download_s=0.25, total_s=1.5)
    three = RecordingStats(not_ready=1, bad_event_lines=4, qc_decoded_frames=9, total_s=0.5)
    both = one + two
    assert both == RecordingStats(
        fetched=2,
        attempts=5,
        retries=1,
        url_refreshes=1,
        exported=1,
        video_bytes=500,
        download_s=0.25,
        total_s=1.5,
    )
    assert (one + two) + three == one + (two + three) == RecordingStats.total([one, two, three])
    assert RecordingStats.total([]) == RecordingStats()
    assert one + RecordingStats() == one
    # Every field takes part in the sum (a field added later must add up too).
    ones = RecordingStats(*(1 for _ in fields(RecordingStats)))
    assert ones + ones == RecordingStats(*(2 for _ in fields(RecordingStats)))


def test_stats_details_are_the_manifest_keys_users_read() -> None:
    # Decided before fetching (selection, a lost worker): nothing.
    assert RecordingStats().details() == {}
    # Fetched, then failed: the download counts.
    failed = RecordingStats(fetched=1, attempts=4, retries=3, url_refreshes=0, total_s=2.0)
    assert failed.details() == {"attempts": 4, "retries": 3, "url_refreshes": 0}
    # Skipped as not ready after asking the API (no video URL yet).
    waiting = RecordingStats(not_ready=1) + RecordingStats(fetched=1, attempts=0)
    assert list(waiting.details().items()) == [
        ("attempts", 0),
        ("retries", 0),
        ("url_refreshes", 0),
        ("not_ready", True),
    ]
    # Exported: the counts, then the bad lines, then (from the result) the probe.
    exported = RecordingResult(
        "s",
        "exported",
        stats=RecordingStats(fetched=1, attempts=2, exported=1, bad_event_lines=1, total_s=1.0),
        warnings=("w",),
        probe="demux",
    )
    assert list(status_details(exported).items()) == [
        ("attempts", 2),
        ("retries", 0),
        ("url_refreshes", 0),
        ("bad_event_lines", 1),
        ("probe", "demux"),
        ("warnings", ["w"]),
    ]


class Collect(ProgressSink):
    """Keeps every result the export hands its progress, and every update."""

    def __init__(self) -> None:
        self.results: list[RecordingResult] = []
        self.seconds: dict[str, float] = {}

    def advance(self, result: RecordingResult) -> None:
        self.results.append(result)
        super().advance(result)

    def update(self, update: object) -> None:
        self.seconds[update.stream_id] = update.seconds  # type: ignore[attr-defined]


def test_a_runs_totals_are_its_recordings_stats_added_up(tmp_path: Path) -> None:
    catalog = make_demo_catalog(4, seed=11, active=1, seconds=1.5)
    with DemoServer(catalog, page_cap=2) as server:
        listed = catalog.snapshot()
        broken, flaky = listed[1].stream_id, listed[2].stream_id
        server.inject(f"/blobs/{broken}/video.mp4", 500, times=50)  # fails after retries
        server.inject(f"/blobs/{flaky}/video.mp4", 503, times=1)  # one retry, then exported
        sink = Collect()
        out = tmp_path / "ds"
        report = export(export_config(server, out, workers=2), progress=sink)
    total = RecordingStats.total(r.stats for r in sink.results)
    assert (report.exported, report.failed, report.skipped) == (3, 1, 1)
    # The report's sums are the recordings' stats summed (the driver retried nothing).
    assert report.retries == total.retries == 3 + 1
    assert report.url_refreshes == total.url_refreshes
    assert report.bad_event_lines == total.bad_event_lines
    assert report.not_ready == total.not_ready == 1
    assert report.exported == total.exported
    assert total.fetched == 4  # every recording but the active stream was fetched
    assert report.video_bytes == total.video_bytes > 0
    assert total.total_s >= total.download_s > 0
    # The progress numbers are the recordings' own.
    for result in sink.results:
        assert sink.seconds[result.stream_id] == result.stats.total_s
    # The manifest: its last run is the report, each recording's entry its details.
    manifest = Manifest.load(DatasetStore(str(out)))
    assert manifest is not None
    last = manifest.stats["last_run"]
    assert {k: last[k] for k in ("retries", "video_bytes", "not_ready", "bad_event_lines")} == {
        "retries": report.retries,
        "video_bytes": report.video_bytes,
        "not_ready": report.not_ready,
        "bad_event_lines": report.bad_event_lines,
    }
    assert sum(e.bytes for e in manifest.files.values() if e.kind == "video") == total.video_bytes
    for result in sink.results:
        entry = manifest.recordings[result.stream_id]
        details = status_details(result)
        assert {k: entry.details[k] for k in details} == details
    entry = manifest.recordings[flaky].to_json()
    keys = ["attempts", "retries", "url_refreshes", "bad_event_lines", "probe"]
    assert [k for k in entry if k in (*keys, "not_ready")] == keys
    assert (entry["attempts"], entry["retries"], entry["probe"]) == (3, 1, "demux")
    assert json.dumps(manifest.recordings[broken].details) == json.dumps(
        {"attempts": 4, "retries": 3, "url_refreshes": 0}
    )


# -- the task: option groups whole -----------------------------------------------------


def test_a_task_carries_its_option_groups_whole_and_pickles(tmp_path: Path) -> None:
    client = ClientOptions(api_url="http://127.0.0.1:9", api_key="ody_k", retry=FAST_RETRY)
    shape = ShapeOptions(frames="jpeg", fps=5.0, probe="decode", event_offset_ms=40.0)
    task = RecordingTask(RecordingInfo("s1"), client, DatasetStore(str(tmp_path)), shape=shape)
    again = pickle.loads(pickle.dumps(task))
    assert again.client == client
    assert again.shape == shape
    assert again.frame_options == shape.frame_options()
    assert again.frame_options.materialised
    assert "ody_k" not in repr(task)


def test_one_client_per_thread_and_client_options(tmp_path: Path) -> None:
    store = DatasetStore(str(tmp_path))
    options = ClientOptions(api_url="http://127.0.0.1:9", api_key="ody_k")
    task = RecordingTask(RecordingInfo("s1"), options, store)
    try:
        first = fetch_module.client_for(task)
        assert fetch_module.client_for(replace(task, info=RecordingInfo("s2"))) is first
        slower = replace(task, client=replace(options, timeout_s=5.0))
        other = fetch_module.client_for(slower)
        assert other is not first
        assert (other.timeout_s, first.timeout_s) == (5.0, 30.0)
    finally:
        fetch_module.close_clients()


def test_credentials_from_the_environment_travel_resolved(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ODYSSEY_API_URL", "http://127.0.0.1:9/")
    monkeypatch.setenv("ODYSSEY_API_KEY", "ody_from_env")
    resolved = fetch_module.with_credentials(ClientOptions(timeout_s=7.0))
    assert (resolved.api_url, resolved.api_key, resolved.timeout_s) == (
        "http://127.0.0.1:9",
        "ody_from_env",
        7.0,
    )
    with open_client(resolved) as client:
        assert (client.api_url, client.timeout_s) == ("http://127.0.0.1:9", 7.0)


# -- the executor the run options name -------------------------------------------------


def test_the_run_options_name_the_executor() -> None:
    made = make_executor(RunOptions(workers=3), threads=True)
    assert isinstance(made, LocalExecutor)
    assert (made.workers, made.threads) == (3, True)
    assert made.capabilities.in_process
    processes = make_executor(RunOptions(workers=2), threads=False)
    assert not processes.capabilities.in_process
    with pytest.raises(TypeError, match="run options"):
        make_executor(RunOptions(), 2)


def test_a_memory_dataset_falls_back_to_one_worker_by_capability(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Materialised frames run in worker processes, which cannot see memory://: the
    # export asks the executor whether its workers share this process, and when they
    # do not, makes it again with one worker.
    catalog = make_demo_catalog(2, seed=5, active=0, seconds=1.0)
    url = "memory://odyssey-test-fallback/dataset"
    caplog.set_level(logging.INFO, logger="odyssey_data.pipeline")
    with DemoServer(catalog) as server:
        report = export(export_config(server, url, workers=2, frames="jpeg"))
    assert (report.exported, report.failed) == (2, 0)
    assert "exporting with one worker" in caplog.text
