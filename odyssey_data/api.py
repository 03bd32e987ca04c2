"""The Odyssey REST API client and the downloader of presigned artifacts (httpx).

This is the only module that imports ``httpx``; its errors become the package's
:mod:`~odyssey_data.errors` here. One sync :class:`httpx.Client` pools connections for the
API and the presigned blob URLs alike (the bearer token is only sent to the API).

Retries (with exponential backoff and jitter, by ``stamina``) cover connect errors,
timeouts, dropped connections, short bodies, 408, 429 (honouring ``Retry-After``) and the
5xx that can heal (500, 502, 503, 504…; not 501 Not Implemented or 505). Other 4xx are
final, except a 401 from the API (the token is refreshed once) and the 403 of an expired
presigned URL (fresh URLs are asked for, and the download goes on). Each retry is logged
as one line, ``retrying GET URL in 1.6 s (attempt 2/6: connection refused)`` (logger
``odyssey_data.api``, level WARNING; the URL without its query string).

Credentials go only where they belong: the API key and the bearer token are sent only to
the ``api_url`` origin (scheme, host and port as given). ``POST /auth/token`` never
follows a redirect (the key is in its body); other API calls follow one only within the
origin; a request carrying a credential to any other origin is refused before it is
sent. Text a server sends back is shown only with the key, the token and every query
string redacted, and control characters neutralised. API answers are read up to
:data:`MAX_ANSWER_BYTES`.
"""

from __future__ import annotations

import email.utils
import hashlib
import logging
import os
import random
import re
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import IO, Any, TypeVar
from urllib.parse import quote

import httpcore
import httpx
import stamina

from odyssey_data._version import __version__
from odyssey_data.errors import (
    ApiError,
    ApiResponseError,
    AuthError,
    ConfigError,
    DownloadError,
    NotFoundError,
    RateLimited,
    printable,
    redact_url,
)
from odyssey_data.models import (
    Recording,
    RecordingInfo,
    RecordingPage,
    SimulationJob,
    SimulationJobDetail,
    SimulationJobPage,
    is_metadata_host,
)
from odyssey_data.options import RetryPolicy
from odyssey_data.progress import LIVE

__all__ = [
    "DEFAULT_API_URL",
    "DownloadStats",
    "OdysseyClient",
    "OffsetPaginator",
    "RetryPolicy",
    "resolve_credentials",
]

_Item = TypeVar("_Item")

log = logging.getLogger(__name__)

DEFAULT_API_URL = "https://api.odyssey.ml"
#: Refresh the token this long before it expires (the official client's margin).
TOKEN_MARGIN_S = 60.0
#: The most bytes of one API answer that are read (a page of 100 recordings is ~50 KB);
#: a larger answer is refused instead of filling memory.
MAX_ANSWER_BYTES = 32 << 20
#: The most entries a listing goes through (its ids are kept to skip duplicates).
MAX_LISTED = 1_000_000
#: Redirects an API call follows (within the API's origin only).
MAX_REDIRECTS = 5
_DEFAULT_PORTS = {"http": 80, "https": 443}
_QUERY = re.compile(r"\?[^\s'\"<>]*")


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    """Scheme, host and port: where a credential may go."""
    return (url.scheme, url.host, url.port or _DEFAULT_PORTS.get(url.scheme))


class _RedactHttpxLog(logging.Filter):
    """httpx logs full request URLs at INFO; presigned query strings are credentials."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                redact_url(str(a)) if isinstance(a, httpx.URL) else a for a in record.args
            )
        return True


class _RedactQueryLog(logging.Filter):
    """httpcore's debug traces show response headers: a ``Location`` may be presigned."""

    _QUERY = re.compile(r"\?[^\s'\"()\],]*")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "?" in message:
            record.msg, record.args = self._QUERY.sub("?<redacted>", message), None
        return True


logging.getLogger("httpx").addFilter(_RedactHttpxLog())
for _name in ("connection", "http11", "http2", "proxy", "socks"):
    logging.getLogger(f"httpcore.{_name}").addFilter(_RedactQueryLog())


#: Bytes asked of the socket per read. httpcore asks for 64 KiB, and each read then costs
#: ~100 µs of HTTP/1.1 parsing in Python: a 30 MB video spends more CPU in the parser than
#: in the kernel. 256 KiB reads download ~4x faster on a fast link (see
#: benchmarks/export_speed.py); TLS hands back at most one 16 KiB record per read anyway.
READ_BYTES = 256 << 10


class _WideReadStream(httpcore.NetworkStream):
    """A connection of httpcore's that reads up to :data:`READ_BYTES` at a time."""

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max(max_bytes, READ_BYTES), timeout)

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, timeout)

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        return _WideReadStream(self._inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _WideReadBackend(httpcore.NetworkBackend):
    """httpcore's network backend, with connections that read in wide chunks."""

    def __init__(self, inner: httpcore.NetworkBackend) -> None:
        self._inner = inner

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.NetworkStream:
        return _WideReadStream(
            self._inner.connect_tcp(host, port, timeout, local_address, socket_options)
        )

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Any = None
    ) -> httpcore.NetworkStream:
        return _WideReadStream(self._inner.connect_unix_socket(path, timeout, socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


_SSL_CONTEXTS: dict[tuple[str | None, str | None], ssl.SSLContext] = {}
_SSL_LOCK = threading.Lock()


def _ssl_context() -> ssl.SSLContext:
    """httpx's default TLS context (verification on), made once per CA setting.

    Loading the CA bundle costs ~30 ms of CPU; an export makes a client per download
    thread and per worker, and an SSL context is safe to share between threads. Keyed by
    ``SSL_CERT_FILE``/``SSL_CERT_DIR`` (which httpx honours), so changing them still counts.
    """
    key = (os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))
    with _SSL_LOCK:
        context = _SSL_CONTEXTS.get(key)
        if context is None:
            context = _SSL_CONTEXTS[key] = httpx.create_ssl_context()
        return context


def _widen_reads(client: httpx.Client) -> bool:
    """Make ``client``'s direct connections read :data:`READ_BYTES` at a time.

    httpx offers no option for it, so this reaches the connection pool of its default
    transport; where a future httpx/httpcore lays that out differently, nothing changes
    (downloads stay correct, only slower) and this returns False.
    """
    pool = getattr(getattr(client, "_transport", None), "_pool", None)
    backend = getattr(pool, "_network_backend", None)
    if not isinstance(backend, httpcore.SyncBackend):
        return False
    pool._network_backend = _WideReadBackend(backend)  # type: ignore[union-attr]
    return True


def resolve_credentials(api_url: str | None, api_key: str | None) -> tuple[str, str]:
    """Resolve the API URL and key from options, then ``ODYSSEY_API_URL``/``ODYSSEY_API_KEY``.

    Raises:
        ConfigError: no key was given, or the URL is not http(s).
    """
    url = (api_url or os.environ.get("ODYSSEY_API_URL") or DEFAULT_API_URL).rstrip("/")
    key = api_key or os.environ.get("ODYSSEY_API_KEY") or ""
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"the API URL {redact_url(url)!r} must start with http:// or https://")
    if not key:
        raise ConfigError(
            "no Odyssey API key: pass --api-key or set ODYSSEY_API_KEY "
            "(or try 'odyssey-data demo' to run against the local demo server)"
        )
    return url, key


@dataclass(slots=True)
class DownloadStats:
    """What one download took: bytes written, attempts made, URL refreshes.

    ``sha256`` is the hex SHA-256 of the bytes in ``dest`` once the download succeeded,
    hashed as the chunks arrived (re-read from ``dest`` only when a resumed download
    could not continue the running hash).
    """

    bytes: int = 0
    attempts: int = 0
    refreshes: int = 0
    sha256: str | None = None
    #: The full size the server announced, once known (``None`` when it did not say).
    size: int | None = None


@dataclass(slots=True)
class OffsetPaginator:
    """Offset pagination as a pure state machine (no I/O): the client drives it.

    The server may cap ``limit`` below what was asked, so the next offset advances by
    the number of items actually returned, until ``total`` is reached, an empty page
    arrives, or the caller's ``max_items`` is reached.
    """

    page_size: int = 100
    max_items: int | None = None
    offset: int = 0
    seen: int = 0
    done: bool = False

    def next_params(self) -> dict[str, int]:
        """Query parameters of the next page to request."""
        limit = self.page_size
        if self.max_items is not None:
            limit = max(1, min(limit, self.max_items - self.seen))
        return {"limit": limit, "offset": self.offset}

    def advance(self, returned: int, total: int) -> None:
        """Record a page of ``returned`` items out of ``total``."""
        self.offset += returned
        self.seen += returned
        if (
            returned == 0
            or self.offset >= total
            or (self.max_items is not None and self.seen >= self.max_items)
        ):
            self.done = True


class _Refused(Exception):
    """A request the client refuses to send (raised by its request hook)."""


#: The request extension that marks a download begun on https (see the request hook).
_HTTPS_ONLY = "odyssey_data.https_only"


class _Retryable(Exception):
    """A failed attempt worth repeating; ``wait_s`` overrides the backoff when set.

    ``status_code`` is the HTTP status that made it retryable (a 429, a 5xx), when an
    answer did: the decision travels as an attribute, never parsed back out of the text.
    """

    def __init__(
        self, message: str, wait_s: float | None = None, *, status_code: int | None = None
    ) -> None:
        super().__init__(message)
        self.wait_s = wait_s
        self.status_code = status_code


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _tls_failure(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    """The certificate verification error behind ``exc``, if that is what it is."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, ssl.SSLCertVerificationError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _is_transient_transport_error(exc: Exception) -> bool:
    # A bad scheme or a certificate that does not verify will not heal by retrying.
    return (
        isinstance(exc, httpx.TransportError)
        and not isinstance(exc, httpx.UnsupportedProtocol)
        and _tls_failure(exc) is None
    )


def _transport_reason(exc: Exception, url: str) -> str:
    """Why a request could not be made, for a message (never the URL's query)."""
    tls = _tls_failure(exc)
    if tls is not None:
        return (
            f"the TLS certificate of {redact_url(url)} does not verify "
            f"({tls.verify_message or 'verification failed'}); verification stays on: "
            "fix the server's certificate or point SSL_CERT_FILE at your CA bundle"
        )
    if isinstance(exc, httpx.UnsupportedProtocol):
        return f"{redact_url(url)} is not an http(s) URL"
    if isinstance(exc, httpx.TimeoutException):
        return f"{type(exc).__name__} from {redact_url(url)}: no answer within the timeout"
    return f"{type(exc).__name__} from {redact_url(url)}"


def _is_transient_status(status: int) -> bool:
    """Statuses worth another try: 408 and 429, and the 5xx that can heal (not 501 Not
    Implemented, 505 HTTP Version Not Supported, 511 Network Authentication Required)."""
    return status in (408, 429) or (status >= 500 and status not in (501, 505, 511))


def _short_reason(exc: BaseException) -> str:
    """A few words for a retry line: ``connection refused``, ``timed out``, ``HTTP 503``."""
    if isinstance(exc, _Retryable):
        return str(exc).split(" from ")[0]
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, ConnectionRefusedError):
            return "connection refused"
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    if isinstance(exc, httpx.ConnectError):
        return "cannot connect"
    if isinstance(exc, httpx.RemoteProtocolError):
        return "connection dropped"
    if isinstance(exc, httpx.NetworkError):
        return "network error"
    return type(exc).__name__


def _detail(response: httpx.Response) -> str:
    """The ``detail`` of an error answer, raw (see :meth:`OdysseyClient._scrub`)."""
    try:
        data = response.json()
    except (ValueError, UnicodeDecodeError, RecursionError):
        return ""
    if isinstance(data, dict) and isinstance(data.get("detail"), str):
        return str(data["detail"])[:400]
    return ""


def _read_capped(response: httpx.Response, what: str) -> httpx.Response:
    """``response`` (opened as a stream) read whole, refused above :data:`MAX_ANSWER_BYTES`."""
    length = response.headers.get("Content-Length", "")
    if length.isdigit() and int(length) > MAX_ANSWER_BYTES:
        raise ApiResponseError(
            f"{what}: the answer announces {int(length)} bytes, more than the "
            f"{MAX_ANSWER_BYTES} an API answer may have; refusing it"
        )
    chunks = []
    size = 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > MAX_ANSWER_BYTES:
            raise ApiResponseError(
                f"{what}: the answer is larger than the {MAX_ANSWER_BYTES} bytes an API "
                "answer may have; refusing it"
            )
        chunks.append(chunk)
    # Decoded already: the copy must not claim an encoding or the wire length.
    headers = [
        (k, v)
        for k, v in response.headers.multi_items()
        if k.lower() not in ("content-encoding", "content-length", "transfer-encoding")
    ]
    return httpx.Response(
        response.status_code, headers=headers, content=b"".join(chunks), request=response.request
    )


class OdysseyClient:
    """A sync client of the Odyssey recordings API.

    Args:
        api_url: base URL; default ``ODYSSEY_API_URL`` or ``https://api.odyssey.ml``.
        api_key: ``ody_…`` key; default ``ODYSSEY_API_KEY``. Never logged.
        transport: an httpx transport to swap the network (tests use ``MockTransport``).
        timeout_s: connect/read timeout of one request.
        retry: the retry policy.
        page_size: the ``limit`` asked per list page (the server may cap it).
        max_download_bytes: refuse a video or log larger than this.
        min_download_rate: bytes per second a download attempt must average once it has
            run for ``timeout_s`` (a server that trickles bytes just fast enough to beat
            the read timeout fails the attempt instead of holding it for ever).

    Example:
        >>> with OdysseyClient(api_url, api_key) as client:  # doctest: +SKIP
        ...     for info in client.list_recordings(limit=10):
        ...         print(info.stream_id)
    """

    def __init__(
        self,
        api_url: str | None = None,
        api_key: str | None = None,
        *,
        transport: httpx.BaseTransport | None = None,
        timeout_s: float = 30.0,
        retry: RetryPolicy | None = None,
        page_size: int = 100,
        max_download_bytes: int = 16 << 30,
        min_download_rate: float = 16 << 10,
    ) -> None:
        self.api_url, self._api_key = resolve_credentials(api_url, api_key)
        self.retry = retry or RetryPolicy()
        self.page_size = page_size
        self.max_download_bytes = max_download_bytes
        self.min_download_rate = min_download_rate
        self.timeout_s = timeout_s
        self._http = httpx.Client(
            transport=transport,
            verify=_ssl_context() if transport is None else True,
            timeout=httpx.Timeout(timeout_s, connect=min(10.0, timeout_s)),
            headers={"User-Agent": f"odyssey-data/{__version__}"},
            # API calls follow redirects only within the origin (see _request); downloads
            # of presigned URLs ask for them per request.
            follow_redirects=False,
            event_hooks={"request": [self._refuse_foreign_credentials]},
        )
        self._origin = _origin(httpx.URL(self.api_url))
        if transport is None:
            _widen_reads(self._http)
        self._token: str | None = None
        self._token_expires = 0.0
        self._lock = threading.Lock()
        self.api_retries = 0

    # -- lifecycle -------------------------------------------------------------------
    def close(self) -> None:
        """Close pooled connections."""
        self._http.close()

    def __enter__(self) -> OdysseyClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:  # never show the key
        return f"OdysseyClient(api_url={self.api_url!r})"

    # -- retry plumbing --------------------------------------------------------------
    def _attempts(self, method: str, url: Callable[[], str]) -> Iterator[Any]:
        """stamina's attempts, with our own backoff so that each retry is logged as one
        line saying what, when, which attempt and why."""
        policy = self.retry
        failed = 0
        started = time.monotonic()

        def hook(exc: Exception) -> bool | float:
            nonlocal failed
            if isinstance(exc, _Retryable):
                wait = exc.wait_s
            elif _is_transient_transport_error(exc):
                wait = None
            else:
                return False
            failed += 1
            if wait is None:
                base = policy.wait_initial_s * 2 ** (failed - 1)
                wait = base + random.uniform(0, base / 2)
            wait = min(wait, policy.wait_max_s)
            elapsed = time.monotonic() - started
            if failed < policy.attempts and elapsed + wait < policy.timeout_s:
                log.warning(
                    "retrying %s %s in %.1f s (attempt %d/%d: %s)",
                    method,
                    redact_url(url()),
                    wait,
                    failed + 1,
                    policy.attempts,
                    _short_reason(exc),
                )
            return wait

        yield from stamina.retry_context(
            on=hook,
            attempts=self.retry.attempts,
            timeout=self.retry.timeout_s,
            wait_initial=self.retry.wait_initial_s,
            wait_max=self.retry.wait_max_s,
        )

    # -- auth -----------------------------------------------------------------------
    def _fetch_token(self) -> None:
        url = f"{self.api_url}/auth/token"
        try:
            # The key is in the body: never re-sent to wherever a redirect points.
            response = self._send(
                "POST", url, json={"api_key": self._api_key}, auth=False, redirects=False
            )
        except _Retryable as exc:
            raise ApiError(f"POST /auth/token kept failing: {exc}") from exc
        except httpx.HTTPError as exc:
            # Translated here so that the request waiting for the token does not retry
            # the whole retry loop again (attempts x attempts).
            raise ApiError(
                f"POST /auth/token: cannot reach the API ({_transport_reason(exc, url)}); "
                "check the network or --api-url"
            ) from exc
        if response.status_code in (401, 403, 422):
            detail = self._scrub(_detail(response))
            reason = {401: "the API key is invalid", 403: "access denied", 422: "malformed key"}
            raise AuthError(
                f"authentication failed: {reason[response.status_code]} "
                f"(HTTP {response.status_code}{': ' + detail if detail else ''}). "
                "Check --api-key or ODYSSEY_API_KEY.",
                status_code=response.status_code,
            )
        if response.status_code in (404, 405):
            raise ApiError(
                f"no Odyssey API at {redact_url(self.api_url)} (POST /auth/token answered "
                f"HTTP {response.status_code}); check --api-url or ODYSSEY_API_URL (e.g. "
                f"{DEFAULT_API_URL}, without a path)",
                status_code=response.status_code,
            )
        if response.status_code >= 400:
            detail = _detail(response)
            raise ApiError(
                f"POST /auth/token: HTTP {response.status_code}"
                f"{': ' + detail if detail else ''}; check --api-url and try again later",
                status_code=response.status_code,
            )
        try:
            data = response.json()
        except (ValueError, UnicodeDecodeError) as exc:
            raise ApiResponseError(
                f"no Odyssey API at {redact_url(self.api_url)} (POST /auth/token answered "
                "with something that is not JSON); check --api-url or ODYSSEY_API_URL"
            ) from exc
        token = data.get("access_token") if isinstance(data, dict) else None
        if not isinstance(token, str) or not token:
            raise ApiResponseError("POST /auth/token: the answer has no 'access_token'")
        if not _TOKEN.fullmatch(token):
            # It goes into a header: no line breaks, no control characters, bounded.
            raise ApiResponseError(
                "POST /auth/token: the 'access_token' is not a bearer token (printable "
                "ASCII without spaces, at most 16384 characters)"
            )
        expires_in = data.get("expires_in", 3600)
        if (
            not isinstance(expires_in, int | float)
            or isinstance(expires_in, bool)
            or not 1 <= expires_in <= 366 * 86400
        ):
            # Missing, NaN, negative (a token refreshed before every call) or absurd.
            expires_in = 3600
        self._token = token
        margin = min(TOKEN_MARGIN_S, float(expires_in) / 2)
        self._token_expires = time.monotonic() + float(expires_in) - margin

    def _bearer(self, force: bool = False) -> str:
        with self._lock:
            if force or self._token is None or time.monotonic() >= self._token_expires:
                self._fetch_token()
            assert self._token is not None
            return self._token

    # -- requests --------------------------------------------------------------------
    def _send(
        self, method: str, url: str, *, auth: bool, redirects: bool = True, **kwargs: Any
    ) -> httpx.Response:
        """One API request with retries; returns the final (non-transient) response."""
        for attempt in self._attempts(method, lambda: url):
            with attempt:
                if attempt.num > 1:
                    self.api_retries += 1
                headers = {"Authorization": f"Bearer {self._bearer()}"} if auth else {}
                response = self._request(method, url, headers, redirects, **kwargs)
                if auth and response.status_code == 401:
                    # The token may have been revoked or expired early: refresh once.
                    headers = {"Authorization": f"Bearer {self._bearer(force=True)}"}
                    response = self._request(method, url, headers, redirects, **kwargs)
                if _is_transient_status(response.status_code):
                    raise _Retryable(
                        f"HTTP {response.status_code} from {redact_url(url)}",
                        _retry_after(response),
                        status_code=response.status_code,
                    )
                return response
        raise AssertionError("unreachable: stamina re-raises the last error")  # pragma: no cover

    def _request(
        self, method: str, url: str, headers: dict[str, str], redirects: bool, **kwargs: Any
    ) -> httpx.Response:
        """Send one API request, following redirects only within the API's origin.

        Raises:
            ApiError: a redirect out of the origin (or of a call that may not follow one,
                or too many), or an answer above :data:`MAX_ANSWER_BYTES`.
        """
        what = f"{method} {redact_url(url).removeprefix(self.api_url)}"
        request = self._http.build_request(method, url, headers=headers, **kwargs)
        for _ in range(MAX_REDIRECTS + 1):
            try:
                response = self._http.send(request, stream=True)
            except _Refused as exc:
                raise ApiError(f"{what}: {exc}") from exc
            try:
                if not response.has_redirect_location:
                    return _read_capped(response, what)
                location = response.headers["Location"]
            finally:
                response.close()
            try:
                target = request.url.join(location)
            except httpx.InvalidURL as exc:
                raise ApiResponseError(f"{what}: redirected to an invalid URL") from exc
            if not redirects:
                raise ApiError(
                    f"{what} was redirected (HTTP {response.status_code}) to "
                    f"{redact_url(str(target))}; the API key is sent only to --api-url "
                    "itself, never on to another URL: set --api-url to the API's final address",
                    status_code=response.status_code,
                )
            if _origin(target) != self._origin:
                raise ApiError(
                    f"{what} was redirected (HTTP {response.status_code}) to "
                    f"{redact_url(str(target))}, outside the API's origin {self.api_url}; "
                    "credentials are sent only there: set --api-url to the API's final "
                    "address",
                    status_code=response.status_code,
                )
            # Within the origin: the same call again (its query is in the new URL; a
            # 303 turns it into a GET without a body).
            kwargs.pop("params", None)
            if response.status_code == 303:
                method, kwargs = "GET", {}
            request = self._http.build_request(method, target, headers=headers, **kwargs)
        raise ApiError(f"{what}: more than {MAX_REDIRECTS} redirects; check --api-url")

    def _refuse_foreign_credentials(self, request: httpx.Request) -> None:
        """An httpx request hook, run before every request and redirect is sent: a bearer
        token goes to the API's origin or nowhere, a download that began on https never
        goes on over plain http, and no download is redirected to a link-local or cloud
        metadata address."""
        if "authorization" in request.headers and _origin(request.url) != self._origin:
            raise _Refused(
                f"refusing to send the API's bearer token to {redact_url(str(request.url))}, "
                f"outside the API's origin {self.api_url}"
            )
        if _HTTPS_ONLY in request.extensions and is_metadata_host(request.url.host):
            raise _Refused(
                f"refusing a redirect to {redact_url(str(request.url))}, a link-local or "
                "cloud metadata address"
            )
        if request.extensions.get(_HTTPS_ONLY) and request.url.scheme != "https":
            raise _Refused(
                f"refusing a redirect from https to plain http ({redact_url(str(request.url))}):"
                " the file could be altered on the way"
            )

    def _scrub(self, text: str) -> str:
        """Server text fit for a message: no key, no token, no query string, no control
        characters."""
        for secret in (self._api_key, self._token):
            if secret:
                text = text.replace(secret, "<redacted>")
        return printable(_QUERY.sub("?<redacted>", text))[:200]

    def _api_get(self, path: str, what: str, params: dict[str, int | str] | None = None) -> Any:
        url = f"{self.api_url}{path}"
        try:
            response = self._send("GET", url, auth=True, params=params)
        except _Retryable as exc:
            cls = RateLimited if exc.status_code == 429 else ApiError
            # The status as before: only a 429 is named (a 5xx stays a plain ApiError).
            status = 429 if exc.status_code == 429 else None
            raise cls(f"{what}: still failing after retries ({exc})", status_code=status) from exc
        except httpx.HTTPError as exc:
            raise ApiError(
                f"{what}: cannot reach the API ({_transport_reason(exc, url)}); "
                "check the network or --api-url"
            ) from exc
        if response.status_code == 404:
            raise NotFoundError(f"{what}: not found (HTTP 404)", status_code=404)
        if response.status_code in (401, 403):
            raise AuthError(
                f"{what}: not authorized (HTTP {response.status_code}); check the API key",
                status_code=response.status_code,
            )
        if response.status_code >= 400:
            detail = self._scrub(_detail(response))
            raise ApiError(
                f"{what}: HTTP {response.status_code}{': ' + detail if detail else ''}",
                status_code=response.status_code,
            )
        return self._json(response, what)

    @staticmethod
    def _json(response: httpx.Response, what: str) -> Any:
        try:
            return response.json()
        except (ValueError, UnicodeDecodeError) as exc:
            raise ApiResponseError(f"{what}: the answer is not valid JSON") from exc
        except RecursionError as exc:
            raise ApiResponseError(f"{what}: the answer is JSON nested too deeply") from exc

    # -- endpoints -------------------------------------------------------------------
    def list_page(self, limit: int, offset: int) -> RecordingPage:
        """One page of ``GET /stream-recordings``."""
        where = f"offset={offset}"
        data = self._api_get(
            "/stream-recordings",
            f"listing recordings (page at {where})",
            params={"limit": limit, "offset": offset},
        )
        return RecordingPage.from_json(data, where=where)

    def list_recordings(self, limit: int | None = None) -> Iterator[RecordingInfo]:
        """Every recording, most recent first, page by page until ``total``.

        Args:
            limit: stop after this many recordings.

        Raises:
            ApiError: the listing failed (the page is named in the message).
        """

        def fetch(limit: int, offset: int) -> tuple[Sequence[RecordingInfo], int, int | None]:
            page = self.list_page(limit, offset)
            return page.recordings, page.total, page.offset

        yield from self._paginate(fetch, lambda info: info.stream_id, limit)

    def _paginate(
        self,
        fetch: Callable[[int, int], tuple[Sequence[_Item], int, int | None]],
        key: Callable[[_Item], str],
        limit: int | None,
    ) -> Iterator[_Item]:
        """Drive :class:`OffsetPaginator` over ``fetch(limit, offset) -> (items, total,
        offset served)``.

        Every listing ends: a server that serves another offset than the one asked for,
        or a page that brings nothing new (it ignores ``offset``), or more than
        :data:`MAX_LISTED` items, is an error, not a loop.

        Raises:
            ApiResponseError: the server pages in a way that would never end.
        """
        pager = OffsetPaginator(page_size=self.page_size, max_items=limit)
        seen: set[str] = set()
        while not pager.done:
            params = pager.next_params()
            items, total, served = fetch(params["limit"], params["offset"])
            where = f"the page at offset={params['offset']}"
            if served is not None and served != params["offset"]:
                raise ApiResponseError(
                    f"listing: {where} says it is offset={served}: the API does not page "
                    "as asked; stopping (report it to the API's operators)"
                )
            pager.advance(len(items), total)
            new = 0
            for item in items:
                # New items arriving mid-listing shift offsets: never yield one twice.
                if key(item) not in seen:
                    seen.add(key(item))
                    new += 1
                    yield item
            if items and not new:
                raise ApiResponseError(
                    f"listing: {where} brings nothing new (the API repeats a page, as if it "
                    "ignored offset); stopping"
                )
            if len(seen) > MAX_LISTED:
                raise ApiResponseError(
                    f"listing: more than {MAX_LISTED} entries; pass --limit (or filters) to "
                    "export part of them"
                )

    def get_recording(self, stream_id: str) -> Recording:
        """``GET /recordings/{stream_id}``: fresh presigned URLs for one recording.

        Raises:
            NotFoundError: the API does not know ``stream_id``.
        """
        data = self._api_get(f"/recordings/{_path_segment(stream_id)}", f"recording {stream_id!r}")
        return Recording.from_json(data, stream_id=stream_id)

    def list_jobs_page(
        self, limit: int, offset: int, *, status: str | None = None, active: bool | None = None
    ) -> SimulationJobPage:
        """One page of ``GET /simulation-jobs`` (``status``/``active`` filter when given)."""
        where = f"offset={offset}"
        params: dict[str, int | str] = {"limit": limit, "offset": offset}
        if status is not None:
            params["status"] = status
        if active is not None:
            params["active"] = "true" if active else "false"
        data = self._api_get(
            "/simulation-jobs", f"listing simulation jobs (page at {where})", params=params
        )
        return SimulationJobPage.from_json(data, where=where)

    def list_simulation_jobs(
        self, status: str | None = None, active: bool | None = None, limit: int | None = None
    ) -> Iterator[SimulationJob]:
        """Every simulation job, page by page until ``total``.

        Args:
            status: only jobs of this status (``completed``, ``failed``…).
            active: only active (or, with ``False``, finished) jobs.
            limit: stop after this many jobs.

        Raises:
            ApiError: the listing failed (the page is named in the message).
        """

        def fetch(limit: int, offset: int) -> tuple[Sequence[SimulationJob], int, int | None]:
            page = self.list_jobs_page(limit, offset, status=status, active=active)
            return page.jobs, page.total, page.offset

        yield from self._paginate(fetch, lambda job: job.job_id, limit)

    def get_simulation_job(self, job_id: str) -> SimulationJobDetail:
        """``GET /simulation-jobs/{job_id}``: the job, its output streams' fresh URLs and
        its script (when the API returns it).

        Raises:
            NotFoundError: the API does not know ``job_id``.
        """
        data = self._api_get(
            f"/simulation-jobs/{_path_segment(job_id)}", f"simulation job {job_id!r}"
        )
        return SimulationJobDetail.from_json(data, job_id=job_id)

    # -- downloads -------------------------------------------------------------------
    def download(
        self,
        url: str,
        dest: IO[bytes],
        *,
        what: str,
        refresh_url: Callable[[], str | None] | None = None,
        stats: DownloadStats | None = None,
    ) -> DownloadStats:
        """Stream ``url`` into ``dest`` (a seekable binary file), verified and resumable.

        The byte count is checked against ``Content-Length`` (or ``Content-Range``); a
        short body (or a chunked body cut before its end) is a failed attempt, resumed
        with ``Range`` where the server allows it. An expired presigned URL (HTTP 403
        ``Request has expired``) is replaced by ``refresh_url()`` and the download goes
        on. A body above :attr:`max_download_bytes` is refused, and so is an attempt
        slower than :attr:`min_download_rate` on average (it is retried, resuming).
        A resume sends ``If-Range`` with the object's ETag (or ``Last-Modified``), and
        an object that changed in between (another ETag or total size) is downloaded
        again from its start. Redirects are followed, but never from https to http.

        Args:
            url: the (presigned) URL.
            dest: where the bytes go; emptied first.
            what: names the recording and file in messages.
            refresh_url: asks the API for a fresh URL when this one has expired.
            stats: updated in place as the download goes, so a caller still sees the
                attempts and refreshes of a download that failed.

        Raises:
            DownloadError: the download failed for good; the message names ``what`` and
                the URL without its query string.
        """
        stats = stats if stats is not None else DownloadStats()
        stats.sha256 = None
        # The running hash covers dest's first ``hashed`` bytes; reset on every restart
        # from byte 0, continued on a resume that starts exactly where it stopped.
        state: dict[str, Any] = {
            "url": url,
            "resumable": False,
            "hash": hashlib.sha256(),
            "hashed": 0,
        }
        dest.seek(0)
        dest.truncate()
        try:
            for attempt in self._attempts("GET", lambda: str(state["url"])):
                with attempt:
                    stats.attempts += 1
                    self._download_once(state, dest, what, refresh_url, stats)
                    stats.bytes = dest.tell()
                    stats.sha256 = _final_digest(state, dest, stats.bytes)
                    return stats
        except _Retryable as exc:
            raise DownloadError(
                f"{what}: download failed after {stats.attempts} attempts ({exc}); "
                "re-run the export to try again"
            ) from exc
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            tries = f"after {stats.attempts} attempts " if stats.attempts > 1 else ""
            raise DownloadError(
                f"{what}: download failed {tries}({_transport_reason(exc, state['url'])}); "
                "re-run the export to try again"
            ) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def _download_once(
        self,
        state: dict[str, Any],
        dest: IO[bytes],
        what: str,
        refresh_url: Callable[[], str | None] | None,
        stats: DownloadStats,
    ) -> None:
        url: str = state["url"]
        offset = dest.tell() if state["resumable"] else 0
        if offset == 0:
            dest.seek(0)
            dest.truncate()
            _reset_hash(state)
        elif state["hash"] is not None and state["hashed"] != offset:
            state["hash"] = None  # out of step with the file: hash it whole at the end
        # identity: byte counts and ranges are then those of the stored object.
        headers = {"Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
            if state.get("if_range"):
                # The rest of *this* object, or (changed since) all of the new one.
                headers["If-Range"] = state["if_range"]
        # A redirect from https to plain http is refused before it is followed (the hook).
        https_only = {_HTTPS_ONLY: url.lower().startswith("https:")}
        try:
            with self._http.stream(
                "GET", url, headers=headers, follow_redirects=True, extensions=https_only
            ) as response:
                self._read_download(state, response, dest, what, refresh_url, stats, offset)
        except _Refused as exc:
            raise DownloadError(f"{what}: {exc}") from exc

    def _read_download(
        self,
        state: dict[str, Any],
        response: httpx.Response,
        dest: IO[bytes],
        what: str,
        refresh_url: Callable[[], str | None] | None,
        stats: DownloadStats,
        offset: int,
    ) -> None:
        """One download attempt's answer: check it, then write its body to ``dest``."""
        url: str = state["url"]
        status = response.status_code
        if status == 403 and refresh_url is not None and _is_expired(response):
            if stats.refreshes >= self.retry.max_url_refreshes:
                raise DownloadError(
                    f"{what}: the presigned URL kept expiring "
                    f"({stats.refreshes} refreshes); check the machine's clock"
                )
            fresh = refresh_url()
            stats.refreshes += 1
            if not fresh:
                raise DownloadError(f"{what}: the API no longer gives a URL for it")
            state["url"] = fresh
            raise _Retryable(f"presigned URL expired at {redact_url(url)}", 0.0)
        if _is_transient_status(status):
            raise _Retryable(
                f"HTTP {status} from {redact_url(url)}",
                _retry_after(response),
                status_code=status,
            )
        if status == 416 and offset:
            # Nothing left to send from ``offset``: done if that is the whole size,
            # else the object changed under us; start over either way.
            size = _content_range_size(response)
            if size == offset:
                return
            state["resumable"] = False
            raise _Retryable(f"HTTP 416 resuming at byte {offset} of {redact_url(url)}")
        if status >= 400:
            hint = {
                403: " (access denied: the URL is wrong or was revoked; re-run the export "
                "for fresh URLs)",
                404: " (not found: the object store no longer has this file)",
            }.get(status, "")
            raise DownloadError(f"{what}: HTTP {status} from {redact_url(url)}{hint}")
        encoded = response.headers.get("Content-Encoding", "identity").lower() != "identity"
        if status == 200 and offset:
            # The server ignored our Range: start over.
            dest.seek(0)
            dest.truncate()
            offset = 0
            _reset_hash(state)
        try:
            total = None if encoded else _expected_total(response, offset)
        except _Retryable:
            state["resumable"] = False
            raise
        # Decoded bodies (Content-Encoding) cannot be resumed by byte ranges.
        state["resumable"] = not encoded and (
            response.headers.get("Accept-Ranges") == "bytes" or status == 206
        )
        _check_same_object(state, response, total, offset, url)
        stats.size = total
        if total is not None and total > self.max_download_bytes:
            raise DownloadError(
                f"{what}: {total} bytes is above the download cap of "
                f"{self.max_download_bytes} bytes (raise --max-download-bytes)"
            )
        written = offset
        digest = state["hash"]
        # As the bytes arrive (no re-chunking): what came before a break is kept and
        # the next attempt resumes after it. Each chunk is hashed once written, so the
        # file is never read again to checksum it.
        started, floor = time.monotonic(), self.min_download_rate
        for chunk in response.iter_bytes():
            written += len(chunk)
            elapsed = time.monotonic() - started
            if elapsed > self.timeout_s and written - offset < floor * elapsed:
                raise _Retryable(
                    f"too slow: {written - offset} bytes in {elapsed:.0f} s from "
                    f"{redact_url(url)}, below the minimum of {floor:.0f} bytes/s "
                    "(--min-download-rate)"
                )
            if written > self.max_download_bytes:
                raise DownloadError(
                    f"{what}: more than the download cap of {self.max_download_bytes} "
                    "bytes (raise --max-download-bytes)"
                )
            dest.write(chunk)
            LIVE.add_bytes(len(chunk))
            if digest is not None:
                digest.update(chunk)
                state["hashed"] += len(chunk)
        if total is not None and written != total:
            raise _Retryable(f"short body: got {written} of {total} bytes")


def _check_same_object(
    state: dict[str, Any], response: httpx.Response, total: int | None, offset: int, url: str
) -> None:
    """Remember the object's ETag/Last-Modified and size; on a resume (206), make sure
    the rest comes from the same object, else start over (a retry from byte 0)."""
    etag = response.headers.get("ETag")
    modified = response.headers.get("Last-Modified")
    if response.status_code == 206 and offset:
        changed = [
            name
            for name, before, now in (
                ("ETag", state.get("etag"), etag),
                ("Last-Modified", state.get("modified"), modified),
                ("size", state.get("size"), total),
            )
            if before is not None and now is not None and before != now
        ]
        if changed:
            state["resumable"] = False
            state["etag"] = state["modified"] = state["size"] = state["if_range"] = None
            raise _Retryable(
                f"the file at {redact_url(url)} changed during the download (its "
                f"{' and '.join(changed)} differ); downloading it again from the start"
            )
    state["etag"], state["modified"], state["size"] = etag, modified, total
    # If-Range takes a strong ETag or a date (RFC 9110 13.1.5).
    strong = etag if etag and not etag.startswith("W/") else None
    state["if_range"] = strong or modified


def _reset_hash(state: dict[str, Any]) -> None:
    state["hash"] = hashlib.sha256()
    state["hashed"] = 0


def _final_digest(state: dict[str, Any], dest: IO[bytes], size: int) -> str | None:
    """SHA-256 of dest's ``size`` bytes: the running hash, or a re-read when out of step
    (``None`` when that is needed and ``dest`` is write-only)."""
    digest = state["hash"]
    if digest is not None and state["hashed"] == size:
        return str(digest.hexdigest())
    if not dest.readable():
        return None
    dest.flush()
    dest.seek(0)
    digest = hashlib.sha256()
    while block := dest.read(1 << 20):
        digest.update(block)
    dest.seek(size)
    return str(digest.hexdigest())


#: What a bearer token may be: it goes into a header as it is.
_TOKEN = re.compile(r"[!-~]{1,16384}")


def _path_segment(value: str) -> str:
    """``value`` as one URL path segment: every reserved byte escaped, and the dot
    segments ``.``/``..`` too (an HTTP client would resolve them to another path)."""
    segment = quote(value, safe="")
    return segment.replace(".", "%2E") if segment in (".", "..") else segment


def _is_expired(response: httpx.Response) -> bool:
    # Only the start of the body: an error page can be large (or hostile).
    head = b""
    for chunk in response.iter_bytes(4096):
        head += chunk
        if len(head) >= 4096:
            break
    return b"expired" in head[:4096].lower()


def _content_range_size(response: httpx.Response) -> int | None:
    """The complete size in ``Content-Range: bytes */SIZE`` (416) or ``a-b/SIZE``."""
    size = response.headers.get("Content-Range", "").rpartition("/")[2].strip()
    return int(size) if size.isdigit() else None


def _expected_total(response: httpx.Response, offset: int) -> int | None:
    if response.status_code == 206:
        content_range = response.headers.get("Content-Range", "")
        try:
            span, _, size = content_range.removeprefix("bytes ").partition("/")
            start = int(span.split("-")[0])
            if start != offset:
                raise _Retryable(f"the server resumed at byte {start}, not {offset}")
            return int(size)
        except ValueError:
            length = response.headers.get("Content-Length")
            return offset + int(length) if length and length.isdigit() else None
    length = response.headers.get("Content-Length")
    return int(length) if length is not None and length.isdigit() else None
