"""Every fault and every bad input at once, through the CLI: nothing good is lost.

Two demo servers serve the same good recordings. The clean one serves nothing else and
misbehaves never; the faulty one also serves bad recordings and injects every transient
fault into the good ones. The export of the faulty one must end with exit code 3, the
good recordings' tables equal to the clean export's, every bad recording listed with its
reason, and no secret anywhere.
"""

from __future__ import annotations

import dataclasses
import email.utils
import functools
import json
import logging
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from bad_media import BASE, bad_videos, lines
from conftest import FAST_RETRY, export_config
from leakcheck import dataset_texts, leaks, log_text

from odyssey_data import cli
from odyssey_data.cli import flags
from odyssey_data.demo import DemoCatalog, DemoRecording, DemoServer, make_demo_catalog
from odyssey_data.pipeline import ExportConfig, export

KEY = "ody_all_at_once_5ecret_3f9a2c71d4e8b605"
SORT = {
    "frames": ["stream_id", "frame_index"],
    "recordings": ["stream_id"],
    "events": ["stream_id", "event_index"],
    "segments": ["stream_id", "prompt_index"],
    "qc": ["stream_id"],
}


def good_recordings() -> list[DemoRecording]:
    """Recordings that must come out whole, whatever the server does."""
    plain = make_demo_catalog(8, seed=99, seconds=1.0, active=0).snapshot()
    events = BASE.events()
    with_bad_lines = {
        "events-not-json-lines": lines(events[0]) + b"<html>\n" + lines(*events[1:]),
        "events-cut-last-line": lines(*events)[:-9],
        "events-invalid-utf8": lines(*events) + b'{"type": "x", "prompt": "\xff"}\n',
        "events-wrong-type": lines(*events, {"type": "interact", "timestamp_ms": "late"}),
        "events-empty": b"",
        "events-without-prompts": lines({"type": "stream_ended", "timestamp_ms": 900}),
    }
    hostile = [dataclasses.replace(plain[0], stream_id=sid) for sid in ("../../etc/x", "/abs")]
    logs = [
        dataclasses.replace(BASE, stream_id=name, events_override=log)
        for name, log in with_bad_lines.items()
    ]
    return [*plain, *hostile, *logs]


def blob(stream_id: str, name: str = "video.mp4") -> str:
    return f"/blobs/{quote(stream_id, safe='')}/{name}"


def read_tables(output: Path) -> dict[str, pa.Table]:
    """Each table of the dataset (the shards the manifest lists), sorted, minus exported_at."""
    manifest = json.loads((output / "manifest.json").read_text())
    listed = sorted(entry["path"] for entry in manifest["files"])
    tables = {}
    for table, keys in SORT.items():
        merged = pa.concat_tables(
            pq.read_table(output / path) for path in listed if path.startswith(f"{table}/")
        )
        if "exported_at" in merged.column_names:
            merged = merged.drop_columns(["exported_at"])
        tables[table] = merged.sort_by([(key, "ascending") for key in keys])
    return tables


def test_everything_at_once(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    good = good_recordings()
    g = [rec.stream_id for rec in good]

    # The reference: a clean server, a clean export.
    clean_out = tmp_path / "clean"
    with DemoServer(DemoCatalog(list(good)), api_key=KEY) as clean:
        reference = export(export_config(clean, clean_out))
    assert (reference.exported, reference.failed) == (len(good), 0)

    # The faulty server: bad recordings too.
    listed_then_gone = dataclasses.replace(BASE, stream_id="listed-then-gone")
    api_bad_json = dataclasses.replace(BASE, stream_id="api-invalid-json")
    api_missing = dataclasses.replace(BASE, stream_id="api-missing-fields")
    blob_5xx = dataclasses.replace(BASE, stream_id="blob-5xx-forever")
    blob_403 = dataclasses.replace(BASE, stream_id="blob-403-denied")
    blob_404 = dataclasses.replace(BASE, stream_id="blob-404-gone")
    videos = bad_videos()
    bad_media = [
        dataclasses.replace(BASE, stream_id=name, video_override=data)
        for name, (data, _) in videos.items()
    ]
    bad = [listed_then_gone, api_bad_json, api_missing, blob_5xx, blob_403, blob_404, *bad_media]
    expected_reason = {
        "listed-then-gone": "the API no longer knows this recording (HTTP 404)",
        "api-invalid-json": "the answer is not valid JSON",
        "api-missing-fields": "the field 'stream_id' is missing",
        "blob-5xx-forever": "download failed after 4 attempts (HTTP 500",
        "blob-403-denied": "HTTP 403 from",
        "blob-404-gone": "HTTP 404 from",
        **{name: reason for name, (_, reason) in videos.items()},
    }

    faulty = DemoServer(DemoCatalog([*good, *bad]), api_key=KEY, page_cap=4)
    faulty.start()
    signed: list[str] = []
    tokens: list[str] = []
    presign, issue = faulty.presign, faulty._issue_token
    stale: list[str] = []

    def recording_presign(stream_id: str, name: str) -> str:
        if stream_id == g[6] and name == "video.mp4" and not stale:
            stale.append(stream_id)  # this URL comes out already expired
            clock = faulty.clock
            faulty.clock = lambda: time.time() - 7200
            try:
                url = presign(stream_id, name)
            finally:
                faulty.clock = clock
        else:
            url = presign(stream_id, name)
        signed.append(url.partition("?")[2])
        return url

    monkeypatch.setattr(faulty, "presign", recording_presign)
    monkeypatch.setattr(faulty, "_issue_token", lambda: tokens.append(issue()) or tokens[-1])

    # Transient faults, on the API and on good recordings' blobs.
    past = email.utils.formatdate(time.time() - 60, usegmt=True)
    faulty.inject("/auth/token", 502)
    faulty.inject("/stream-recordings", 429, headers={"Retry-After": "0"})
    faulty.inject("/stream-recordings", 503)
    faulty.inject(f"/recordings/{g[0]}", 429, headers={"Retry-After": past})
    for status in (502, 503, 504):
        faulty.inject(blob(g[1]), status)
    faulty.inject_truncation(blob(g[2]), 1000)
    faulty.inject_truncation(blob(g[3]), 1000, chunked=True)
    faulty.inject_truncation(blob(g[4]), 1000, stall_s=3.0)
    faulty.inject_truncation(blob(g[5], "events.jsonl"), 10)
    faulty.inject(f"/recordings/{g[7]}", 401)
    faulty.inject_truncation(blob("../../etc/x"), 700, chunked=True)
    # Permanent faults, on the bad ones.
    faulty.inject("/recordings/listed-then-gone", 404, times=99)
    faulty.inject("/recordings/api-invalid-json", 200, body=b"<html>Bad Gateway</html>")
    faulty.inject("/recordings/api-missing-fields", 200, body=b'{"video_url": null}')
    faulty.inject(blob("blob-5xx-forever"), 500, times=99)
    faulty.inject(blob("blob-403-denied"), 403, times=99, body=b"<Error>AccessDenied</Error>")
    faulty.inject(blob("blob-404-gone", "events.jsonl"), 404, times=99)

    fast = functools.partial(ExportConfig, retry=FAST_RETRY, timeout_s=0.5)
    monkeypatch.setattr(flags, "ExportConfig", fast)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    caplog.set_level(logging.DEBUG)
    output = tmp_path / "faulty"
    started = time.monotonic()
    try:
        code = cli.main(
            [
                *("export", str(output), "--workers", "1"),
                *("--api-url", faulty.base_url, "--api-key", KEY),
            ]
        )
    finally:
        faulty.stop()
    elapsed = time.monotonic() - started
    captured = capsys.readouterr()

    # Exit code 3: finished, some recordings failed.
    assert code == 3, captured.err
    assert elapsed < 20
    manifest = json.loads((output / "manifest.json").read_text())
    status = manifest["recordings"]

    # Every good recording exported, with exactly the clean export's tables.
    assert {sid for sid in g if status[sid]["status"] == "exported"} == set(g)
    faulty_tables, clean_tables = read_tables(output), read_tables(clean_out)
    for table in SORT:
        assert faulty_tables[table].equals(clean_tables[table]), table

    # Every bad one listed, with its reason, in the manifest and the printed summary.
    for rec in bad:
        entry = status[rec.stream_id]
        assert entry["status"] == "failed"
        assert entry["reason"].startswith(f"recording {rec.stream_id!r}")
        assert expected_reason[rec.stream_id] in entry["reason"]
        assert f"failed {rec.stream_id}: {entry['reason']}" in captured.out
    assert len(status) == len(good) + len(bad)

    # Retries counted per recording and in the summary.
    assert status[g[1]]["retries"] == 3
    assert status[g[6]]["url_refreshes"] == 1
    assert status["blob-5xx-forever"]["attempts"] == 4
    last_run = manifest["stats"]["last_run"]
    assert last_run["exported"] == len(good)
    assert last_run["failed"] == len(bad)
    assert last_run["url_refreshes"] == 1
    # listing 3, g0 1, g1 3, the five cut bodies 5, the expired URL 1, the 500s 3.
    assert last_run["retries"] == 3 + 1 + 3 + 5 + 1 + 3
    assert f"{last_run['retries']} / 1" in captured.out
    assert last_run["bad_event_lines"] == 4

    # No secret in any file, table cell, log record or printed line; no temp file left.
    secrets = [KEY, *signed, *tokens, "X-Amz-", "ODYSSEYDEMOAKIA"]
    texts: list[tuple[str, Any]] = [
        ("stdout", captured.out),
        ("stderr", captured.err),
        ("logs", log_text(caplog.records)),
        *dataset_texts(output),
    ]
    assert len(signed) > 2 * len(good)
    assert leaks(secrets, texts) == []
    assert list(scratch.iterdir()) == []
