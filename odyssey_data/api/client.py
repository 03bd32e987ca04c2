"""The Odyssey REST API client: its connections, token, requests and endpoints.

One sync :class:`httpx.Client` pools connections for the API and the presigned blob URLs
alike (the bearer token is only sent to the API). Other 4xx are final, except a 401 from
the API (the token is refreshed once). ``POST /auth/token`` never follows a redirect (the
key is in its body); other API calls follow one only within the origin. API answers are
read up to :data:`MAX_ANSWER_BYTES`.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import IO, Any
from urllib.parse import quote

import httpx

from odyssey_data._version import __version__
from odyssey_data.api.credentials import (
    DEFAULT_API_URL,
    CredentialGuard,
    Refused,
    origin,
    resolve_credentials,
    scrub,
)
from odyssey_data.api.download import DownloadLimits, DownloadStats, download_url
from odyssey_data.api.errors import answer_error, is_transient_status, translate
from odyssey_data.api.paging import paginate
from odyssey_data.api.retry import attempts
from odyssey_data.api.transport import ssl_context, widen_reads
from odyssey_data.errors import (
    ApiError,
    ApiResponseError,
    AuthError,
    NotFoundError,
    RateLimited,
    redact_url,
)
from odyssey_data.models import (
    Recording,
    RecordingInfo,
    RecordingPage,
    SimulationJob,
    SimulationJobDetail,
    SimulationJobPage,
)
from odyssey_data.options import ClientOptions, RetryPolicy

__all__ = ["MAX_ANSWER_BYTES", "OdysseyClient", "open_client"]

#: Refresh the token this long before it expires (the official client's margin).
TOKEN_MARGIN_S = 60.0
#: The most bytes of one API answer that are read (a page of 100 recordings is ~50 KB);
#: a larger answer is refused instead of filling memory.
MAX_ANSWER_BYTES = 32 << 20

#: Redirects an API call follows (within the API's origin only).
MAX_REDIRECTS = 5

#: What a bearer token may be: it goes into a header as it is.
_TOKEN = re.compile(r"[!-~]{1,16384}")


def _path_segment(value: str) -> str:
    """``value`` as one URL path segment: every reserved byte escaped, and the dot
    segments ``.``/``..`` too (an HTTP client would resolve them to another path)."""
    segment = quote(value, safe="")
    return segment.replace(".", "%2E") if segment in (".", "..") else segment


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
        try:
            guard = CredentialGuard(self.api_url)
        except httpx.InvalidURL as exc:
            raise translate(exc, "the API URL", url=self.api_url, config=True) from exc
        self._http = httpx.Client(
            transport=transport,
            verify=ssl_context() if transport is None else True,
            timeout=httpx.Timeout(timeout_s, connect=min(10.0, timeout_s)),
            headers={"User-Agent": f"odyssey-data/{__version__}"},
            # API calls follow redirects only within the origin (see _request); downloads
            # of presigned URLs ask for them per request.
            follow_redirects=False,
            event_hooks={"request": [guard]},
        )
        self._origin = guard.origin
        if transport is None:
            widen_reads(self._http)
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

    # -- auth -----------------------------------------------------------------------
    def _fetch_token(self) -> None:
        url = f"{self.api_url}/auth/token"
        try:
            # The key is in the body: never re-sent to wherever a redirect points.
            response = self._send(
                "POST",
                url,
                "POST /auth/token",
                json={"api_key": self._api_key},
                auth=False,
                redirects=False,
            )
        except ApiError as exc:
            if exc.status_code is None or not is_transient_status(exc.status_code):
                raise
            raise ApiError(f"POST /auth/token kept failing: {exc}") from exc
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
        self,
        method: str,
        url: str,
        what: str,
        *,
        auth: bool,
        redirects: bool = True,
        **kwargs: Any,
    ) -> httpx.Response:
        """One API request with retries; returns the final (non-transient) response.

        Raises:
            ApiError: the API cannot be reached (the message starts with ``what``), or
                it still answered a status worth another try (``status_code``) when the
                retries ran out (the message is only ``HTTP 503 from URL``).
        """
        for attempt in attempts(self.retry, method, lambda: url):
            with attempt:
                if attempt.num > 1:
                    self.api_retries += 1
                try:
                    headers = {"Authorization": f"Bearer {self._bearer()}"} if auth else {}
                    response = self._request(method, url, headers, redirects, **kwargs)
                    if auth and response.status_code == 401:
                        # The token may have been revoked or expired early: refresh once.
                        headers = {"Authorization": f"Bearer {self._bearer(force=True)}"}
                        response = self._request(method, url, headers, redirects, **kwargs)
                except httpx.HTTPError as exc:
                    raise translate(exc, what, url=url) from exc
                failure = answer_error(response, url=url)
                if failure is not None:
                    raise failure
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
            except Refused as exc:
                raise translate(exc, what, url=str(request.url)) from exc
            try:
                if not response.has_redirect_location:
                    return _read_capped(response, what)
                location = response.headers["Location"]
            finally:
                response.close()
            try:
                target = request.url.join(location)
            except httpx.InvalidURL as exc:
                raise translate(exc, what, url=location) from exc
            if not redirects:
                raise ApiError(
                    f"{what} was redirected (HTTP {response.status_code}) to "
                    f"{redact_url(str(target))}; the API key is sent only to --api-url "
                    "itself, never on to another URL: set --api-url to the API's final address",
                    status_code=response.status_code,
                )
            if origin(target) != self._origin:
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

    def _scrub(self, text: str) -> str:
        """Server text fit for a message (see :func:`~odyssey_data.api.credentials.scrub`)."""
        return scrub(text, (self._api_key, self._token))

    def _api_get(self, path: str, what: str, params: dict[str, int | str] | None = None) -> Any:
        url = f"{self.api_url}{path}"
        try:
            response = self._send("GET", url, what, auth=True, params=params)
        except ApiError as exc:
            if exc.status_code is None or not is_transient_status(exc.status_code):
                raise
            cls = RateLimited if exc.status_code == 429 else ApiError
            # The status as before: only a 429 is named (a 5xx stays a plain ApiError).
            status = 429 if exc.status_code == 429 else None
            raise cls(f"{what}: still failing after retries ({exc})", status_code=status) from exc
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

        yield from paginate(fetch, lambda info: info.stream_id, self.page_size, limit)

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

        yield from paginate(fetch, lambda job: job.job_id, self.page_size, limit)

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
        return download_url(
            self._http,
            self.retry,
            DownloadLimits(self.max_download_bytes, self.min_download_rate, self.timeout_s),
            url,
            dest,
            what=what,
            refresh_url=refresh_url,
            stats=stats,
        )


def open_client(options: ClientOptions) -> OdysseyClient:
    """An API client with these client options: the one way the package makes one (the
    export's driver and workers, ``list_recordings``, the ``list`` command).

    Raises:
        ConfigError: no API key was given or found in the environment, or a bad URL.
    """
    return OdysseyClient(
        options.api_url,
        options.api_key,
        retry=options.retry,
        max_download_bytes=options.max_download_bytes,
        min_download_rate=options.min_download_rate,
        timeout_s=options.timeout_s,
    )
