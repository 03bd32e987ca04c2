"""Simulation job outputs (issue 9), over real HTTP against the demo server.

Both sources exported into one dataset, jobs not completed skipped with the reason, the
script kept as ground truth (events, frame alignment) and the lag of the logged prompt
times, job pagination, a 404 job, thumbnails and previews, expired URLs of a job output.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pytest
from conftest import FAST_RETRY, export_config

from odyssey_data.api import OdysseyClient
from odyssey_data.cli import main
from odyssey_data.dataset import open_dataset
from odyssey_data.demo import DemoServer, make_demo_catalog
from odyssey_data.demo.synth import SIM_LOG_LAGS_MS, DemoCatalog, DemoSimulationJob
from odyssey_data.errors import NotFoundError
from odyssey_data.pipeline import ExportReport, export


@dataclass
class SimExport:
    server: DemoServer
    catalog: DemoCatalog
    output: Path
    report: ExportReport

    def job(self, status: str, n: int = 0) -> DemoSimulationJob:
        return [job for job in self.catalog.jobs if job.status == status][n]


@pytest.fixture(scope="module")
def server() -> Iterator[DemoServer]:
    """Two finished streams, one active, and the demo jobs; two jobs per list page."""
    with DemoServer(make_demo_catalog(2, seed=21, active=1, seconds=2.0), page_cap=2) as srv:
        yield srv


@pytest.fixture(scope="module")
def sim_export(server: DemoServer, tmp_path_factory: pytest.TempPathFactory) -> SimExport:
    output = tmp_path_factory.mktemp("sim") / "dataset"
    report = export(export_config(server, output, source="all", with_thumbnails=True))
    return SimExport(server, server.catalog, output, report)


def manifest(output: Path) -> dict[str, object]:
    data: dict[str, object] = json.loads((output / "manifest.json").read_text())
    return data


def test_both_sources_are_exported_into_one_dataset(sim_export: SimExport) -> None:
    outputs = [out for job in sim_export.catalog.jobs for out in job.outputs]
    assert len(outputs) == 4
    assert (sim_export.report.exported, sim_export.report.failed) == (2 + 4, 0)
    recordings = open_dataset(str(sim_export.output)).recordings.collect()
    streams = recordings.filter(pl.col("source") == "stream")
    sims = recordings.filter(pl.col("source") == "simulation")
    assert streams.height == 2
    assert streams["job_id"].null_count() == 2
    assert streams["script_index"].null_count() == 2
    assert sorted(sims["stream_id"]) == sorted(out.stream_id for out in outputs)
    for out in outputs:
        row = sims.filter(pl.col("stream_id") == out.stream_id).row(0, named=True)
        assert (row["job_id"], row["script_index"]) == (out.job_id, out.script_index)
        assert row["frame_count"] == out.frame_count
    # Simulation outputs never show up in the recordings list.
    listed = {rec.stream_id for rec in sim_export.catalog.snapshot()}
    assert listed.isdisjoint(out.stream_id for out in outputs)


def test_jobs_not_completed_are_skipped_with_the_reason(sim_export: SimExport) -> None:
    recordings = manifest(sim_export.output)["recordings"]
    assert isinstance(recordings, dict)
    pending = recordings[f"job:{sim_export.job('pending').job_id}"]
    processing = recordings[f"job:{sim_export.job('processing').job_id}"]
    failed = recordings[f"job:{sim_export.job('failed').job_id}"]
    assert pending["status"] == processing["status"] == failed["status"] == "skipped"
    assert pending["reason"].startswith("job is pending")
    assert processing["reason"].startswith("job is processing")
    assert failed["reason"] == "job failed: the renderer ran out of GPU memory"
    # 1 active stream + 3 jobs not completed; no completed job is keyed as a job.
    assert sim_export.report.skipped == 4
    for n in range(3):
        assert f"job:{sim_export.job('completed', n).job_id}" not in recordings


def test_prompt_lag_is_logged_minus_script_time(sim_export: SimExport) -> None:
    ds = open_dataset(str(sim_export.output))
    segments = ds.segments.collect()
    with_script = [sim_export.job("completed", 0), sim_export.job("completed", 1)]
    outputs = [out for job in with_script for out in job.outputs]
    assert [out.log_lag_ms for out in outputs] == list(SIM_LOG_LAGS_MS)
    for out in outputs:
        mine = segments.filter(pl.col("stream_id") == out.stream_id).sort("prompt_index")
        lags = mine["prompt_lag_s"].to_list()
        assert lags == pytest.approx([0.0, *(ms / 1000 for ms in out.log_lag_ms)])
        script_times = [t / 1000 for t, kind, _ in with_script[0].script if kind != "end"]
        assert mine["start_s"].to_list() == pytest.approx(script_times)
    # No script in the detail (the log is the script): nothing to compare, null.
    plain = sim_export.job("completed", 2).outputs[0]
    mine = segments.filter(pl.col("stream_id") == plain.stream_id)
    assert mine.height == 3
    assert mine["prompt_lag_s"].null_count() == 3
    # Streams: null too.
    stream_id = sim_export.catalog.snapshot()[-1].stream_id
    assert segments.filter(pl.col("stream_id") == stream_id)["prompt_lag_s"].null_count() > 0


def test_the_script_is_kept_in_the_events_table(sim_export: SimExport) -> None:
    events = open_dataset(str(sim_export.output)).events.collect()
    job = sim_export.job("completed", 0)
    out = job.outputs[0]
    mine = events.filter(pl.col("stream_id") == out.stream_id).sort("event_index")
    script = mine.filter(pl.col("origin") == "script")
    assert script["kind"].to_list() == [kind for _, kind, _ in job.script]
    assert script["time_s"].to_list() == pytest.approx([t / 1000 for t, _, _ in job.script])
    assert script["prompt"].to_list() == [prompt for _, _, prompt in job.script]
    assert json.loads(script["raw"][1]) == job.script_json()[1]
    # The events log is kept too, sorted with the script by time.
    logged = mine.filter(pl.col("origin") == "log")
    assert logged.height == len(out.events())
    assert mine["time_s"].to_list() == sorted(mine["time_s"].to_list())
    recording = open_dataset(str(sim_export.output)).recordings.collect()
    row = recording.filter(pl.col("stream_id") == out.stream_id).row(0, named=True)
    assert row["events_count"] == mine.height
    assert row["prompts_count"] == 3


def test_frames_align_to_the_script_not_the_log(sim_export: SimExport) -> None:
    frames = open_dataset(str(sim_export.output)).frames.collect()
    job = sim_export.job("completed", 0)
    out = job.outputs[0]
    script_t = job.script[1][0] / 1000
    logged_t = script_t + out.log_lag_ms[0] / 1000
    mine = frames.filter(pl.col("stream_id") == out.stream_id)
    # Frames between the script's time and the logged time: the script's prompt is in force.
    between = mine.filter((pl.col("timestamp_s") >= script_t) & (pl.col("timestamp_s") < logged_t))
    assert between.height > 0
    assert set(between["prompt_index"]) == {1}
    assert set(between["prompt"]) == {job.script[1][2]}
    assert between["prompt_time_s"].to_list() == pytest.approx([script_t] * between.height)
    before = mine.filter(pl.col("timestamp_s") < script_t)
    assert set(before["prompt_index"]) == {0}


def test_thumbnails_and_previews_are_stored_listed_and_checksummed(
    sim_export: SimExport,
) -> None:
    ds = open_dataset(str(sim_export.output))
    recordings = ds.recordings.collect().filter(pl.col("source") == "simulation")
    for row in recordings.iter_rows(named=True):
        for column, magic in (("thumbnail_path", b"\xff\xd8\xff"), ("preview_path", None)):
            rel = row[column]
            assert rel == f"videos/{row['stream_id']}.{column.split('_')[0]}." + (
                "jpg" if magic else "mp4"
            )
            data = (sim_export.output / rel).read_bytes()
            if magic:
                assert data.startswith(magic)
            entry = ds.manifest.files[rel]
            assert entry.bytes == len(data)
            assert entry.sha256 == hashlib.sha256(data).hexdigest()
    assert ds.verify() == []


def test_jobs_are_paged_and_filtered(server: DemoServer) -> None:
    server.request_log.clear()
    with OdysseyClient(server.base_url, server.api_key, retry=FAST_RETRY, page_size=100) as c:
        jobs = list(c.list_simulation_jobs())
        assert len(jobs) == len({job.job_id for job in jobs}) == 6
        assert server.request_log.count("GET", "/simulation-jobs", 200) >= 3  # page cap 2
        assert {job.status for job in c.list_simulation_jobs(status="completed")} == {"completed"}
        assert len(list(c.list_simulation_jobs(status="completed"))) == 3
        assert {job.status for job in c.list_simulation_jobs(active=True)} == {
            "pending",
            "processing",
        }
        assert len(list(c.list_simulation_jobs(limit=3))) == 3
        failed = next(job for job in jobs if job.status == "failed")
        assert failed.error_message
        detail = c.get_simulation_job(jobs[0].job_id)
        assert detail.job_id == jobs[0].job_id


def test_unknown_job_is_404(server: DemoServer, tmp_path: Path) -> None:
    with OdysseyClient(server.base_url, server.api_key, retry=FAST_RETRY) as client:
        with pytest.raises(NotFoundError, match="simulation job 'no-such-job'"):
            client.get_simulation_job("no-such-job")
    report = export(
        export_config(server, tmp_path / "out", source="simulations", job_ids=["no-such-job"])
    )
    assert (report.exported, report.failed) == (0, 1)
    status = manifest(tmp_path / "out")["recordings"]
    assert isinstance(status, dict)
    assert "HTTP 404" in status["job:no-such-job"]["reason"]


def test_status_filter_lists_only_completed_jobs(server: DemoServer, tmp_path: Path) -> None:
    report = export(
        export_config(server, tmp_path / "out", source="simulations", job_status="completed")
    )
    assert (report.exported, report.failed, report.skipped) == (4, 0, 0)
    assert report.ok


def test_cli_exports_completed_jobs_only(server: DemoServer, tmp_path: Path) -> None:
    job = next(job for job in server.catalog.jobs if job.status == "completed")
    out = tmp_path / "cli"
    code = main(
        [
            "export",
            str(out),
            "--api-url",
            server.base_url,
            "--api-key",
            server.api_key,
            "--source",
            "simulations",
            "--job-id",
            job.job_id,
            "--workers",
            "1",
            "--json",
        ]
    )
    assert code == 0
    recordings = open_dataset(str(out)).recordings.collect()
    assert sorted(recordings["stream_id"]) == sorted(o.stream_id for o in job.outputs)
    assert set(recordings["source"]) == {"simulation"}
    assert recordings["thumbnail_path"].null_count() == recordings.height  # off by default


def test_expired_url_of_a_job_output_is_refreshed_from_the_job(tmp_path: Path) -> None:
    catalog = make_demo_catalog(0, active=0, seed=5, seconds=1.0)
    job = next(job for job in catalog.jobs if job.status == "completed")
    target = job.outputs[0].stream_id
    with DemoServer(catalog) as srv:
        original = srv.presign
        stale: list[int] = []

        def presign(stream_id: str, name: str) -> str:
            if stream_id == target and name == "video.mp4" and len(stale) < 2:
                stale.append(1)  # the selection's and the unit of work's job detail
                clock = srv.clock
                srv.clock = lambda: time.time() - 7200
                try:
                    return original(stream_id, name)
                finally:
                    srv.clock = clock
            return original(stream_id, name)

        srv.presign = presign  # type: ignore[method-assign]
        report = export(
            export_config(srv, tmp_path / "out", source="simulations", job_ids=[job.job_id])
        )
        assert (report.exported, report.failed) == (len(job.outputs), 0)
        assert report.url_refreshes == 1
        assert srv.request_log.count("GET", f"/blobs/{target}/video.mp4", 403) == 1


def test_source_options_are_checked() -> None:
    from odyssey_data.errors import ConfigError
    from odyssey_data.pipeline import ExportConfig

    with pytest.raises(ConfigError, match="source= must be one of"):
        ExportConfig(output="x", source="everything")
    with pytest.raises(ConfigError, match="need source="):
        ExportConfig(output="x", job_ids=("a",))
    with pytest.raises(ConfigError, match="job_status= must be one of"):
        ExportConfig(output="x", source="all", job_status="done")
