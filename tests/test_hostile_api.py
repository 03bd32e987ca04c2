"""A hostile API, over real sockets: one bad recording stays one failed recording, every
listing and download ends, nothing silently corrupts the dataset, and server text never
drives the terminal.

:func:`api` serves a raw API on 127.0.0.1 (``raw_http``) whose every answer a test
writes: list entries, per-recording answers and blobs, simulation jobs. The media are
real (one short demo recording, made with PyAV).
"""

from __future__ import annotations

import dataclasses
import io
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import numpy as np
import pytest
from bad_media import BASE, die_on_three, two_video_streams
from conftest import FAST_RETRY
from raw_http import KEY, SIGNATURE, Conn, RawHTTPServer, Seen, serve_range

from odyssey_data import cli, work
from odyssey_data.api import OdysseyClient, RetryPolicy, paging
from odyssey_data.api import client as client_module
from odyssey_data.dataset import open_dataset
from odyssey_data.demo import DemoCatalog, DemoServer
from odyssey_data.errors import ApiResponseError, ConfigError, OdysseyDataError
from odyssey_data.executors import LocalExecutor
from odyssey_data.pipeline import ExportConfig, export

VIDEO = BASE.video_bytes()
assert VIDEO is not None
Answer = Callable[[Seen, Conn], None]


def entry(sid: str, **fields: Any) -> dict[str, Any]:
    """A list entry of a finished recording, with ``fields`` replaced."""
    base = {
        "stream_id": sid,
        "width": BASE.width,
        "height": BASE.height,
        "started_at": "2026-01-01T00:00:00Z",
        "ended_at": "2026-01-01T00:00:01Z",
        "duration_seconds": 1.0,
    }
    return {**base, **fields}


@dataclasses.dataclass
class FakeApi:
    """What the raw API answers (tests change it before exporting)."""

    entries: list[Any] = dataclasses.field(default_factory=list)
    #: stream id -> the JSON text of its GET /recordings answer (default: a good one).
    recordings: dict[str, bytes] = dataclasses.field(default_factory=dict)
    #: blob path -> responder (default: the demo video, with ranges).
    blobs: dict[str, Answer] = dataclasses.field(default_factory=dict)
    jobs: list[Any] = dataclasses.field(default_factory=list)
    details: dict[str, Any] = dataclasses.field(default_factory=dict)
    #: path -> responder overriding everything else.
    raw: dict[str, Answer] = dataclasses.field(default_factory=dict)
    base_url: str = ""

    def video_url(self, sid: str, name: str = "video.mp4") -> str:
        return f"{self.base_url}/blob/{sid}/{name}?X-Amz-Signature={SIGNATURE}"

    def respond(self, seen: Seen, conn: Conn) -> None:
        path = unquote(seen.path)
        query = {
            k: int(v[-1])
            for k, v in parse_qs(urlsplit(seen.target).query).items()
            if k in ("limit", "offset")
        }
        if path in self.raw:
            self.raw[path](seen, conn)
        elif path == "/auth/token":
            conn.json(200, {"access_token": "raw-token", "expires_in": 3600})
        elif path == "/stream-recordings":
            start, limit = query.get("offset", 0), query.get("limit", 100)
            page = self.entries[start : start + limit]
            conn.json(200, {"recordings": page, "total": len(self.entries), "offset": start})
        elif path.startswith("/recordings/"):
            sid = path.removeprefix("/recordings/")
            body = self.recordings.get(sid)
            if body is None:
                body = json.dumps({"stream_id": sid, "video_url": self.video_url(sid)}).encode()
            conn.send(200, body, {"Content-Type": "application/json"})
        elif path == "/simulation-jobs":
            conn.json(200, {"jobs": self.jobs, "total": len(self.jobs)})
        elif path.startswith("/simulation-jobs/"):
            conn.json(200, self.details[path.removeprefix("/simulation-jobs/")])
        elif path.startswith("/blob/"):
            self.blobs.get(path, lambda s, c: serve_range(s, c, VIDEO))(seen, conn)
        else:
            conn.json(404, {"detail": "Not Found"})


@contextmanager
def api(fake: FakeApi) -> Iterator[RawHTTPServer]:
    with RawHTTPServer(fake.respond) as server:
        fake.base_url = server.base_url
        yield server


def config(server: RawHTTPServer, output: Path | str, **options: Any) -> ExportConfig:
    base: dict[str, Any] = {
        "output": str(output),
        "api_url": server.base_url,
        "api_key": KEY,
        "workers": 1,
        "retry": FAST_RETRY,
    }
    return ExportConfig(**{**base, **options})


def reasons(output: Path) -> dict[str, tuple[str, str | None]]:
    manifest = json.loads((output / "manifest.json").read_text())
    return {sid: (st["status"], st["reason"]) for sid, st in manifest["recordings"].items()}


def one_line_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    code = cli.main(argv)
    err = capsys.readouterr().err
    assert code == cli.EXIT_FATAL, err
    assert err.startswith("error: "), err
    assert err.count("\n") == 1, err
    assert "Traceback" not in err
    return err


# --- rule 3: one bad recording stays one failed recording --------------------------------


#: List entries that each must fail alone, and the field their reason names.
BAD_ENTRIES = {
    "wide": ({"width": 2**40}, "'width' is 1099511627776, outside 1..2147483647"),
    "huge-height": ({"height": 10**400}, "'height' is a number outside"),
    "zero-width": ({"width": 0}, "'width' is 0"),
    "bool-width": ({"width": True}, "'width' has the wrong type (bool)"),
    "nan-duration": ({"duration_seconds": float("nan")}, "'duration_seconds' is not a finite"),
    "inf-duration": ({"duration_seconds": float("inf")}, "'duration_seconds' is not a finite"),
    "negative-duration": ({"duration_seconds": -1}, "'duration_seconds' is not a finite"),
    "bigint-duration": ({"duration_seconds": 10**400}, "'duration_seconds' is not a finite"),
    "bad-time": ({"started_at": "yesterday"}, "'started_at' is not an ISO 8601 time"),
    "time-overflow": ({"ended_at": "9999-12-31T23:59:59-23:59"}, "'ended_at' is not an ISO"),
    "numeric-time": ({"ended_at": 5}, "'ended_at' has the wrong type (int)"),
    "nested-width": ({"width": [[[[1]]]]}, "'width' has the wrong type (list)"),
}


def test_each_bad_list_entry_fails_alone_and_the_rest_exports(tmp_path: Path) -> None:
    fake = FakeApi(
        entries=[
            entry("good-1"),
            *(entry(sid, **fields) for sid, (fields, _) in BAD_ENTRIES.items()),
            entry("good-2"),
        ]
    )
    with api(fake) as server:
        report = export(config(server, tmp_path / "out"))
    assert (report.exported, report.failed) == (2, len(BAD_ENTRIES))
    got = reasons(tmp_path / "out")
    for sid, (_, expected) in BAD_ENTRIES.items():
        status, reason = got[sid]
        assert status == "failed"
        assert expected in str(reason), (sid, reason)
    assert open_dataset(str(tmp_path / "out")).verify() == []
    # Nothing was fetched for the failed ones.
    assert server.count("/recordings/") == 2


def _recording(sid: str, **fields: Any) -> bytes:
    return json.dumps({"stream_id": sid, **fields}).encode()


def test_each_bad_recording_answer_fails_alone(tmp_path: Path) -> None:
    fake = FakeApi()
    bad = {
        "nested": (b"[" * 200_000 + b"]" * 200_000, "nested too deeply"),
        "nested-object": (
            b'{"stream_id": "nested-object", "x": ' + b'{"a":' * 100_000 + b"1" + b"}" * 100_001,
            "nested too deeply",
        ),
        "bad-port": (
            _recording("bad-port", video_url="http://127.0.0.1:99999/v.mp4"),
            "'video_url' is not an http(s) URL",
        ),
        "no-host": (_recording("no-host", video_url="http:///v.mp4"), "'video_url' is not"),
        "ftp": (_recording("ftp", video_url="ftp://127.0.0.1/v.mp4"), "'video_url' is not"),
        "file": (_recording("file", video_url="file:///etc/passwd"), "'video_url' is not"),
        "newline": (
            _recording("newline", video_url="http://127.0.0.1/v\r\nX-Evil: 1"),
            "'video_url' is not",
        ),
        "frames-overflow": (
            _recording("frames-overflow", video_url="http://127.0.0.1/v", frame_count=2**70),
            "'frame_count' is 1180591620717411303424, outside 0..2147483647",
        ),
        "nan-duration": (
            b'{"stream_id": "nan-duration", "duration_seconds": NaN}',
            "'duration_seconds' is not a finite",
        ),
        "not-utf8": (b'{"stream_id": "\xff\xfe"}', "not valid JSON"),
        "other": (_recording("someone-else"), "the API answered for another recording"),
        "events-url-object": (
            _recording("events-url-object", events_url={"href": "x"}),
            "'events_url' has the wrong type",
        ),
    }
    fake.entries = [entry("good-1"), *(entry(sid) for sid in bad), entry("good-2")]
    fake.recordings = {sid: body for sid, (body, _) in bad.items()}
    with api(fake) as server:
        report = export(config(server, tmp_path / "out"))
    assert (report.exported, report.failed) == (2, len(bad))
    got = reasons(tmp_path / "out")
    for sid, (_, expected) in bad.items():
        assert got[sid][0] == "failed"
        assert expected in str(got[sid][1]), (sid, got[sid])
    # The bad URLs were never requested.
    assert not [s for s in server.requests if s.path.startswith("/v")]


def test_an_unforeseen_error_in_one_recording_fails_only_that_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    probe = work.probe_frames

    def probe_or_break(video: Any, *, what: str, mode: Any) -> Any:
        if "boom" in what:
            raise ZeroDivisionError("a case no check foresaw")
        return probe(video, what=what, mode=mode)

    monkeypatch.setattr(work, "probe_frames", probe_or_break)
    fake = FakeApi(entries=[entry("good-1"), entry("boom"), entry("good-2")])
    for workers in (1, 2):  # in this thread, and in the download-ahead threads
        out = tmp_path / f"out-{workers}"
        with api(fake) as server:
            report = export(config(server, out, workers=workers))
        assert (report.exported, report.failed) == (2, 1)
        status, reason = reasons(out)["boom"]
        assert status == "failed"
        assert "unexpected ZeroDivisionError" in str(reason)
        assert "a case no check foresaw" in str(reason)


def _job(job_id: str, **fields: Any) -> dict[str, Any]:
    return {"job_id": job_id, "status": "completed", **fields}


def test_simulations_whose_unused_fields_have_other_types(tmp_path: Path) -> None:
    """``priority: str`` (as the official client types it), and every other unused field
    of an unexpected type: kept leniently, the outputs export."""
    odd = {
        "priority": "high",
        "created_at": 1_700_000_000,
        "completed_at": "soon",
        "error_message": {"code": 3},
        "retry_count": "2",
        "estimated_wait_minutes": "a while",
        "assigned_region": 7,
        "dispatched_at": ["yesterday"],
    }
    fake = FakeApi(jobs=[_job("j1", **odd), _job("j2", priority=2), _job("j3", priority=None)])
    with api(fake) as server:
        for job_id in ("j1", "j2", "j3"):
            sid = f"{job_id}-out"
            stream = {"stream_id": sid, "video_url": fake.video_url(sid), "script_index": 0}
            fake.details[job_id] = {**_job(job_id, **odd), "streams": [stream]}
        # One job's detail with a bad output stream: that job fails, the others export.
        fake.jobs.append(_job("j4"))
        fake.details["j4"] = {**_job("j4"), "streams": [{"stream_id": 5}]}
        report = export(config(server, tmp_path / "out", source="simulations"))
        with OdysseyClient(server.base_url, KEY, retry=FAST_RETRY) as client:
            jobs = list(client.list_simulation_jobs())
    assert (report.exported, report.failed) == (3, 1)
    assert reasons(tmp_path / "out")["job:j4"][0] == "failed"
    assert [j.priority for j in jobs] == ["high", "2", None, None]
    assert jobs[0].error_message == '{"code": 3}'
    assert jobs[0].created_at is None


LISTING_FAULTS = {
    "total-text": json.dumps({"recordings": [], "total": "many"}).encode(),
    "total-negative": json.dumps({"recordings": [], "total": -1}).encode(),
    "recordings-not-a-list": json.dumps({"recordings": {"a": 1}, "total": 1}).encode(),
    "not-an-object": b"[1, 2, 3]",
    "nested": b"[" * 100_000 + b"]" * 100_000,
    "entry-without-id": json.dumps({"recordings": [{"width": 5}], "total": 1}).encode(),
    "entry-id-too-long": json.dumps({"recordings": [entry("x" * 5000)], "total": 1}).encode(),
    "binary": bytes(range(256)),
}


@pytest.mark.parametrize("name", sorted(LISTING_FAULTS))
def test_listing_problems_are_one_clear_line(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    body = LISTING_FAULTS[name]
    fake = FakeApi(raw={"/stream-recordings": lambda s, c: c.send(200, body)})
    with api(fake) as server:
        err = one_line_error(
            ["export", str(tmp_path / "out"), "-q", "--api-url", server.base_url, "--api-key", KEY],
            capsys,
        )
    assert "page at offset=0" in err


TOKEN_FAULTS = {
    "header-injection": {"access_token": "abc\r\nX-Evil: 1", "expires_in": 60},
    "with-space": {"access_token": "abc def"},
    "not-text": {"access_token": 12345},
    "huge": {"access_token": "a" * 20_000},
    "empty": {"access_token": ""},
}


@pytest.mark.parametrize("name", sorted(TOKEN_FAULTS))
def test_token_problems_are_one_clear_line(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    body = json.dumps(TOKEN_FAULTS[name]).encode()
    fake = FakeApi(raw={"/auth/token": lambda s, c: c.send(200, body)})
    with api(fake) as server:
        err = one_line_error(["list", "--api-url", server.base_url, "--api-key", KEY], capsys)
        assert server.count("/stream-recordings") == 0
    assert "POST /auth/token" in err
    assert "X-Evil" not in err


@pytest.mark.parametrize("expires_in", [float("nan"), -5, 0, 10**30, "soon", True])
def test_odd_token_lifetimes_do_not_ask_for_a_token_per_call(expires_in: Any) -> None:
    body = json.dumps({"access_token": "tok", "expires_in": expires_in}).encode()
    fake = FakeApi(
        entries=[entry(f"r{i}") for i in range(6)],
        raw={"/auth/token": lambda s, c: c.send(200, body)},
    )
    with api(fake) as server, OdysseyClient(server.base_url, KEY, page_size=2) as client:
        assert len(list(client.list_recordings())) == 6
        assert server.count("/auth/token") == 1


# --- rule 4: everything terminates, in bounded memory ------------------------------------


def test_a_server_that_ignores_offset_ends_the_listing() -> None:
    def same_page(seen: Seen, conn: Conn) -> None:
        conn.json(200, {"recordings": [entry("a"), entry("b")], "total": 1000})

    fake = FakeApi(raw={"/stream-recordings": same_page})
    with api(fake) as server, OdysseyClient(server.base_url, KEY, page_size=2) as client:
        with pytest.raises(ApiResponseError, match="brings nothing new"):
            list(client.list_recordings())
        assert server.count("/stream-recordings") == 2


def test_a_server_that_serves_another_offset_ends_the_listing() -> None:
    def always_first(seen: Seen, conn: Conn) -> None:
        n = len([s for s in server.requests if s.path == "/stream-recordings"])
        page = [entry(f"r{n}-{i}") for i in range(2)]  # new ids every time
        conn.json(200, {"recordings": page, "total": 1000, "offset": 0})

    fake = FakeApi(raw={"/stream-recordings": always_first})
    with api(fake) as server, OdysseyClient(server.base_url, KEY, page_size=2) as client:
        with pytest.raises(ApiResponseError, match="says it is offset=0"):
            list(client.list_recordings())
        assert server.count("/stream-recordings") == 2


def test_a_listing_that_never_ends_is_cut_at_the_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(paging, "MAX_LISTED", 50)

    def endless(seen: Seen, conn: Conn) -> None:
        offset = int(parse_qs(urlsplit(seen.target).query)["offset"][0])
        page = [entry(f"r{offset + i}") for i in range(10)]
        conn.json(200, {"recordings": page, "total": offset + 1000})

    fake = FakeApi(raw={"/stream-recordings": endless})
    with api(fake) as server, OdysseyClient(server.base_url, KEY, page_size=10) as client:
        with pytest.raises(ApiResponseError, match="more than 50 entries; pass --limit"):
            list(client.list_recordings())
        assert server.count("/stream-recordings") == 6


def test_api_answers_have_a_size_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client_module, "MAX_ANSWER_BYTES", 1 << 20)
    sent = {"bytes": 0}

    def claims_a_terabyte(seen: Seen, conn: Conn) -> None:
        conn.head(200, {"Content-Length": str(1 << 40), "Content-Type": "application/json"})
        conn.raw(b"[" * 1000)

    def endless_chunks(seen: Seen, conn: Conn) -> None:
        conn.head(200, {"Transfer-Encoding": "chunked", "Content-Type": "application/json"})
        chunk = b"[" * 65536
        while sent["bytes"] < 64 << 20:  # stops when the client hangs up (or at 64 MiB)
            try:
                conn.sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            except OSError:
                return
            sent["bytes"] += len(chunk)

    fake = FakeApi(raw={"/stream-recordings": claims_a_terabyte, "/recordings/big": endless_chunks})
    with api(fake) as server, OdysseyClient(server.base_url, KEY) as client:
        with pytest.raises(ApiResponseError, match="announces 1099511627776 bytes"):
            client.list_page(5, 0)
        with pytest.raises(ApiResponseError, match="larger than the 1048576 bytes"):
            client.get_recording("big")
    assert sent["bytes"] < 16 << 20  # the client stopped reading soon after the cap


def test_a_trickling_download_fails_that_recording_only(tmp_path: Path) -> None:
    stop = threading.Event()

    def trickle(seen: Seen, conn: Conn) -> None:
        conn.head(200, {"Content-Length": str(len(VIDEO)), "Accept-Ranges": "bytes"})
        for i in range(0, len(VIDEO), 64):  # 64 bytes every 0.05 s: ~1.3 KB/s
            if stop.wait(0.05):
                return
            conn.raw(VIDEO[i : i + 64])

    fake = FakeApi(entries=[entry("good"), entry("slow")], blobs={"/blob/slow/video.mp4": trickle})
    retry = RetryPolicy(attempts=2, timeout_s=20, wait_initial_s=0.01, wait_max_s=0.05)
    started = time.monotonic()
    with api(fake) as server:
        report = export(
            config(server, tmp_path / "out", timeout_s=0.5, min_download_rate=20_000, retry=retry)
        )
        stop.set()
    assert (report.exported, report.failed) == (1, 1)
    reason = str(reasons(tmp_path / "out")["slow"][1])
    assert "too slow" in reason
    assert "below the minimum of 20000 bytes/s" in reason
    assert time.monotonic() - started < 15  # not the ~20 s the whole trickle would take


BAD_OPTIONS = [
    {"fps": float("inf")},
    {"fps": float("nan")},
    {"fps": 0.0},
    {"fps": 1e9},
    {"event_offset_ms": float("nan")},
    {"event_offset_ms": float("inf")},
    {"event_offset_ms": 1e15},
    {"timeout_s": float("inf")},
    {"timeout_s": 0.0},
    {"min_download_rate": 0.0},
    {"min_download_rate": float("nan")},
    {"max_download_bytes": 0},
    {"max_download_bytes": 2**70},
    {"shard_rows": 0},
    {"shard_rows": 2**40},
    {"workers": 0},
    {"workers": 10**6},
    {"lock_timeout_s": float("inf")},
    {"min_duration_s": float("nan")},
    {"frames": "jpeg", "resize": (100_000, None)},
    {"frames": "jpeg", "resize": (64, 1)},
]


@pytest.mark.parametrize("options", BAD_OPTIONS, ids=[repr(o) for o in BAD_OPTIONS])
def test_options_that_are_not_finite_or_bounded_are_refused_up_front(
    options: dict[str, Any],
) -> None:
    pytest.importorskip("simplejpeg")
    with pytest.raises(ConfigError, match="must be"):
        ExportConfig(output="unused", **options)


@pytest.mark.parametrize(
    "retry",
    [{"attempts": 10**9}, {"attempts": 0}, {"timeout_s": float("inf")}, {"wait_max_s": -1}],
)
def test_retry_policies_that_never_end_are_refused(retry: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match="retry"):
        RetryPolicy(**retry)


@pytest.mark.parametrize(
    "flags",
    [["--fps", "inf"], ["--fps", "nan"], ["--event-offset-ms", "1e300"], ["--workers", "0"]],
)
def test_the_cli_refuses_unbounded_options_in_one_line(
    flags: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli.main(["export", str(tmp_path / "o"), "--api-key", KEY, *flags])
    err = capsys.readouterr().err
    assert code == cli.EXIT_USAGE
    assert err.count("\n") == 1, err
    assert not (tmp_path / "o").exists()


# --- rule 5: no silent corruption -------------------------------------------------------


def _changing_object(etag: bool) -> tuple[Answer, list[Seen], bytes]:
    """A blob that breaks after half of its first version, then is replaced: a server
    that ignores If-Range answers the resume from the new version."""
    old, new = VIDEO, VIDEO[::-1] + b"longer"
    seen_list: list[Seen] = []

    def respond(seen: Seen, conn: Conn) -> None:
        seen_list.append(seen)
        first = len(seen_list) == 1
        data = old if first else new
        tag = {"ETag": f'"v{1 if first else 2}"'} if etag else {}
        spec = seen.headers.get("range")
        if first:
            conn.head(200, {"Content-Length": str(len(data)), "Accept-Ranges": "bytes", **tag})
            conn.raw(data[: len(data) // 2])  # and the connection drops
            return
        if spec:  # resumed from the new version, If-Range ignored
            start = int(spec.removeprefix("bytes=").rstrip("-"))
            body = data[start:]
            conn.send(
                206,
                body,
                {"Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}", **tag},
            )
            return
        conn.send(200, data, {"Accept-Ranges": "bytes", **tag})

    return respond, seen_list, new


@pytest.mark.parametrize("etag", [True, False], ids=["etag", "size-only"])
def test_a_resume_of_a_changed_object_starts_over(etag: bool) -> None:
    respond, seen, new = _changing_object(etag)
    fake = FakeApi(blobs={"/blob/r/video.mp4": respond})
    with api(fake), OdysseyClient(fake.base_url, KEY, retry=FAST_RETRY) as client:
        sink = io.BytesIO()
        stats = client.download(fake.video_url("r"), sink, what="recording 'r' video")
    assert sink.getvalue() == new  # never half of one version and half of the other
    assert stats.attempts == 3
    resume = seen[1].headers
    assert resume["range"] == f"bytes={len(VIDEO) // 2}-"
    if etag:
        assert resume["if-range"] == '"v1"'
    assert "range" not in seen[2].headers


def _demo(*recordings: Any) -> DemoServer:
    return DemoServer(DemoCatalog(list(recordings)), page_cap=3)


def test_ids_never_share_a_file_name_or_a_manifest_key(tmp_path: Path) -> None:
    ids = ["x", "x.preview", "x.thumbnail", "X", "Abc", "abc", "con", "job:j1", "stream:job:j1"]
    recordings = [dataclasses.replace(BASE, stream_id=sid) for sid in ids]
    out = tmp_path / "out"
    with _demo(*recordings) as server:
        report = export(
            ExportConfig(
                output=str(out),
                api_url=server.base_url,
                api_key=server.api_key,
                workers=1,
                retry=FAST_RETRY,
                with_thumbnails=True,
            )
        )
    assert (report.exported, report.failed) == (7, 2)
    ds = open_dataset(str(out))
    assert ds.verify() == []
    recs = ds.recordings.collect()
    paths = recs["video_path"].to_list() + recs["preview_path"].drop_nulls().to_list()
    assert len(paths) == len(set(p.lower() for p in paths))  # distinct, whatever the case
    statuses = {k: v.status for k, v in ds.manifest.recordings.items()}
    assert statuses["stream:job:j1"] == "failed"
    assert statuses["stream:stream:job:j1"] == "failed"
    assert "job:j1" not in statuses
    # Every file holds its own recording's bytes.
    by_id = {r.stream_id: r for r in recordings}
    for row in recs.iter_rows(named=True):
        assert (out / row["video_path"]).read_bytes() == by_id[row["stream_id"]].video_bytes()


def test_one_id_from_two_sources_is_exported_once(tmp_path: Path) -> None:
    fake = FakeApi(entries=[entry("dup"), entry("solo")], jobs=[_job("j1")])
    with api(fake) as server:
        stream = {"stream_id": "dup", "video_url": fake.video_url("dup", "other.mp4")}
        fake.details["j1"] = {**_job("j1"), "streams": [stream]}
        fake.blobs["/blob/dup/other.mp4"] = lambda s, c: c.send(200, b"not this one")
        report = export(config(server, tmp_path / "out", source="all"))
    assert report.exported == 2
    assert report.failed == 1
    assert any("listed twice" in reason for _, _, reason in report.problems)
    assert (tmp_path / "out/videos/dup.mp4").read_bytes() == VIDEO
    assert server.count("/blob/dup/other.mp4") == 0


def test_the_default_video_track_is_the_one_exported(tmp_path: Path) -> None:
    """Two video streams, the second (BASE's 30 frames) marked default: exported, and
    read back, from that one; the first stream (5 frames) would fail the frame count."""
    video = two_video_streams("mp4", "second", counts=(5, BASE.frame_count))
    rec = dataclasses.replace(BASE, stream_id="two-tracks", video_override=video)
    out = tmp_path / "out"
    with _demo(rec) as server:
        report = export(
            ExportConfig(
                output=str(out), api_url=server.base_url, api_key=server.api_key, workers=1
            )
        )
    assert report.exported == 1, report.problems
    ds = open_dataset(str(out))
    frames = ds.frames.collect()
    assert frames.height == BASE.frame_count
    (image,) = ds.load_frames(frames.head(1))
    assert image[..., 2].mean() > 150 > image[..., 0].mean()  # blue: the second track


def test_media_that_are_not_what_they_claim_are_not_stored(tmp_path: Path) -> None:
    fake = FakeApi(entries=[entry("r1")])
    html = b"<html><body>403 Forbidden</body></html>"
    with api(fake) as server:
        fake.recordings["r1"] = _recording(
            "r1",
            video_url=fake.video_url("r1"),
            thumbnail_url=fake.video_url("r1", "thumbnail.jpg"),
            preview_url=fake.video_url("r1", "preview.mp4"),
        )
        fake.blobs["/blob/r1/thumbnail.jpg"] = lambda s, c: c.send(200, html)
        fake.blobs["/blob/r1/preview.mp4"] = lambda s, c: c.send(200, b"\xff\xd8\xff" + html)
        report = export(config(server, tmp_path / "out", with_thumbnails=True))
    assert report.exported == 1
    rec = open_dataset(str(tmp_path / "out")).recordings.collect().row(0, named=True)
    assert rec["thumbnail_path"] is None
    assert rec["preview_path"] is None
    assert sorted(p.name for p in (tmp_path / "out/videos").iterdir()) == ["r1.mp4"]
    manifest = json.loads((tmp_path / "out/manifest.json").read_text())
    warnings = " ".join(manifest["recordings"]["r1"]["warnings"])
    assert "thumbnail: not a JPEG file; not stored" in warnings
    assert "preview" in warnings


def test_list_gives_up_on_a_stalled_answer_after_its_timeout(
    capsys: pytest.CaptureFixture[str],
) -> None:
    asked: list[float] = []

    def stall_once(seen: Seen, conn: Conn) -> None:
        asked.append(time.monotonic())
        if len(asked) == 1:
            time.sleep(3)  # past --timeout 0.5, well within the 30 s default
        conn.json(200, {"recordings": [], "total": 0, "offset": 0})

    with api(FakeApi(raw={"/stream-recordings": stall_once})) as server:
        argv = ["list", "--json", "--timeout", "0.5", "--api-url", server.base_url]
        code = cli.main([*argv, "--api-key", KEY])
    captured = capsys.readouterr()
    assert code == cli.EXIT_OK, captured.err
    assert json.loads(captured.out) == []
    assert len(asked) == 2  # the stalled request was given up after 0.5 s and asked again
    assert asked[1] - asked[0] < 2.5


def test_list_checks_its_timeout_as_export_does(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("list", "export"):
        argv = [command, *(["out"] if command == "export" else []), "--timeout", "0"]
        assert cli.main(argv) == cli.EXIT_USAGE
        assert "--timeout must be positive" in capsys.readouterr().err


# --- rule 7: the terminal is not the server's --------------------------------------------

HOSTILE_IDS = [
    "clear\x1b[2J\x1b[Hscreen",
    "title\x1b]0;pwned\x07",
    "over\rwritten",
    "bidi\u202egnp.exe",
    "[bold red]markup[/]",
    "bell\x07\x08back",
]


def test_ids_and_reasons_from_the_api_are_printed_neutralised(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Listed as active (no end time): skipped, so each id is printed with its reason.
    fake = FakeApi(entries=[entry(sid, ended_at=None) for sid in HOSTILE_IDS])
    with api(fake) as server:
        common = ["--api-url", server.base_url, "--api-key", KEY]
        assert cli.main(["list", *common]) == cli.EXIT_OK
        listed = capsys.readouterr().out
        code = cli.main(["export", str(tmp_path / "out"), "-q", *common])
        exported = capsys.readouterr()
        assert cli.main(["list", "--json", *common]) == cli.EXIT_OK
        as_json = capsys.readouterr().out
    assert code == cli.EXIT_OK  # active streams are not ready yet: not a failure
    for text in (listed, exported.out, exported.err, as_json):
        assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f\u202e]", text), repr(text)
    for shown in ("\\x1b[2J", "\\x1b]0;pwned\\x07", "over\\rwritten", "bidi\\u202egnp"):
        assert shown in listed.replace("\n", "").replace(" ", "") or shown in exported.out
    assert "[bold red]markup[/]" in exported.out  # shown as text, not as markup
    assert [json.loads(as_json)[i]["stream_id"] for i in range(len(HOSTILE_IDS))] == HOSTILE_IDS


def test_printable_keeps_text_and_neutralises_controls() -> None:
    from odyssey_data.errors import printable

    assert printable("café 日本 ok") == "café 日本 ok"
    assert printable("a\x1b[31mb\u202ec\u200bd\r\n") == "a\\x1b[31mb\\u202ec\\u200bd\\r\\n"
    assert np.all([printable(chr(c)) != chr(c) for c in range(32)])


def test_a_worker_process_that_dies_fails_only_its_item() -> None:
    """Real worker processes: the one that dies on item 3 breaks the pool; the items in
    flight with it run again alone, and only item 3 (which kills its worker alone too)
    is lost. Without ``on_lost`` the death is one clear error."""
    executor = LocalExecutor(2)
    try:
        got = list(
            executor.map_unordered(
                die_on_three, range(8), on_lost=lambda item, reason: ("lost", item, reason)
            )
        )
        assert sorted(item for kind, item, _ in got if kind == "ok") == [0, 1, 2, 4, 5, 6, 7]
        lost = [(item, reason) for kind, item, reason in got if kind == "lost"]
        assert [item for item, _ in lost] == [3]
        assert "worker process died" in lost[0][1]
        with pytest.raises(OdysseyDataError, match="a worker process died"):
            list(executor.map_unordered(die_on_three, range(8)))
    finally:
        executor.close()


@pytest.mark.parametrize(
    "argv",
    [
        ["serve-demo", "--seconds", "inf"],
        ["serve-demo", "--seconds", "nan"],
        ["serve-demo", "--recordings", "100000000"],
        ["demo", "--recordings", "100000000"],
        ["export", "OUT", "--api-key", KEY, "--lock-timeout", "nan"],
        ["export", "OUT", "--api-key", KEY, "--lock-timeout", "inf"],
    ],
)
def test_other_commands_refuse_unbounded_values_in_one_line(
    argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [str(tmp_path / "out") if a == "OUT" else a for a in argv]
    if argv[0] == "demo":
        argv.insert(1, str(tmp_path / "demo"))
    started = time.monotonic()
    code = cli.main(argv)
    err = capsys.readouterr().err
    assert code == cli.EXIT_USAGE, err
    assert err.count("\n") == 1, err
    assert time.monotonic() - started < 10  # refused up front, not after making it all


def test_contact_sheet_sizes_are_bounded(tmp_path: Path) -> None:
    from odyssey_data.preview import contact_sheet

    for options in ({"columns": 10**6}, {"rows": 0}, {"thumb_width": 10**6}):
        with pytest.raises(ConfigError, match="must be within"):
            contact_sheet(None, **options)  # type: ignore[arg-type]
