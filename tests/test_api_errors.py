"""Unit tests of the one translation point of httpx's exceptions (odyssey_data.api.errors)
and of the retry loop reading its attributes (MockTransport; the end-to-end behaviour
over real sockets is in test_faults.py, test_hostile_api.py and test_credentials.py)."""

from __future__ import annotations

import email.utils
import io
import pickle
import ssl
import time

import httpx
import pytest

from odyssey_data.api import OdysseyClient, RetryPolicy
from odyssey_data.api.credentials import Refused
from odyssey_data.api.errors import answer_error, attempt_failed, translate
from odyssey_data.errors import (
    ApiError,
    ApiResponseError,
    ConfigError,
    DownloadError,
    RateLimited,
)

KEY = "ody_unit_test_key_0123456789"
FAST = RetryPolicy(attempts=3, timeout_s=10, wait_initial_s=0.001, wait_max_s=0.01)
URL = "https://blob.test/v.mp4?X-Signature=secret"
REQUEST = httpx.Request("GET", URL)


def refused() -> httpx.ConnectError:
    exc = httpx.ConnectError("[Errno 111] Connection refused", request=REQUEST)
    exc.__context__ = ConnectionRefusedError(111, "Connection refused")
    return exc


def bad_certificate() -> httpx.ConnectError:
    exc = httpx.ConnectError("certificate verify failed", request=REQUEST)
    cause = ssl.SSLCertVerificationError(1, "certificate verify failed")
    cause.verify_message = "self-signed certificate"
    exc.__cause__ = cause
    return exc


@pytest.mark.parametrize(
    ("exc", "retryable", "reason", "why"),
    [
        (refused(), True, "connection refused", "ConnectError from https://blob.test/v.mp4"),
        (httpx.ConnectError("dns", request=REQUEST), True, "cannot connect", "ConnectError"),
        (httpx.ReadTimeout("slow", request=REQUEST), True, "timed out", "no answer within"),
        (httpx.RemoteProtocolError("cut", request=REQUEST), True, "connection dropped", "Remote"),
        (httpx.ReadError("reset", request=REQUEST), True, "network error", "ReadError from"),
        (httpx.UnsupportedProtocol("ftp", request=REQUEST), False, "UnsupportedProtocol", "not an"),
        (bad_certificate(), False, "cannot connect", "self-signed certificate"),
        (httpx.DecodingError("gzip", request=REQUEST), False, "DecodingError", "DecodingError"),
    ],
)
def test_httpx_errors_become_api_and_download_errors(
    exc: Exception, retryable: bool, reason: str, why: str
) -> None:
    api = translate(exc, "listing recordings", url=URL)
    assert type(api) is ApiError
    assert (api.retryable, api.reason, api.status_code, api.retry_after) == (
        retryable,
        reason,
        None,
        None,
    )
    assert str(api).startswith("listing recordings: cannot reach the API (")
    assert why in str(api)
    assert "secret" not in str(api)

    first = translate(exc, "video", url=URL, attempt=1)
    third = translate(exc, "video", url=URL, attempt=3)
    assert type(first) is DownloadError
    assert type(third) is DownloadError
    assert (first.retryable, first.reason) == (retryable, reason)
    assert str(first).startswith("video: download failed (")
    assert str(third).startswith("video: download failed after 3 attempts (")
    assert str(third).endswith("re-run the export to try again")
    assert "secret" not in str(third)


def test_refusals_and_invalid_urls_are_final() -> None:
    refusal = Refused("refusing to send the API's bearer token elsewhere")
    api = translate(refusal, "GET /stream-recordings", url=URL)
    download = translate(refusal, "video", url=URL, attempt=2)
    assert type(api) is ApiError
    assert type(download) is DownloadError
    assert str(api) == "GET /stream-recordings: refusing to send the API's bearer token elsewhere"
    assert not api.retryable
    assert not download.retryable

    invalid = httpx.InvalidURL("Invalid port: ':1'")
    redirect = translate(invalid, "GET /recordings/x", url="http://[::1")
    assert type(redirect) is ApiResponseError
    assert not redirect.retryable
    assert str(redirect) == "GET /recordings/x: redirected to an invalid URL"
    config = translate(invalid, "the API URL", url="http://[::1", config=True)
    assert type(config) is ConfigError
    assert "is not a valid URL (Invalid port: ':1')" in str(config)
    presigned = translate(invalid, "video", url="http://[::1", attempt=1)
    assert type(presigned) is DownloadError
    assert not presigned.retryable


def response(status: int, **headers: str) -> httpx.Response:
    return httpx.Response(status, headers=headers, request=REQUEST)


def test_answers_worth_another_try_carry_status_and_retry_after() -> None:
    api = answer_error(response(503, **{"Retry-After": "7"}), url=URL)
    assert type(api) is ApiError
    assert (api.status_code, api.retryable, api.retry_after, api.reason) == (
        503,
        True,
        7.0,
        "HTTP 503",
    )
    assert str(api) == "HTTP 503 from https://blob.test/v.mp4"

    later = email.utils.formatdate(time.time() + 30, usegmt=True)
    limited = answer_error(response(429, **{"Retry-After": later}), url=URL)
    assert limited is not None
    assert limited.status_code == 429
    assert limited.retry_after is not None
    assert 20 < limited.retry_after <= 31
    garbled = answer_error(response(408, **{"Retry-After": "soon"}), url=URL)
    assert garbled is not None
    assert garbled.retry_after is None

    download = answer_error(response(500), url=URL, what="video", attempt=4)
    assert type(download) is DownloadError
    assert (download.status_code, download.retryable, download.reason) == (500, True, "HTTP 500")
    assert str(download).startswith(
        "video: download failed after 4 attempts (HTTP 500 from https://blob.test/v.mp4)"
    )

    for final in (200, 206, 404, 403, 501, 505, 511):
        assert answer_error(response(final), url=URL) is None


def test_a_failed_attempt_names_its_reason_apart_from_its_message() -> None:
    error = attempt_failed("video", 2, "too slow: 5 bytes in 31 s from URL", reason="too slow")
    assert (error.retryable, error.reason, error.status_code) == (True, "too slow", None)
    assert str(error) == (
        "video: download failed after 2 attempts (too slow: 5 bytes in 31 s from URL); "
        "re-run the export to try again"
    )
    assert attempt_failed("video", 1, "short body").reason == "short body"


def client_for(handler: httpx.MockTransport) -> OdysseyClient:
    return OdysseyClient("http://api.test", KEY, transport=handler, retry=FAST)


def token(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json={"access_token": "tok", "expires_in": 3600})


def test_the_retry_loop_reads_the_attributes_and_spends_them() -> None:
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        if request.url.path == "/auth/token":
            return token(request)
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    with client_for(httpx.MockTransport(handler)) as client:
        with pytest.raises(ApiError, match=r"cannot reach the API .*ConnectError") as info:
            client.get_recording("r1")
    assert calls.count("/recordings/r1") == FAST.attempts
    assert client.api_retries == FAST.attempts - 1
    # It has had its retries: a loop around this one must not run them all again.
    assert info.value.retryable is False
    assert info.value.reason == "cannot connect"


def test_a_failing_token_is_not_retried_by_the_request_waiting_for_it() -> None:
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        raise httpx.ConnectTimeout("timed out", request=request)

    with client_for(httpx.MockTransport(handler)) as client:
        with pytest.raises(ApiError, match=r"^POST /auth/token: cannot reach the API"):
            client.get_recording("r1")
    assert calls == ["/auth/token"] * FAST.attempts  # not attempts x attempts


def test_rate_limits_outlasting_the_retries_stay_retryable_for_a_later_run() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/auth/token":
            return token(request)
        return httpx.Response(429, headers={"Retry-After": "0"})

    with client_for(httpx.MockTransport(handler)) as client:
        with pytest.raises(RateLimited, match="still failing after retries") as info:
            client.get_recording("r1")
    assert (info.value.status_code, info.value.retryable) == (429, True)


def test_a_download_failing_over_and_over_reports_status_and_attempts() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, headers={"Retry-After": "0"})

    with client_for(httpx.MockTransport(handler)) as client:
        with pytest.raises(DownloadError, match="after 3 attempts \\(HTTP 503 from") as info:
            client.download(URL, io.BytesIO(), what="video")
    assert (info.value.status_code, info.value.retryable) == (503, False)
    assert "secret" not in str(info.value)


def test_an_error_refreshing_an_expired_url_is_not_retried_by_the_download() -> None:
    refreshes: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(403, content=b"<Error>Request has expired</Error>")

    def refresh() -> str | None:
        refreshes.append(1)
        raise RateLimited("recording 'r1': still failing after retries (HTTP 429)")

    with client_for(httpx.MockTransport(handler)) as client:
        with pytest.raises(RateLimited):
            client.download(URL, io.BytesIO(), what="video", refresh_url=refresh)
    assert refreshes == [1]


def test_an_api_url_httpx_cannot_parse_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"^the API URL .* is not a valid URL \(Invalid port"):
        OdysseyClient("http://api.test:99x", KEY)
    with pytest.raises(ConfigError, match="is not a valid URL"):
        OdysseyClient("http://exa\x7fmple.test", KEY)


def test_transient_transport_errors_are_retried_then_the_download_goes_on() -> None:
    served = b"0123456789" * 100
    failures = [httpx.ReadError("reset", request=REQUEST), refused()]

    def handler(request: httpx.Request) -> httpx.Response:
        if failures:
            raise failures.pop(0)
        return httpx.Response(200, content=served, headers={"Content-Length": str(len(served))})

    sink = io.BytesIO()
    with client_for(httpx.MockTransport(handler)) as client:
        stats = client.download(URL, sink, what="video")
    assert (stats.attempts, sink.getvalue()) == (3, served)


def test_errors_keep_their_retry_decision_when_pickled() -> None:
    error = attempt_failed("video", 2, "HTTP 503 from URL", reason="HTTP 503", status_code=503)
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.status_code, copy.retryable, copy.reason) == (503, True, "HTTP 503")
    assert str(copy) == str(error)
