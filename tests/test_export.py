"""End to end over real HTTP: the demo server → export → the dataset, checked against
what the demo server itself knows (pts it encoded, prompts it issued, colours it drew)."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest
from conftest import DemoExport, export_config

from odyssey_data import open_dataset
from odyssey_data.cli import main
from odyssey_data.demo import DemoServer
from odyssey_data.demo.synth import prompt_colour
from odyssey_data.pipeline import export
from odyssey_data.schema import EVENTS_SCHEMA, FRAMES_SCHEMA, RECORDINGS_SCHEMA, SEGMENTS_SCHEMA


def finished(demo: DemoExport) -> list:
    return [r for r in demo.catalog.recordings if not r.is_active]


def test_report_counts(demo_export: DemoExport) -> None:
    report = demo_export.report
    recs = finished(demo_export)
    assert report.exported == len(recs) == 8
    assert report.skipped == 1  # the active stream
    assert report.failed == 0
    assert report.frames == sum(r.frame_count for r in recs)
    assert not report.ok  # a skip makes the run partial (exit 3 in the CLI)


def test_listing_needed_several_pages(demo_export: DemoExport) -> None:
    offsets = [
        path
        for method, path, status in demo_export.server.request_log.snapshot()
        if path == "/stream-recordings"
    ]
    assert len(offsets) >= 3  # 9 recordings, page cap 3


def test_tables_have_the_contract_schemas(demo_export: DemoExport) -> None:
    ds = open_dataset(str(demo_export.output))
    for name, schema in (
        ("frames", FRAMES_SCHEMA),
        ("recordings", RECORDINGS_SCHEMA),
        ("events", EVENTS_SCHEMA),
        ("segments", SEGMENTS_SCHEMA),
    ):
        files = ds.manifest.table_files(name)
        assert files, name
        table = pq.read_table(demo_export.output / files[0])
        assert table.schema.names == schema.names
        for field in schema:
            assert table.schema.field(field.name).type == field.type, field.name


def test_frames_are_every_presented_frame_in_order(demo_export: DemoExport) -> None:
    ds = open_dataset(str(demo_export.output))
    frames = ds.frames.collect()
    assert frames.equals(frames.sort("stream_id", "frame_index"))
    for rec in finished(demo_export):
        mine = frames.filter(pl.col("stream_id") == rec.stream_id)
        expected_pts = rec.frame_pts()
        assert mine["frame_index"].to_list() == list(range(len(expected_pts)))
        assert mine["pts"].to_numpy().tolist() == expected_pts.tolist()
        first = int(expected_pts[0])
        ts = (expected_pts - first).astype(np.float64) / 90000.0
        assert np.array_equal(mine["timestamp_s"].to_numpy(), ts)
        assert mine["video_path"].unique().to_list() == [f"videos/{rec.stream_id}.mp4"]
        assert mine["width"].unique().to_list() == [rec.width]
        assert mine["is_keyframe"][0]


def test_timestamps_match_a_real_decoder(demo_export: DemoExport) -> None:
    """Every frame's pts equals the decoded frame's, on VFR + B-frame + non-zero-start files."""
    ds = open_dataset(str(demo_export.output))
    frames = ds.frames.collect()
    nonzero_start = 0
    for rec in finished(demo_export):
        path = demo_export.output / "videos" / f"{rec.stream_id}.mp4"
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            tb = stream.time_base
            decoded = [f.pts for f in container.decode(stream)]
        mine = frames.filter(pl.col("stream_id") == rec.stream_id)
        assert mine["pts"].to_list() == decoded
        expected = [float((p - decoded[0]) * Fraction(tb)) for p in decoded]
        assert mine["timestamp_s"].to_list() == pytest.approx(expected, abs=1e-12)
        nonzero_start += decoded[0] > 0
    assert nonzero_start >= 1


def expected_prompt(rec, t: float) -> tuple[str | None, int | None]:
    current: tuple[str | None, int | None] = (None, None)
    for i, (ms, prompt) in enumerate(rec.prompts):
        if ms / 1000.0 <= t + 1e-9:
            current = (prompt, i)
    return current


def test_every_frame_carries_the_prompt_in_force(demo_export: DemoExport) -> None:
    ds = open_dataset(str(demo_export.output))
    frames = ds.frames.collect()
    for rec in finished(demo_export):
        mine = frames.filter(pl.col("stream_id") == rec.stream_id)
        for t, prompt, index in mine.select("timestamp_s", "prompt", "prompt_index").iter_rows():
            assert (prompt, index) == expected_prompt(rec, t), (rec.stream_id, t)


def test_alignment_at_segment_boundaries(demo_export: DemoExport) -> None:
    """The frame just before an interaction keeps the old prompt, the one at/after gets the new."""
    ds = open_dataset(str(demo_export.output))
    frames = ds.frames.collect()
    checked = 0
    for rec in finished(demo_export):
        mine = frames.filter(pl.col("stream_id") == rec.stream_id)
        ts = mine["timestamp_s"].to_numpy()
        for i, (ms, prompt) in enumerate(rec.prompts[1:], start=1):
            t = ms / 1000.0
            after = int(np.searchsorted(ts, t - 1e-9))
            if after == 0 or after >= len(ts):
                continue
            assert mine["prompt"][after - 1] == rec.prompts[i - 1][1]
            assert mine["prompt"][after] == prompt
            assert mine["prompt_index"][after] == i
            assert mine["prompt_time_s"][after] == pytest.approx(t)
            checked += 1
    assert checked >= 8


def test_segments_agree_with_frames(demo_export: DemoExport) -> None:
    ds = open_dataset(str(demo_export.output))
    frames = ds.frames.collect()
    segments = ds.segments.collect()
    counts = (
        frames.filter(pl.col("prompt_index").is_not_null())
        .group_by("stream_id", "prompt_index")
        .agg(pl.len().cast(pl.Int32).alias("n"), pl.col("frame_index").min().alias("first"))
    )
    joined = segments.join(counts, on=["stream_id", "prompt_index"], how="left")
    for row in joined.iter_rows(named=True):
        assert row["frame_count"] == (row["n"] or 0)
        if row["frame_count"]:
            assert row["first_frame"] == row["first"]
    assert segments.height == sum(len(r.prompts) for r in finished(demo_export))


def test_events_table_keeps_all_three_shapes(demo_export: DemoExport) -> None:
    ds = open_dataset(str(demo_export.output))
    events = ds.events.collect()
    shapes = {r.events_shape for r in finished(demo_export)}
    assert shapes == {1, 2, 3}
    kinds = set(events["kind"].unique().to_list())
    assert {"start", "interact", "end"} <= kinds
    assert "interact_acknowledged" in kinds  # shape 1 logs acknowledgements
    for rec in finished(demo_export):
        mine = events.filter(pl.col("stream_id") == rec.stream_id)
        prompts = mine.filter(pl.col("kind").is_in(["start", "interact"]))
        assert prompts["prompt"].to_list() == [p for _, p in rec.prompts]
        assert prompts["time_s"].to_list() == pytest.approx([ms / 1000 for ms, _ in rec.prompts])
        for raw in mine["raw"].to_list():
            json.loads(raw)


def test_a_reference_decodes_to_the_right_picture(demo_export: DemoExport) -> None:
    ds = open_dataset(str(demo_export.output))
    rec = finished(demo_export)[0]
    rows = (
        ds.frames.filter(pl.col("stream_id") == rec.stream_id)
        .collect()
        .gather_every(7)
        .sample(fraction=1.0, shuffle=True, seed=3)
    )
    images = ds.load_frames(rows)
    path = demo_export.output / "videos" / f"{rec.stream_id}.mp4"
    with av.open(str(path)) as container:
        decoded = {f.pts: f.to_ndarray(format="rgb24") for f in container.decode(video=0)}
    for (pts, prompt), image in zip(rows.select("pts", "prompt").iter_rows(), images, strict=True):
        assert np.array_equal(image, decoded[pts])
        # The demo paints the background in the prompt's colour: the picture matches the row.
        corner = image[2:8, 2:8].reshape(-1, 3).mean(axis=0)
        assert np.abs(corner - np.array(prompt_colour(prompt))).max() < 12


def test_load_frames_accepts_pairs_and_keeps_order(demo_export: DemoExport) -> None:
    ds = open_dataset(str(demo_export.output))
    a, b = finished(demo_export)[:2]
    wanted = [(b.stream_id, 5), (a.stream_id, 0), (b.stream_id, 1)]
    images = ds.load_frames(wanted)
    assert [img.shape for img in images] == [
        (b.height, b.width, 3),
        (a.height, a.width, 3),
        (b.height, b.width, 3),
    ]
    again = ds.load_frames([wanted[0]])
    assert np.array_equal(again[0], images[0])


def test_manifest_lists_everything_and_the_skip(demo_export: DemoExport) -> None:
    manifest = json.loads((demo_export.output / "manifest.json").read_text())
    assert manifest["format"] == "odyssey-data"
    assert manifest["format_version"] == 1
    assert manifest["producer"]["name"] == "odyssey-data"
    statuses = {sid: st["status"] for sid, st in manifest["recordings"].items()}
    active = [r for r in demo_export.catalog.recordings if r.is_active]
    assert statuses[active[0].stream_id] == "skipped"
    assert "active" in manifest["recordings"][active[0].stream_id]["reason"]
    assert sum(s == "exported" for s in statuses.values()) == 8
    listed = {f["path"] for f in manifest["files"]}
    on_disk = {
        str(p.relative_to(demo_export.output))
        for p in demo_export.output.rglob("*")
        if p.is_file() and p.name != "manifest.json"
    }
    assert listed == on_disk
    assert open_dataset(str(demo_export.output)).verify() == []


def test_no_secret_anywhere_in_the_dataset(demo_export: DemoExport) -> None:
    key = demo_export.server.api_key.encode()
    for path in demo_export.output.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert key not in data, path
            assert b"X-Amz-Signature" not in data, path
            assert b"X-Amz-Credential" not in data, path


def test_parquet_is_queryable_directly(demo_export: DemoExport) -> None:
    direct = pl.scan_parquet(str(demo_export.output / "frames" / "*.parquet")).collect()
    assert direct.height == demo_export.report.frames
    per_prompt = direct.group_by("prompt").len()
    assert per_prompt.height > 8


def test_recordings_table(demo_export: DemoExport) -> None:
    recs = open_dataset(str(demo_export.output)).recordings.collect()
    assert recs.height == 8
    by_id = {row["stream_id"]: row for row in recs.iter_rows(named=True)}
    for rec in finished(demo_export):
        row = by_id[rec.stream_id]
        assert row["frame_count"] == rec.frame_count
        assert row["prompts_count"] == len(rec.prompts)
        assert row["codec"] == "h264"
        assert row["time_base"] == "1/90000"
        assert row["source"] == "stream"
        assert row["bad_event_lines"] == 0
        video = demo_export.output / row["video_path"]
        assert row["video_bytes"] == video.stat().st_size
        assert video.read_bytes() == rec.video_bytes()  # the recording's own bytes


def test_rerun_adds_nothing(demo_export: DemoExport, tmp_path: Path) -> None:
    # A copy, so the session's dataset stays untouched for other tests.
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(demo_export.output, copy)
    report = export(export_config(demo_export.server, copy))
    assert report.exported == 0
    assert report.already == 8
    assert report.skipped == 1  # the active stream is tried again, and still active
    ds = open_dataset(str(copy))
    assert ds.frames.collect().height == demo_export.report.frames


def test_stream_id_filter_and_limit(demo_server: DemoServer, tmp_path: Path) -> None:
    target = demo_server.catalog.recordings[3].stream_id
    report = export(export_config(demo_server, tmp_path / "one", stream_ids=(target,)))
    assert (report.exported, report.skipped, report.failed) == (1, 0, 0)
    ids = open_dataset(str(tmp_path / "one")).recordings.collect()["stream_id"].to_list()
    assert ids == [target]
    # The limit counts recordings that can be exported: the active stream listed first
    # is reported as not ready without taking one of the two places.
    report = export(export_config(demo_server, tmp_path / "two", limit=2))
    assert (report.exported, report.skipped, report.not_ready) == (2, 1, 1)


def test_cli_exit_codes(demo_server: DemoServer, tmp_path: Path, capsys) -> None:
    finished_id = next(r.stream_id for r in demo_server.catalog.recordings if not r.is_active)
    common = ["--api-url", demo_server.base_url, "--api-key", demo_server.api_key, "-q"]
    assert main(["export", str(tmp_path / "a"), *common, "--stream-id", finished_id]) == 0
    # The active stream is not ready yet, not a failure: 0, and 3 only with --strict.
    assert main(["export", str(tmp_path / "b"), *common, "--limit", "3"]) == 0
    assert main(["export", str(tmp_path / "b"), *common, "--limit", "3", "--strict"]) == 3
    assert main(["inspect", str(tmp_path / "b")]) == 0
    assert main(["verify", str(tmp_path / "b")]) == 0
    bad_key = ["--api-url", demo_server.base_url, "--api-key", "ody_wrong_key"]
    assert main(["export", str(tmp_path / "c"), *bad_key, "-q"]) == 1
    assert main(["export", str(tmp_path / "d"), "--api-url", demo_server.base_url, "-q"]) in (1, 2)
    with pytest.raises(SystemExit) as usage:
        main(["export"])
    assert usage.value.code == 2
    out = capsys.readouterr()
    assert demo_server.api_key not in out.out + out.err
    assert "ody_wrong_key" not in out.out + out.err


def test_cli_without_key_is_a_usage_error(
    demo_server: DemoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ODYSSEY_API_KEY", raising=False)
    assert main(["export", str(tmp_path / "x"), "--api-url", demo_server.base_url, "-q"]) == 2


def test_environment_variables_configure_the_api(
    demo_server: DemoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ODYSSEY_API_URL", demo_server.base_url)
    monkeypatch.setenv("ODYSSEY_API_KEY", demo_server.api_key)
    assert main(["list", "--json"]) == 0
    report = export(output=str(tmp_path / "env"), limit=1, workers=1)
    assert report.exported == 1


def test_demo_command(tmp_path: Path, capsys) -> None:
    out = tmp_path / "demo"
    assert main(["demo", str(out), "--recordings", "2", "--workers", "1", "-q"]) == 0
    text = capsys.readouterr().out
    assert "open_dataset" in text
    ds = open_dataset(str(out))
    # The demo exports both sources (--source all): 2 streams plus the jobs' outputs.
    sources = ds.recordings.collect()["source"].to_list()
    assert sources.count("stream") == 2
    assert sources.count("simulation") > 0
