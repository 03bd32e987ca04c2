"""The export survives network and API faults, over real HTTP on 127.0.0.1.

Two kinds of misbehaving servers: the demo server with fault injection (whole exports),
and :mod:`raw_http` servers whose answers are written by hand for what the demo server
cannot stage (refused connections, answers that never come, stalls, chunked bodies).
"""

from __future__ import annotations

import email.utils
import io
import itertools
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from conftest import FAST_RETRY, export_config
from raw_http import KEY, Conn, RawHTTPServer, Seen, free_port, serve_api, serve_range

from odyssey_data import fetch as fetch_module
from odyssey_data.api import OdysseyClient, RetryPolicy
from odyssey_data.cli import main
from odyssey_data.demo import DemoCatalog, DemoServer, make_demo_catalog
from odyssey_data.errors import ApiResponseError, DownloadError
from odyssey_data.pipeline import ExportReport, Fetched, RecordingTask, export

DATA = bytes(range(256)) * 400  # 100 KiB

EXPIRED = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
    b"<Message>Request has expired</Message></Error>"
)
DENIED = b"<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>"


# --- hand-written servers: the client alone -------------------------------------------


def blob_server(blob: Any) -> RawHTTPServer:
    """A server for the API calls and ``blob(seen, conn, n)`` for the n-th blob request."""
    counter = {"n": 0}
    lock = threading.Lock()

    def respond(seen: Seen, conn: Conn) -> None:
        if serve_api(seen, conn, server.base_url):
            return
        with lock:
            counter["n"] += 1
            n = counter["n"]
        blob(seen, conn, n)

    server = RawHTTPServer(respond)
    return server


def blob_requests(server: RawHTTPServer) -> list[Seen]:
    return [seen for seen in server.requests if seen.path.startswith("/blob")]


def fetch(server: RawHTTPServer, **client_options: Any) -> tuple[bytes, Any]:
    options: dict[str, Any] = {"retry": FAST_RETRY, **client_options}
    with OdysseyClient(server.base_url, KEY, **options) as client:
        url = client.get_recording("r1").video_url
        assert url is not None
        sink = io.BytesIO()
        stats = client.download(url, sink, what="recording 'r1' video")
    return sink.getvalue(), stats


def test_connection_refused_until_the_server_comes_up() -> None:
    port = free_port()
    server = RawHTTPServer(
        lambda seen, conn: serve_api(seen, conn, server.base_url) or serve_range(seen, conn, DATA),
        port=port,
    )
    timer = threading.Timer(0.3, server.start)
    timer.start()
    patient = RetryPolicy(attempts=40, timeout_s=10, wait_initial_s=0.02, wait_max_s=0.1)
    try:
        with OdysseyClient(f"http://127.0.0.1:{port}", KEY, retry=patient) as client:
            recording = client.get_recording("r1")
            assert recording.video_url is not None
            sink = io.BytesIO()
            client.download(recording.video_url, sink, what="v")
            assert client.api_retries >= 1  # the token request met a closed port first
    finally:
        timer.join()
        server.stop()
    assert sink.getvalue() == DATA


def test_unreachable_api_fails_once_with_a_clear_error() -> None:
    from odyssey_data.errors import ApiError

    port = free_port()
    started = time.monotonic()
    with OdysseyClient(f"http://127.0.0.1:{port}", KEY, retry=FAST_RETRY) as client:
        with pytest.raises(ApiError, match=r"cannot reach the API .*ConnectError") as info:
            client.get_recording("r1")
        # The token's retries are not retried again by the request that needed it.
        assert client.api_retries == FAST_RETRY.attempts - 1
    assert "check the network or --api-url" in str(info.value)
    assert time.monotonic() - started < 3


def test_timeout_while_reading_headers_is_retried() -> None:
    def blob(seen: Seen, conn: Conn, n: int) -> None:
        if n == 1:
            conn.stall(5)  # the request was read; the answer never starts
            return
        serve_range(seen, conn, DATA)

    with blob_server(blob) as server:
        started = time.monotonic()
        data, stats = fetch(server, timeout_s=0.3)
        assert time.monotonic() - started < 3
    assert data == DATA
    assert stats.attempts == 2


def test_stall_mid_body_is_resumed_with_range() -> None:
    def blob(seen: Seen, conn: Conn, n: int) -> None:
        if n == 1:
            conn.head(200, {"Content-Length": str(len(DATA)), "Accept-Ranges": "bytes"})
            conn.raw(DATA[:30_000])
            conn.stall(5)
            return
        serve_range(seen, conn, DATA)

    with blob_server(blob) as server:
        data, stats = fetch(server, timeout_s=0.3)
        ranges = [seen.headers.get("range") for seen in blob_requests(server)]
    assert data == DATA
    assert stats.attempts == 2
    assert ranges == [None, "bytes=30000-"]


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


@pytest.mark.parametrize("ranges", [True, False], ids=["resumed", "restarted"])
def test_chunked_body_cut_short_is_detected(ranges: bool) -> None:
    def blob(seen: Seen, conn: Conn, n: int) -> None:
        if n == 1:
            headers = {"Transfer-Encoding": "chunked"}
            if ranges:
                headers["Accept-Ranges"] = "bytes"
            conn.head(200, headers)
            conn.raw(chunk(DATA[:40_000]))  # then the connection closes: no last chunk
            return
        serve_range(seen, conn, DATA, ranges=ranges)

    with blob_server(blob) as server:
        data, stats = fetch(server)
        asked = [seen.headers.get("range") for seen in blob_requests(server)]
    assert data == DATA  # never the 40,000 bytes taken for the whole
    assert stats.attempts == 2
    assert asked == [None, "bytes=40000-" if ranges else None]


def test_chunked_body_missing_only_its_last_chunk_completes_on_416() -> None:
    def blob(seen: Seen, conn: Conn, n: int) -> None:
        if n == 1:
            conn.head(200, {"Transfer-Encoding": "chunked", "Accept-Ranges": "bytes"})
            conn.raw(chunk(DATA))
            return
        serve_range(seen, conn, DATA)  # Range from the end: 416 bytes */size

    with blob_server(blob) as server:
        data, stats = fetch(server)
        assert [seen.headers.get("range") for seen in blob_requests(server)] == [
            None,
            f"bytes={len(DATA)}-",
        ]
    assert data == DATA
    assert stats.attempts == 2


def test_5xx_forever_fails_after_bounded_retries_with_backoff() -> None:
    with blob_server(lambda seen, conn, n: conn.send(503, b"busy")) as server:
        started = time.monotonic()
        with pytest.raises(DownloadError) as info:
            fetch(server)
        elapsed = time.monotonic() - started
        times = [seen.at for seen in blob_requests(server)]
    assert len(times) == FAST_RETRY.attempts
    assert elapsed < 3
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert min(gaps) >= 0.009  # a backoff wait between attempts
    message = str(info.value)
    assert "recording 'r1' video" in message
    assert f"after {FAST_RETRY.attempts} attempts" in message
    assert "HTTP 503" in message
    assert "re-run the export" in message
    assert "X-Amz-Signature" not in message


def test_retry_after_in_seconds_and_as_http_date_is_honoured() -> None:
    policy = RetryPolicy(attempts=3, timeout_s=20, wait_initial_s=0.01, wait_max_s=5)
    api_calls = {"n": 0}

    def respond(seen: Seen, conn: Conn) -> None:
        if seen.path.startswith("/recordings/"):
            api_calls["n"] += 1
            if api_calls["n"] == 1:
                conn.send(429, b"", {"Retry-After": "1"})
                return
        if serve_api(seen, conn, server.base_url):
            return
        if len(blob_requests(server)) == 1:
            when = email.utils.formatdate(time.time() + 2, usegmt=True)
            conn.send(503, b"", {"Retry-After": when})
            return
        serve_range(seen, conn, DATA)

    with RawHTTPServer(respond) as server:
        data, _ = fetch(server, retry=policy)
        recordings = [s.at for s in server.requests if s.path.startswith("/recordings/")]
        blobs = [s.at for s in blob_requests(server)]
    assert data == DATA
    assert 0.95 <= recordings[1] - recordings[0] < 3  # "1": one second
    assert 0.9 <= blobs[1] - blobs[0] < 3.5  # a date 1-2 s ahead (HTTP dates are whole s)


def test_retry_after_is_capped_by_the_policy() -> None:
    def blob(seen: Seen, conn: Conn, n: int) -> None:
        if n == 1:
            conn.send(429, b"", {"Retry-After": "3600"})
            return
        serve_range(seen, conn, DATA)

    with blob_server(blob) as server:
        started = time.monotonic()
        data, _ = fetch(server)
        assert time.monotonic() - started < 2
    assert data == DATA


# --- the demo server: whole exports ------------------------------------------------------


@pytest.fixture(scope="module")
def catalog() -> DemoCatalog:
    """Three short finished recordings (their bytes are made once per module)."""
    return make_demo_catalog(3, seed=21, seconds=1.0, active=0)


@pytest.fixture
def server(catalog: DemoCatalog) -> Iterator[DemoServer]:
    with DemoServer(DemoCatalog(catalog.snapshot()), page_cap=2) as srv:
        yield srv


def ids(server: DemoServer) -> list[str]:
    return [rec.stream_id for rec in server.catalog.snapshot()]


def blob_path(stream_id: str, name: str = "video.mp4") -> str:
    return f"/blobs/{quote(stream_id, safe='')}/{name}"


def run(server: DemoServer, output: Path, **options: Any) -> tuple[ExportReport, dict[str, Any]]:
    report = export(export_config(server, output, **options))
    manifest = json.loads((output / "manifest.json").read_text())
    return report, manifest


def test_transient_errors_everywhere_are_retried_and_counted(
    server: DemoServer, tmp_path: Path
) -> None:
    past = email.utils.formatdate(time.time() - 30, usegmt=True)
    server.inject("/auth/token", 502)
    server.inject("/stream-recordings", 429, headers={"Retry-After": "0"})
    server.inject("/stream-recordings", 503)
    server.inject("/recordings/", 502)
    server.inject("/recordings/", 504)
    server.inject("/blobs/", 503, times=2)
    server.inject("/blobs/", 429, headers={"Retry-After": past})

    report, manifest = run(server, tmp_path / "out")

    assert (report.exported, report.failed) == (3, 0)
    assert server.faults == []
    # 3 in the listing (token, 429, 503), 2 API calls and 3 downloads in the worker.
    assert report.retries == 8
    entries = manifest["recordings"]
    assert sum(entry["retries"] for entry in entries.values()) == 5
    assert all(entry["attempts"] >= 2 for entry in entries.values())  # video + events
    assert manifest["stats"]["last_run"]["retries"] == 8


def test_5xx_forever_fails_that_recording_and_a_rerun_finishes(
    server: DemoServer, tmp_path: Path
) -> None:
    bad = ids(server)[1]
    server.inject(blob_path(bad), 503, times=1000)
    started = time.monotonic()
    report, manifest = run(server, tmp_path / "out")
    assert time.monotonic() - started < 10

    assert (report.exported, report.failed) == (2, 1)
    [(sid, status, reason)] = report.problems
    assert (sid, status) == (bad, "failed")
    assert f"recording {bad!r} video: download failed after 4 attempts" in reason
    assert "HTTP 503" in reason
    assert "re-run the export" in reason
    entry = manifest["recordings"][bad]
    assert entry["status"] == "failed"
    assert (entry["attempts"], entry["retries"]) == (4, 3)

    server.clear_faults()
    again, manifest = run(server, tmp_path / "out")
    assert (again.exported, again.already, again.failed) == (1, 2, 0)
    assert manifest["recordings"][bad]["status"] == "exported"


@pytest.mark.parametrize(
    "fault",
    [
        {"after_bytes": 700},
        {"after_bytes": 700, "chunked": True},
        {"after_bytes": 700, "stall_s": 5.0},
    ],
    ids=["content-length", "chunked", "stall"],
)
def test_body_cut_short_is_resumed_with_range(
    server: DemoServer, tmp_path: Path, fault: dict[str, Any]
) -> None:
    target = ids(server)[0]
    rec = server.catalog.get(target)
    assert rec is not None
    server.inject_truncation(blob_path(target), **fault)
    server.inject_truncation(blob_path(target, "events.jsonl"), after_bytes=20, chunked=True)

    started = time.monotonic()
    report, manifest = run(server, tmp_path / "out", timeout_s=0.4)
    assert time.monotonic() - started < 4  # a stall costs one read timeout, not its length

    assert (report.exported, report.failed) == (3, 0)
    assert server.request_log.count("GET", blob_path(target), 206) == 1
    assert server.request_log.count("GET", blob_path(target, "events.jsonl"), 206) == 1
    entry = manifest["recordings"][target]
    assert (entry["attempts"], entry["retries"]) == (4, 2)
    assert entry["frames"] == rec.frame_count
    # The dataset's copy is the whole video, byte for byte.
    copy = tmp_path / "out" / entry["video_path"]
    assert copy.read_bytes() == rec.video_bytes()


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_body_that_never_arrives_whole_fails_and_is_never_decoded(
    server: DemoServer, tmp_path: Path, chunked: bool
) -> None:
    target = ids(server)[0]
    server.inject_truncation(blob_path(target), after_bytes=0, times=99, chunked=chunked)
    report, manifest = run(server, tmp_path / "out")
    assert (report.exported, report.failed) == (2, 1)
    entry = manifest["recordings"][target]
    assert f"recording {target!r} video: download failed after 4 attempts" in entry["reason"]
    assert "RemoteProtocolError" in entry["reason"]
    assert not (tmp_path / "out" / "videos" / f"{target}.mp4").exists()


def stale_urls(server: DemoServer, target: str, times: int) -> list[int]:
    """Make the next ``times`` video URLs of ``target`` come out already expired."""
    original = server.presign
    issued: list[int] = []

    def presign(stream_id: str, name: str) -> str:
        if stream_id == target and name == "video.mp4" and len(issued) < times:
            issued.append(1)
            clock = server.clock
            server.clock = lambda: time.time() - 7200  # signed two hours ago
            try:
                return original(stream_id, name)
            finally:
                server.clock = clock
        return original(stream_id, name)

    server.presign = presign  # type: ignore[method-assign]
    return issued


def test_expired_url_gets_fresh_urls_and_the_download_goes_on(
    server: DemoServer, tmp_path: Path
) -> None:
    target = ids(server)[2]
    # Each GET /recordings signs the video URL twice (video_url, preview_url).
    stale_urls(server, target, times=2)
    report, manifest = run(server, tmp_path / "out")

    assert (report.exported, report.failed) == (3, 0)
    assert server.request_log.count("GET", blob_path(target), 403) == 1
    assert server.request_log.count("GET", f"/recordings/{target}", 200) == 2
    assert report.url_refreshes == 1
    assert manifest["recordings"][target]["url_refreshes"] == 1


def test_url_that_keeps_expiring_fails_with_a_clear_reason(
    server: DemoServer, tmp_path: Path
) -> None:
    target = ids(server)[2]
    stale_urls(server, target, times=1000)
    report, manifest = run(server, tmp_path / "out")
    assert (report.exported, report.failed) == (2, 1)
    reason = manifest["recordings"][target]["reason"]
    assert "presigned URL kept expiring (3 refreshes)" in reason
    assert "clock" in reason
    assert manifest["recordings"][target]["url_refreshes"] == 3


def test_other_403_and_404_fail_that_recording_without_retrying(
    server: DemoServer, tmp_path: Path
) -> None:
    denied, gone, fine = ids(server)
    server.inject(blob_path(denied), 403, times=50, body=DENIED)
    server.inject(blob_path(gone, "events.jsonl"), 404, times=50, body=b"<Error>NoSuchKey</Error>")
    report, manifest = run(server, tmp_path / "out")

    assert (report.exported, report.failed) == (1, 2)
    assert manifest["recordings"][fine]["status"] == "exported"
    first = manifest["recordings"][denied]
    assert "video: HTTP 403 from http://127.0.0.1:" in first["reason"]
    assert "access denied" in first["reason"]
    assert first["attempts"] == 1
    second = manifest["recordings"][gone]
    assert "events log: HTTP 404" in second["reason"]
    assert "not found" in second["reason"]
    assert second["attempts"] == 2  # the video, then the events log once
    assert server.request_log.count("GET", blob_path(denied)) == 1


def test_401_on_the_api_refreshes_the_token_once(
    server: DemoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One download thread (workers=1) fetches the recordings one after the other with
    # one client: its token dies after the first recording, so the second one's API
    # call meets a 401.
    real_fetch = fetch_module.fetch
    fetched: list[str] = []

    def fetch_then_expire(task: RecordingTask, folder: str) -> Fetched:
        done = real_fetch(task, folder)
        fetched.append(task.info.stream_id)
        if len(fetched) == 1:
            server.expire_tokens()
        return done

    monkeypatch.setattr(fetch_module, "fetch", fetch_then_expire)
    report = export(export_config(server, tmp_path / "out"))
    assert (report.exported, report.failed) == (3, 0)
    assert server.request_log.count("GET", "/recordings/", 401) == 1
    # The listing's token, the download thread's token, and the one refresh.
    assert server.request_log.count("POST", "/auth/token", 200) == 3


def test_401_that_a_new_token_does_not_cure_fails_that_recording(
    server: DemoServer, tmp_path: Path
) -> None:
    target = ids(server)[0]
    server.inject(f"/recordings/{target}", 401, times=2)
    report, manifest = run(server, tmp_path / "out")
    assert (report.exported, report.failed) == (2, 1)
    assert (
        "not authorized (HTTP 401); check the API key" in manifest["recordings"][target]["reason"]
    )
    assert server.request_log.count("POST", "/auth/token") == 3  # refreshed once, not more


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"<html>Bad Gateway</html>", "the answer is not valid JSON"),
        (json.dumps({"video_url": None}).encode(), "the field 'stream_id' is missing"),
        (json.dumps({"stream_id": "SID", "video_url": 7}).encode(), "'video_url' has the wrong"),
        (json.dumps({"stream_id": "x", "video_url": None}).encode(), "for another recording"),
    ],
    ids=["invalid-json", "missing-field", "wrong-type", "another-recording"],
)
def test_bad_api_answer_fails_that_recording_only(
    server: DemoServer, tmp_path: Path, body: bytes, expected: str
) -> None:
    target = ids(server)[1]
    server.inject(f"/recordings/{target}", 200, body=body.replace(b"SID", target.encode()))
    report, manifest = run(server, tmp_path / "out")
    assert (report.exported, report.failed) == (2, 1)
    reason = manifest["recordings"][target]["reason"]
    assert reason.startswith(f"recording {target!r}: ")
    assert expected in reason


def test_recording_listed_but_gone_when_fetched(server: DemoServer, tmp_path: Path) -> None:
    target = ids(server)[0]
    server.inject(f"/recordings/{target}", 404, times=5)
    report, manifest = run(server, tmp_path / "out")
    assert (report.exported, report.failed) == (2, 1)
    reason = manifest["recordings"][target]["reason"]
    assert "the API no longer knows this recording (HTTP 404)" in reason


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"<html>oops</html>", "page at offset=2): the answer is not valid JSON"),
        (
            json.dumps({"recordings": [{"width": 1}], "total": 3}).encode(),
            "page at offset=2: recording 'None': the field 'stream_id' is missing",
        ),
    ],
    ids=["invalid-json", "missing-field"],
)
def test_bad_listing_page_is_a_clear_error_naming_the_page(
    server: DemoServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    body: bytes,
    expected: str,
) -> None:
    # The first page comes whole (a "truncation" past its end), the second is broken.
    server.inject_truncation("/stream-recordings", after_bytes=1 << 30)
    server.inject("/stream-recordings", 200, body=body)
    with pytest.raises(ApiResponseError, match="offset=2"):
        export(export_config(server, tmp_path / "a"))

    server.inject_truncation("/stream-recordings", after_bytes=1 << 30)
    server.inject("/stream-recordings", 200, body=body)
    code = main(
        [
            *("export", str(tmp_path / "b"), "--workers", "1", "-q"),
            *("--api-url", server.base_url, "--api-key", server.api_key),
        ]
    )
    err = capsys.readouterr().err
    assert code == 1
    assert expected in err
    assert "Traceback" not in err
