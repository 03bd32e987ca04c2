"""The embedded demo server, over real HTTP on 127.0.0.1 (httpx as the client)."""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import numpy as np
import pytest

import odyssey_data.demo as demo
from odyssey_data.demo import DEMO_API_KEY, DemoCatalog, DemoServer, make_demo_catalog
from odyssey_data.demo.server import run_demo_server
from odyssey_data.demo.synth import DEMO_EPOCH, make_demo_recording
from odyssey_data.models import Recording, RecordingPage
from odyssey_data.video import probe_frames

N_FINISHED = 6
N_ACTIVE = 1


@pytest.fixture(scope="module")
def catalog() -> DemoCatalog:
    return make_demo_catalog(N_FINISHED, seed=7, active=N_ACTIVE)


@pytest.fixture(scope="module")
def server(catalog: DemoCatalog) -> Iterator[DemoServer]:
    with DemoServer(catalog, page_cap=4) as srv:
        yield srv


@pytest.fixture
def client(server: DemoServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, timeout=10) as c:
        yield c


def _token(c: httpx.Client, key: str = DEMO_API_KEY) -> str:
    r = c.post("/auth/token", json={"api_key": key})
    assert r.status_code == 200, r.text
    return str(r.json()["access_token"])


def _auth(c: httpx.Client) -> dict[str, str]:
    return {"Authorization": f"Bearer {_token(c)}"}


def _urls(c: httpx.Client, stream_id: str, segment: str | None = None) -> Recording:
    r = c.get(f"/recordings/{segment or stream_id}", headers=_auth(c))
    assert r.status_code == 200, r.text
    return Recording.from_json(r.json(), stream_id=stream_id)


def _finished(catalog: DemoCatalog) -> list[str]:
    return [rec.stream_id for rec in catalog.snapshot() if not rec.is_active]


# --- public API ----------------------------------------------------------------------


def test_public_api() -> None:
    assert sorted(demo.__all__) == sorted(
        [
            "DEMO_API_KEY",
            "DemoCatalog",
            "DemoDefects",
            "DemoRecording",
            "DemoServer",
            "make_demo_catalog",
        ]
    )
    assert DEMO_API_KEY.startswith("ody_")


# --- tokens --------------------------------------------------------------------------


def test_token_good_key(client: httpx.Client, server: DemoServer) -> None:
    r = client.post("/auth/token", json={"api_key": DEMO_API_KEY})
    assert r.status_code == 200
    body = r.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == server.token_ttl_s
    assert isinstance(body["access_token"], str)
    assert body["access_token"]


def test_token_bad_key_is_401(client: httpx.Client) -> None:
    r = client.post("/auth/token", json={"api_key": "ody_not_the_right_key"})
    assert r.status_code == 401
    assert "detail" in r.json()


@pytest.mark.parametrize(
    "content",
    [
        json.dumps({"api_key": "sk-not-odyssey"}),
        json.dumps({"key": DEMO_API_KEY}),
        json.dumps(["ody_x"]),
        "not json",
    ],
)
def test_token_malformed_is_422(client: httpx.Client, content: str) -> None:
    r = client.post("/auth/token", content=content, headers={"Content-Type": "application/json"})
    assert r.status_code == 422
    assert "detail" in r.json()


# --- listing -------------------------------------------------------------------------


def test_list_requires_bearer(client: httpx.Client) -> None:
    assert client.get("/stream-recordings").status_code == 401
    r = client.get("/stream-recordings", headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401
    assert client.get("/recordings/x", headers={"Authorization": "Basic abc"}).status_code == 401


def test_list_pages_by_cap(client: httpx.Client, catalog: DemoCatalog) -> None:
    headers = _auth(client)
    seen: list[str] = []
    offset, pages = 0, 0
    while True:
        r = client.get(
            "/stream-recordings", params={"limit": 100, "offset": offset}, headers=headers
        )
        assert r.status_code == 200
        page = RecordingPage.from_json(r.json(), where=f"offset={offset}")
        assert page.total == N_FINISHED + N_ACTIVE
        assert page.limit == 4  # capped
        assert page.offset == offset
        pages += 1
        seen.extend(info.stream_id for info in page.recordings)
        offset += len(page.recordings)
        if not page.recordings or offset >= page.total:
            break
    assert pages == 2
    assert seen == [rec.stream_id for rec in catalog.snapshot()]
    assert len(set(seen)) == len(seen)


def test_list_entries(client: httpx.Client) -> None:
    r = client.get("/stream-recordings", params={"limit": 3}, headers=_auth(client))
    body = r.json()
    assert body["limit"] == 3
    assert len(body["recordings"]) == 3
    raw = body["recordings"]
    assert raw[0]["ended_at"] is None  # the active one is the most recent
    assert raw[0]["duration_seconds"] is None
    assert raw[1]["started_at"].endswith("Z")
    assert raw[1]["ended_at"].endswith("Z")
    infos = RecordingPage.from_json(body, where="0").recordings
    starts = [info.started_at.timestamp() for info in infos if info.started_at is not None]
    assert len(starts) == 3
    assert starts == sorted(starts, reverse=True)
    sizes = {(info.width, info.height) for info in infos}
    assert sizes == {(320, 176), (176, 320)}
    assert infos[1].duration_seconds == pytest.approx(3.5)


@pytest.mark.parametrize(
    "params", [{"limit": 0}, {"limit": "abc"}, {"offset": -1}, {"offset": "x"}]
)
def test_list_bad_params_is_422(client: httpx.Client, params: dict[str, int | str]) -> None:
    r = client.get("/stream-recordings", params=params, headers=_auth(client))
    assert r.status_code == 422


def test_list_offset_past_end(client: httpx.Client) -> None:
    r = client.get("/stream-recordings", params={"offset": 50}, headers=_auth(client))
    assert r.status_code == 200
    assert r.json()["recordings"] == []
    assert r.json()["total"] == N_FINISHED + N_ACTIVE


# --- one recording -------------------------------------------------------------------


def test_get_recording(client: httpx.Client, catalog: DemoCatalog) -> None:
    rec = catalog.snapshot()[1]
    got = _urls(client, rec.stream_id)
    assert got.stream_id == rec.stream_id
    assert got.thumbnail_url is None
    assert got.frame_count == rec.frame_count
    assert got.duration_seconds == pytest.approx(rec.seconds)
    for url in (got.video_url, got.events_url, got.preview_url):
        assert url is not None
        parts = urlsplit(url)
        assert url.startswith(f"{str(client.base_url).rstrip('/')}/blobs/")
        query = parse_qs(parts.query)
        assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
        assert len(query["X-Amz-Signature"][0]) == 64
        assert query["X-Amz-Expires"] == ["3600"]
    assert got.video_url is not None
    assert got.video_url.split("?")[0].endswith(f"/{rec.stream_id}/video.mp4")


def test_get_active_recording_has_no_urls(client: httpx.Client, catalog: DemoCatalog) -> None:
    active = next(rec for rec in catalog.snapshot() if rec.is_active)
    got = _urls(client, active.stream_id)
    assert got.video_url is None
    assert got.events_url is None
    assert got.preview_url is None
    assert got.duration_seconds is None


def test_unknown_recording_is_404(client: httpx.Client) -> None:
    r = client.get("/recordings/no-such-stream", headers=_auth(client))
    assert r.status_code == 404
    assert r.json() == {"detail": "Recording not found"}


def test_unknown_path_is_404(client: httpx.Client) -> None:
    assert client.get("/nothing-here").status_code == 404


# --- blobs ---------------------------------------------------------------------------


def test_video_blobs_are_vfr_mp4s(client: httpx.Client, catalog: DemoCatalog) -> None:
    first_pts: list[int] = []
    for stream_id in _finished(catalog):
        rec = catalog.get(stream_id)
        assert rec is not None
        got = _urls(client, stream_id)
        assert got.video_url is not None
        r = client.get(got.video_url)  # no bearer: the URL is presigned
        assert r.status_code == 200
        assert r.headers["content-type"] == "video/mp4"
        assert r.headers["accept-ranges"] == "bytes"
        assert int(r.headers["content-length"]) == len(r.content)
        timing = probe_frames(io.BytesIO(r.content), what=stream_id)
        assert timing.codec == "h264"
        assert (timing.width, timing.height) == (rec.width, rec.height)
        assert timing.frame_count == got.frame_count
        np.testing.assert_array_equal(timing.pts, rec.frame_pts())
        intervals = np.diff(timing.pts)
        assert len(set(intervals.tolist())) > 10  # variable frame rate
        assert intervals.min() < 3000 < intervals.max()
        assert timing.timestamps_s()[-1] < rec.seconds
        assert timing.is_keyframe[0]
        first_pts.append(timing.first_pts)
    assert any(p == 0 for p in first_pts)
    assert any(p > 0 for p in first_pts)


def test_events_blobs_parse_in_all_shapes(client: httpx.Client, catalog: DemoCatalog) -> None:
    shapes: set[int] = set()
    for stream_id in _finished(catalog):
        rec = catalog.get(stream_id)
        assert rec is not None
        got = _urls(client, stream_id)
        assert got.events_url is not None
        r = client.get(got.events_url)
        assert r.status_code == 200
        assert r.headers["content-type"] == "application/x-ndjson"
        lines = [json.loads(line) for line in r.text.splitlines()]
        assert all(isinstance(line, dict) for line in lines)
        n_interacts = len(rec.prompts) - 1
        assert 1 <= n_interacts <= 3
        shapes.add(rec.events_shape)
        if rec.events_shape == 1:
            assert lines[0] == {
                "type": "stream_started",
                "timestamp_ms": 0,
                "prompt": rec.prompts[0][1],
            }
            acks = [line for line in lines if line["type"] == "interact_acknowledged"]
            assert len(acks) == n_interacts
            assert lines[-1] == {"type": "stream_ended", "timestamp_ms": 3500}
        elif rec.events_shape == 2:
            assert lines[0]["event"] == "stream_started"
            assert lines[0]["timestamp"] == rec.started_at.strftime("%Y-%m-%dT%H:%M:%S.000Z")
            assert [line["data"].get("prompt") for line in lines[1:-1]] == [
                p for _, p in rec.prompts[1:]
            ]
        else:
            assert lines[0] == {"timestamp_ms": 0, "start": {"prompt": rec.prompts[0][1]}}
            assert lines[-1] == {"timestamp_ms": 3500, "end": {}}
            times = [line["timestamp_ms"] for line in lines if "interact" in line]
            assert times == [t for t, _ in rec.prompts[1:]]
            assert all(0 < t < 3500 and t % 10 == 0 for t in times)
    assert shapes == {1, 2, 3}


def test_range_requests(client: httpx.Client, catalog: DemoCatalog) -> None:
    got = _urls(client, _finished(catalog)[0])
    assert got.video_url is not None
    whole = client.get(got.video_url).content
    size = len(whole)

    r = client.get(got.video_url, headers={"Range": "bytes=10-99"})
    assert r.status_code == 206
    assert r.content == whole[10:100]
    assert r.headers["content-range"] == f"bytes 10-99/{size}"
    assert r.headers["content-length"] == "90"

    r = client.get(got.video_url, headers={"Range": "bytes=1000-"})
    assert r.status_code == 206
    assert r.content == whole[1000:]
    assert r.headers["content-range"] == f"bytes 1000-{size - 1}/{size}"

    r = client.get(got.video_url, headers={"Range": "bytes=-50"})
    assert r.status_code == 206
    assert r.content == whole[-50:]

    r = client.get(got.video_url, headers={"Range": f"bytes={size}-"})
    assert r.status_code == 416
    assert r.headers["content-range"] == f"bytes */{size}"

    r = client.head(got.video_url)
    assert r.status_code == 200
    assert r.headers["content-length"] == str(size)
    assert r.content == b""


def test_tampered_signature_is_403(client: httpx.Client, catalog: DemoCatalog) -> None:
    ids = _finished(catalog)
    got = _urls(client, ids[0])
    assert got.video_url is not None
    url = got.video_url
    signature = parse_qs(urlsplit(url).query)["X-Amz-Signature"][0]
    flipped = ("0" if signature[0] != "0" else "1") + signature[1:]
    r = client.get(url.replace(signature, flipped))
    assert r.status_code == 403
    assert "<Code>AccessDenied</Code>" in r.text
    assert r.headers["content-type"] == "application/xml"
    # The signature covers the object: it does not open another recording's video.
    r = client.get(url.replace(ids[0], ids[1]))
    assert r.status_code == 403
    # Nor a longer lifetime.
    r = client.get(url.replace("X-Demo-Ttl-Ms=3600000", "X-Demo-Ttl-Ms=9600000"))
    assert r.status_code == 403
    # Without the query there is no access at all.
    assert client.get(url.split("?")[0]).status_code == 403


def test_expired_url_is_403(catalog: DemoCatalog) -> None:
    with DemoServer(catalog, url_ttl_s=0.3) as srv, httpx.Client(base_url=srv.base_url) as c:
        got = _urls(c, _finished(catalog)[0])
        assert got.video_url is not None
        assert c.get(got.events_url or "").status_code == 200
        time.sleep(0.4)
        r = c.get(got.video_url)
        assert r.status_code == 403
        assert "<Code>AccessDenied</Code>" in r.text
        assert "Request has expired" in r.text
        # Fresh URLs work again.
        fresh = _urls(c, _finished(catalog)[0])
        assert c.get(fresh.video_url or "").status_code == 200


def test_clock_override_expires_urls_and_tokens(catalog: DemoCatalog) -> None:
    with DemoServer(catalog) as srv, httpx.Client(base_url=srv.base_url) as c:
        headers = _auth(c)
        got = _urls(c, _finished(catalog)[0])
        srv.clock = lambda: time.time() + 3601
        r = c.get(got.video_url or "")
        assert r.status_code == 403
        assert "Request has expired" in r.text
        assert c.get("/stream-recordings", headers=headers).status_code == 401
        # A new token works at the new time.
        assert c.get("/stream-recordings", headers=_auth(c)).status_code == 200
        srv.expire_tokens()
        assert c.get("/stream-recordings", headers=headers).status_code == 401


def test_quoted_stream_id(catalog: DemoCatalog) -> None:
    odd = dataclasses.replace(
        make_demo_recording(99, started_at=DEMO_EPOCH + timedelta(hours=1), seconds=1.0),
        stream_id="odd id/ä?#%",
    )
    cat = DemoCatalog([odd])
    with DemoServer(cat) as srv, httpx.Client(base_url=srv.base_url) as c:
        listed = c.get("/stream-recordings", headers=_auth(c)).json()["recordings"]
        assert listed[0]["stream_id"] == odd.stream_id
        got = _urls(c, odd.stream_id, "odd%20id%2F%C3%A4%3F%23%25")
        assert got.stream_id == odd.stream_id
        assert got.video_url is not None
        assert "/blobs/odd%20id%2F%C3%A4%3F%23%25/video.mp4?" in got.video_url
        r = c.get(got.video_url)
        assert r.status_code == 200
        assert probe_frames(io.BytesIO(r.content)).frame_count == odd.frame_count


# --- test hooks ----------------------------------------------------------------------


def test_fault_injection(catalog: DemoCatalog) -> None:
    with DemoServer(catalog) as srv, httpx.Client(base_url=srv.base_url) as c:
        headers = _auth(c)
        srv.inject("/stream-recordings", 503, times=2, headers={"Retry-After": "1"})
        assert len(srv.faults) == 1
        for _ in range(2):
            r = c.get("/stream-recordings", headers=headers)
            assert r.status_code == 503
            assert r.headers["retry-after"] == "1"
            assert "detail" in r.json()
        assert srv.faults == []
        assert c.get("/stream-recordings", headers=headers).status_code == 200
        assert srv.request_log.count("GET", "/stream-recordings", 503) == 2
        assert ("GET", "/stream-recordings", 200) in srv.request_log.snapshot()

        # Faults apply before auth and only to their prefix.
        srv.inject("/recordings/", 429, body=b"slow down", headers={"Content-Type": "text/plain"})
        assert c.get("/stream-recordings", headers=headers).status_code == 200
        r = c.get("/recordings/whatever")
        assert (r.status_code, r.text, r.headers["content-type"]) == (
            429,
            "slow down",
            "text/plain",
        )

        # A cut body: the full Content-Length is announced, then the connection closes.
        got = _urls(c, _finished(catalog)[0])
        srv.inject_truncation("/blobs/", after_bytes=1000)
        with pytest.raises(httpx.RemoteProtocolError):
            c.get(got.video_url or "")
        assert c.get(got.video_url or "").status_code == 200

        srv.inject("/auth/token", 500, times=5)
        srv.clear_faults()
        assert c.post("/auth/token", json={"api_key": DEMO_API_KEY}).status_code == 200


def test_request_log_and_logging_keep_secrets_out(
    catalog: DemoCatalog, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="odyssey_data.demo")
    with DemoServer(catalog) as srv, httpx.Client(base_url=srv.base_url) as c:
        token = _token(c)
        got = _urls(c, _finished(catalog)[0])
        c.get(got.video_url or "", headers={"Range": "bytes=0-9"})
        c.get("/stream-recordings?limit=abc", headers={"Authorization": f"Bearer {token}"})
        entries = srv.request_log.snapshot()
    assert entries[0].path == "/auth/token"
    assert all("?" not in e.path for e in entries)
    assert entries[-2].status == 206
    assert entries[-1] == ("GET", "/stream-recordings", 422)
    assert caplog.records  # debug logging happened
    for secret in (DEMO_API_KEY, token, "X-Amz-Signature", "limit=abc"):
        assert secret not in caplog.text


def test_add_recording_after_start() -> None:
    cat = make_demo_catalog(2, seed=3, active=0, seconds=1.0)
    with DemoServer(cat) as srv, httpx.Client(base_url=srv.base_url) as c:
        headers = _auth(c)
        before = c.get("/stream-recordings", headers=headers).json()
        assert before["total"] == 2
        new = make_demo_recording(1234, started_at=DEMO_EPOCH + timedelta(days=1), seconds=1.0)
        cat.add(new)
        after = c.get("/stream-recordings", headers=headers).json()
        assert after["total"] == 3
        assert after["recordings"][0]["stream_id"] == new.stream_id
        assert _urls(c, new.stream_id).video_url is not None
        with pytest.raises(ValueError, match="already"):
            cat.add(new)


def test_stop_closes_port(catalog: DemoCatalog) -> None:
    srv = DemoServer(catalog).start()
    url = srv.base_url
    with httpx.Client(base_url=url) as c:
        assert c.post("/auth/token", json={"api_key": DEMO_API_KEY}).status_code == 200
        srv.stop()
        srv.stop()  # idempotent
        assert not srv.running
        with pytest.raises(httpx.TransportError):
            c.post("/auth/token", json={"api_key": DEMO_API_KEY})


def test_run_demo_server_blocks_until_stopped() -> None:
    stop = threading.Event()
    ready: list[str] = []

    def on_ready(srv: DemoServer) -> None:
        with httpx.Client(base_url=srv.base_url) as c:
            ready.append(str(c.post("/auth/token", json={"api_key": srv.api_key}).status_code))
        stop.set()

    thread = threading.Thread(
        target=run_demo_server,
        kwargs={"recordings": 2, "seed": 1, "on_ready": on_ready, "stop": stop},
    )
    thread.start()
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert ready == ["200"]


# --- synthesis -----------------------------------------------------------------------


def test_catalog_is_deterministic() -> None:
    a = make_demo_catalog(4, seed=11)
    b = make_demo_catalog(4, seed=11)
    c = make_demo_catalog(4, seed=12)
    assert a.snapshot() == b.snapshot()  # ids, times, prompts, shapes, start pts
    assert [r.stream_id for r in a.snapshot()] != [r.stream_id for r in c.snapshot()]
    for ra, rb in zip(a.snapshot(), b.snapshot(), strict=True):
        assert ra.events_bytes() == rb.events_bytes()
        np.testing.assert_array_equal(ra.frame_pts(), rb.frame_pts())
    assert len(a) == 5
    assert sum(r.is_active for r in a.snapshot()) == 1


def test_full_size_catalog_option() -> None:
    cat = make_demo_catalog(2, width=1280, height=704, seconds=0.2, active=0, bitrate=2_000_000)
    rec = cat.snapshot()[0]
    assert (rec.width, rec.height) == (1280, 704)
    video = rec.video_bytes()
    assert video is not None
    assert probe_frames(io.BytesIO(video)).width == 1280
    with pytest.raises(ValueError, match="both"):
        make_demo_catalog(1, width=1280)


def test_frames_show_prompt_changes() -> None:
    rec = make_demo_recording(5, started_at=DEMO_EPOCH, seconds=2.0)
    frames = list(rec.iter_frames())
    change_ms = rec.prompts[1][0]
    before = next(f for f, pts in reversed(frames) if (pts - rec.start_pts) / 90 < change_ms)
    after = next(f for f, pts in frames if (pts - rec.start_pts) / 90 >= change_ms)
    assert not np.array_equal(before[0, 0], after[0, 0])  # background colour changed
    assert not np.array_equal(frames[0][0], frames[1][0])  # the box moves


def test_default_recording_is_quick_to_generate() -> None:
    rec = make_demo_recording(42, started_at=DEMO_EPOCH)
    t0 = time.perf_counter()
    video = rec.video_bytes()
    elapsed = time.perf_counter() - t0
    assert video is not None
    assert rec.video_bytes() is video  # cached
    assert elapsed < 0.5
