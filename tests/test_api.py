"""Unit tests of the API client and downloader over httpx.MockTransport."""

from __future__ import annotations

import io
import json
from collections.abc import Callable

import httpx
import pytest

from odyssey_data.api import OdysseyClient, OffsetPaginator, RetryPolicy, resolve_credentials
from odyssey_data.errors import (
    ApiError,
    ApiResponseError,
    AuthError,
    ConfigError,
    DownloadError,
    NotFoundError,
    RateLimited,
)

KEY = "ody_unit_test_key_0123456789"
FAST = RetryPolicy(attempts=4, timeout_s=10, wait_initial_s=0.001, wait_max_s=0.01)
Handler = Callable[[httpx.Request], httpx.Response]


def client_for(handler: Handler, **kwargs: object) -> OdysseyClient:
    def wrapped(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/auth/token":
            body = json.loads(request.content)
            if body["api_key"] != KEY:
                return httpx.Response(401, json={"detail": "Invalid API key"})
            return httpx.Response(200, json={"access_token": "tok", "expires_in": 3600})
        return handler(request)

    return OdysseyClient(
        "http://api.test", KEY, transport=httpx.MockTransport(wrapped), retry=FAST, **kwargs
    )


def rec(i: int) -> dict[str, object]:
    return {
        "stream_id": f"s{i}",
        "width": 320,
        "height": 176,
        "started_at": "2026-11-20T10:00:00Z",
        "ended_at": "2026-11-20T10:00:05Z",
        "duration_seconds": 5.0,
    }


def test_paginator_advances_by_what_was_returned() -> None:
    pager = OffsetPaginator(page_size=10)
    assert pager.next_params() == {"limit": 10, "offset": 0}
    pager.advance(returned=4, total=9)  # the server capped the page at 4
    assert pager.next_params() == {"limit": 10, "offset": 4}
    pager.advance(returned=4, total=9)
    assert not pager.done
    pager.advance(returned=1, total=9)
    assert pager.done


def test_paginator_stops_on_empty_page_and_limit() -> None:
    pager = OffsetPaginator(page_size=10)
    pager.advance(returned=0, total=50)
    assert pager.done
    pager = OffsetPaginator(page_size=10, max_items=3)
    assert pager.next_params()["limit"] == 3
    pager.advance(returned=3, total=50)
    assert pager.done


def test_list_pages_until_total_with_capped_limit() -> None:
    data = [rec(i) for i in range(11)]
    seen_params = []

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.headers["Authorization"] == "Bearer tok"
        offset = int(request.url.params["offset"])
        seen_params.append(offset)
        page = data[offset : offset + 4]  # cap of 4 whatever was asked
        return httpx.Response(
            200, json={"recordings": page, "total": len(data), "limit": 4, "offset": offset}
        )

    with client_for(handler, page_size=100) as client:
        ids = [r.stream_id for r in client.list_recordings()]
    assert ids == [f"s{i}" for i in range(11)]
    assert seen_params == [0, 4, 8]


def test_list_invalid_json_names_the_page() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"<html>oops")

    with client_for(handler) as client, pytest.raises(ApiResponseError, match="offset=0"):
        list(client.list_recordings())


def test_missing_field_is_a_clear_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        bad = rec(0)
        del bad["stream_id"]
        return httpx.Response(200, json={"recordings": [bad], "total": 1})

    with client_for(handler) as client, pytest.raises(ApiResponseError, match="stream_id"):
        list(client.list_recordings())


def test_bad_key_is_an_auth_error_without_the_key() -> None:
    client = OdysseyClient(
        "http://api.test",
        "ody_wrong",
        transport=httpx.MockTransport(lambda r: httpx.Response(401, json={"detail": "no"})),
        retry=FAST,
    )
    with pytest.raises(AuthError) as info:
        client.get_recording("x")
    assert "ody_wrong" not in str(info.value)
    assert "ody_wrong" not in repr(client)


def test_401_refreshes_the_token_once() -> None:
    calls = {"n": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if calls["n"] == 1:
            return httpx.Response(401, json={"detail": "expired"})
        return httpx.Response(200, json={"stream_id": "a", "video_url": None})

    with client_for(handler) as client:
        assert client.get_recording("a").stream_id == "a"
    assert calls["n"] == 2


def test_404_is_not_found() -> None:
    with client_for(lambda r: httpx.Response(404, json={"detail": "nope"})) as client:
        with pytest.raises(NotFoundError):
            client.get_recording("gone")


def test_429_honours_retry_after_then_succeeds() -> None:
    calls = {"n": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if calls["n"] < 3:
            return httpx.Response(429, headers={"Retry-After": "0"})
        return httpx.Response(200, json={"stream_id": "a"})

    with client_for(handler) as client:
        client.get_recording("a")
        assert client.api_retries == 2


def test_429_forever_is_rate_limited() -> None:
    with client_for(lambda r: httpx.Response(429, headers={"Retry-After": "0"})) as client:
        with pytest.raises(RateLimited) as caught:
            client.get_recording("a")
    assert caught.value.status_code == 429


def test_503_forever_is_an_api_error_not_rate_limited() -> None:
    # The retry decision travels as the status attribute, not as text in the message.
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, text="HTTP 429 upstream", headers={"Retry-After": "0"})

    with client_for(handler) as client:
        with pytest.raises(ApiError) as caught:
            client.get_recording("a")
    assert not isinstance(caught.value, RateLimited)
    assert caught.value.status_code is None


def test_credentials_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ODYSSEY_API_URL", "http://env.test/")
    monkeypatch.setenv("ODYSSEY_API_KEY", "ody_env")
    assert resolve_credentials(None, None) == ("http://env.test", "ody_env")
    assert resolve_credentials("http://opt.test", "ody_opt") == ("http://opt.test", "ody_opt")
    monkeypatch.delenv("ODYSSEY_API_KEY")
    with pytest.raises(ConfigError, match="ODYSSEY_API_KEY"):
        resolve_credentials(None, None)


BLOB = bytes(range(256)) * 40


def test_download_resumes_a_short_body_with_range() -> None:
    ranges = []

    def handler(request: httpx.Request) -> httpx.Response:
        rng = request.headers.get("Range")
        ranges.append(rng)
        if rng is None:
            # Claims the whole size but sends a third: a cut connection.
            return httpx.Response(
                200,
                headers={"Content-Length": str(len(BLOB)), "Accept-Ranges": "bytes"},
                content=BLOB[: len(BLOB) // 3],
            )
        start = int(rng.removeprefix("bytes=").rstrip("-"))
        return httpx.Response(
            206,
            headers={"Content-Range": f"bytes {start}-{len(BLOB) - 1}/{len(BLOB)}"},
            content=BLOB[start:],
        )

    sink = io.BytesIO()
    with client_for(handler) as client:
        stats = client.download("http://blob.test/v.mp4?X-Amz-Signature=s3cr3t", sink, what="v")
    assert sink.getvalue() == BLOB
    assert stats.attempts == 2
    assert ranges == [None, f"bytes={len(BLOB) // 3}-"]


def test_download_restarts_when_range_is_ignored() -> None:
    calls = {"n": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        body = BLOB if calls["n"] > 1 else BLOB[:100]
        return httpx.Response(
            200, headers={"Content-Length": str(len(BLOB)), "Accept-Ranges": "bytes"}, content=body
        )

    sink = io.BytesIO()
    with client_for(handler) as client:
        client.download("http://blob.test/v.mp4", sink, what="v")
    assert sink.getvalue() == BLOB


def test_expired_url_is_refreshed() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.params.get("sig") == "old":
            return httpx.Response(
                403,
                content=b"<Error><Code>AccessDenied</Code><Message>Request has expired</Message>",
            )
        return httpx.Response(200, content=BLOB)

    sink = io.BytesIO()
    with client_for(handler) as client:
        stats = client.download(
            "http://blob.test/v.mp4?sig=old",
            sink,
            what="v",
            refresh_url=lambda: "http://blob.test/v.mp4?sig=new",
        )
    assert stats.refreshes == 1
    assert sink.getvalue() == BLOB


def test_other_403_fails_without_leaking_the_query() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(403, content=b"<Error><Code>AccessDenied</Code></Error>")

    with client_for(handler) as client, pytest.raises(DownloadError) as info:
        client.download("http://blob.test/v.mp4?X-Amz-Signature=s3cr3t", io.BytesIO(), what="v")
    assert "s3cr3t" not in str(info.value)
    assert "blob.test/v.mp4" in str(info.value)


def test_5xx_forever_fails_after_bounded_attempts() -> None:
    calls = {"n": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        return httpx.Response(503)

    with client_for(handler) as client, pytest.raises(DownloadError, match="attempts"):
        client.download("http://blob.test/v.mp4", io.BytesIO(), what="v")
    assert calls["n"] == FAST.attempts


def test_download_cap() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=BLOB)

    with client_for(handler, max_download_bytes=1000) as client:
        with pytest.raises(DownloadError, match="cap"):
            client.download("http://blob.test/v.mp4", io.BytesIO(), what="v")
