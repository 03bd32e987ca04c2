"""Credentials go only where they belong: the API's origin, over the scheme given.

Misbehaving servers on 127.0.0.1 (``raw_http``): an API that redirects the token call or
its other calls to another server, to another port, from https to plain http; error
details that echo the key, the token and presigned query strings with terminal escapes.
A second server stands for "elsewhere" and must never see a request.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import FAST_RETRY
from raw_http import (
    KEY,
    SIGNATURE,
    Conn,
    RawHTTPServer,
    Seen,
    self_signed_certificate,
    serve_api,
    tls_context,
)

from odyssey_data import cli
from odyssey_data.api import OdysseyClient
from odyssey_data.errors import ApiError, ApiResponseError, DownloadError
from odyssey_data.models import Recording

DATA = bytes(range(256)) * 64


@pytest.fixture
def elsewhere() -> Iterator[RawHTTPServer]:
    """A server no credential may ever reach: it answers like an API, and records."""

    def respond(seen: Seen, conn: Conn) -> None:
        if not serve_api(seen, conn, server.base_url):
            conn.json(200, {"recordings": [], "total": 0})

    with RawHTTPServer(respond) as server:
        yield server


def _redirecting_api(status: int, token_to: str | None, calls_to: str | None) -> RawHTTPServer:
    def respond(seen: Seen, conn: Conn) -> None:
        if seen.path == "/auth/token" and token_to is not None:
            conn.send(status, b"", {"Location": f"{token_to}/auth/token"})
        elif seen.path == "/stream-recordings" and calls_to is not None:
            conn.send(status, b"", {"Location": f"{calls_to}/stream-recordings?limit=9"})
        elif not serve_api(seen, conn, server.base_url):
            conn.json(200, {"recordings": [], "total": 0})

    server = RawHTTPServer(respond)
    return server


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_the_token_call_never_follows_a_redirect(
    status: int, elsewhere: RawHTTPServer, capsys: pytest.CaptureFixture[str]
) -> None:
    with _redirecting_api(status, elsewhere.base_url, None) as api:
        with OdysseyClient(api.base_url, KEY, retry=FAST_RETRY) as client:
            with pytest.raises(ApiError, match=r"POST /auth/token was redirected") as info:
                client.list_page(10, 0)
        assert KEY not in str(info.value)
        assert elsewhere.requests == []  # the key went nowhere else
        # The CLI: one line, exit 1.
        code = cli.main(["list", "--api-url", api.base_url, "--api-key", KEY])
    err = capsys.readouterr().err
    assert code == cli.EXIT_FATAL
    assert err.count("\n") == 1, err
    assert "redirected" in err
    assert KEY not in err
    assert elsewhere.requests == []


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_api_calls_follow_no_redirect_out_of_the_origin(
    status: int, elsewhere: RawHTTPServer
) -> None:
    with _redirecting_api(status, None, elsewhere.base_url) as api:
        with OdysseyClient(api.base_url, KEY, retry=FAST_RETRY) as client:
            with pytest.raises(ApiError, match="outside the API's origin") as info:
                client.list_page(10, 0)
    assert elsewhere.requests == []  # the bearer token went nowhere else
    assert "raw-token" not in str(info.value)


def test_another_port_of_the_same_host_is_another_origin(elsewhere: RawHTTPServer) -> None:
    assert elsewhere.base_url.startswith("http://127.0.0.1:")
    with _redirecting_api(307, None, elsewhere.base_url.replace("127.0.0.1", "localhost")) as api:
        with OdysseyClient(api.base_url, KEY, retry=FAST_RETRY) as client:
            with pytest.raises(ApiError, match="outside the API's origin"):
                client.list_page(10, 0)
    assert elsewhere.requests == []


def test_a_redirect_within_the_origin_is_followed_with_the_token() -> None:
    def respond(seen: Seen, conn: Conn) -> None:
        if seen.path == "/stream-recordings":
            conn.send(308, b"", {"Location": "/v2/stream-recordings?limit=5&offset=0"})
        elif seen.path == "/v2/stream-recordings":
            conn.json(200, {"recordings": [{"stream_id": "a"}], "total": 1})
        else:
            assert serve_api(seen, conn, server.base_url)

    with RawHTTPServer(respond) as server:
        with OdysseyClient(server.base_url, KEY, retry=FAST_RETRY) as client:
            page = client.list_page(5, 0)
    assert [r.stream_id for r in page.recordings] == ["a"]
    moved = [s for s in server.requests if s.path == "/v2/stream-recordings"]
    assert moved[0].headers["authorization"] == "Bearer raw-token"


def test_a_redirect_loop_within_the_origin_ends() -> None:
    def respond(seen: Seen, conn: Conn) -> None:
        if seen.path.startswith("/stream-recordings"):
            conn.send(307, b"", {"Location": f"/stream-recordings/{seen.index}"})
        else:
            assert serve_api(seen, conn, server.base_url)

    with RawHTTPServer(respond) as server:
        with OdysseyClient(server.base_url, KEY, retry=FAST_RETRY) as client:
            with pytest.raises(ApiError, match="more than 5 redirects"):
                client.list_page(5, 0)
        assert server.count("/stream-recordings") == 6


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    pytest.importorskip("cryptography.x509")
    return self_signed_certificate(tmp_path_factory.mktemp("tls"))


def test_https_to_http_is_refused_for_api_calls_and_downloads(
    certificate: tuple[Path, Path], elsewhere: RawHTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
    plain = elsewhere.base_url  # http://127.0.0.1:PORT

    def respond(seen: Seen, conn: Conn) -> None:
        if seen.path == "/stream-recordings":
            # The same host, downgraded: a proxy's careless "redirect_slashes".
            conn.send(307, b"", {"Location": f"{plain}/stream-recordings/"})
        elif seen.path.startswith("/recordings/"):
            url = f"{server.base_url}/blob/video.mp4?X-Amz-Signature={SIGNATURE}"
            conn.json(200, {"stream_id": "r1", "video_url": url})
        elif seen.path == "/blob/video.mp4":
            conn.send(302, b"", {"Location": f"{plain}/blob/video.mp4"})
        else:
            assert serve_api(seen, conn, server.base_url)

    with RawHTTPServer(respond, tls=tls_context(certificate)) as server:
        with OdysseyClient(server.base_url, KEY, retry=FAST_RETRY) as client:
            with pytest.raises(ApiError, match="outside the API's origin"):
                client.list_page(5, 0)
            url = client.get_recording("r1").video_url
            assert url is not None
            with pytest.raises(DownloadError, match="from https to plain http") as info:
                client.download(url, io.BytesIO(), what="recording 'r1' video")
    assert elsewhere.requests == []  # nothing was sent in clear text
    assert SIGNATURE not in str(info.value)


def test_error_details_are_redacted_and_neutralised(capsys: pytest.CaptureFixture[str]) -> None:
    """A server that echoes what it got: the key, the token, a presigned URL, and terminal
    escapes (clear screen, retitle, a carriage return that hides the text before it)."""
    echo = (
        f"bad request from {KEY} with Bearer raw-token; see "
        f"https://bucket.example/v.mp4?X-Amz-Signature={SIGNATURE}&x=1 "
        "\x1b[2J\x1b]0;pwned\x07\rOK\u202e"
    )

    def respond(seen: Seen, conn: Conn) -> None:
        if seen.path == "/stream-recordings":
            conn.json(400, {"detail": echo})
        elif seen.path == "/auth/token" and seen.headers.get("x-test") == "refuse":
            conn.json(401, {"detail": echo})
        else:
            assert serve_api(seen, conn, server.base_url)

    texts = []
    with RawHTTPServer(respond) as server:
        with OdysseyClient(server.base_url, KEY, retry=FAST_RETRY) as client:
            with pytest.raises(ApiError) as info:
                client.list_page(5, 0)
            texts.append(str(info.value))
        # The token call's own error (HTTP 401 with the echo).
        # (This client holds no token: "raw-token" is just text to it.)
        with OdysseyClient(server.base_url, KEY, retry=FAST_RETRY) as client:
            client._http.headers["X-Test"] = "refuse"
            with pytest.raises(ApiError, match="authentication failed") as info:
                client.list_page(5, 0)
        texts.append(str(info.value).replace("raw-token", ""))
        code = cli.main(["list", "--api-url", server.base_url, "--api-key", KEY])
    err = capsys.readouterr().err
    assert code == cli.EXIT_FATAL
    texts.append(err)
    for text in texts:
        for secret in (KEY, "raw-token", SIGNATURE, "\x1b", "\x07", "\r", "\u202e"):
            assert secret not in text, (secret, text)
        assert "<redacted>" in text
        assert "\\x1b[2J" in text  # shown, harmless


@pytest.mark.parametrize(
    "host", ["169.254.169.254", "[fe80::1]", "metadata.google.internal", "[::ffff:169.254.1.1]"]
)
def test_nothing_is_fetched_from_a_cloud_metadata_address(host: str) -> None:
    """Unit tests (MockTransport, so a failure sends nothing off this machine): an
    artifact URL, or a redirect of one, to a link-local or metadata-service host would
    copy the machine's cloud credentials into the dataset."""
    with pytest.raises(ApiResponseError, match="link-local or cloud metadata"):
        Recording.from_json(
            {"stream_id": "r", "video_url": f"http://{host}/latest/meta-data/"}, stream_id="r"
        )
    asked: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        asked.append(str(request.url))
        return httpx.Response(302, headers={"Location": f"http://{host}/latest/meta-data/"})

    transport = httpx.MockTransport(handler)
    with OdysseyClient("https://api.example", KEY, transport=transport) as client:
        with pytest.raises(DownloadError, match="link-local or cloud metadata"):
            client.download("https://bucket.example/v.mp4", io.BytesIO(), what="v")
    assert asked == ["https://bucket.example/v.mp4"]
