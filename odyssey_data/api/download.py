"""The download of one presigned artifact: verified, resumable, bounded.

The byte count is checked against ``Content-Length`` (or ``Content-Range``); a short body
is a failed attempt, resumed with ``Range`` (and ``If-Range``, so that an object changed
in between is downloaded again from its start). An expired presigned URL is replaced and
the download goes on. A body above the size cap is refused, and an attempt slower than
the minimum rate is retried. The bytes are hashed (SHA-256) as they arrive.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO

import httpx

from odyssey_data.api.credentials import HTTPS_ONLY, Refused
from odyssey_data.api.errors import answer_error, attempt_failed, translate
from odyssey_data.api.retry import attempts
from odyssey_data.errors import DownloadError, redact_url
from odyssey_data.options import RetryPolicy
from odyssey_data.progress import LIVE

__all__ = ["DownloadLimits", "DownloadState", "DownloadStats", "ObjectVersion", "download_url"]


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


@dataclass(frozen=True, slots=True)
class DownloadLimits:
    """What a download may take: the client's caps (see :class:`OdysseyClient`)."""

    #: Refuse a body larger than this.
    max_bytes: int
    #: Bytes per second an attempt must average once it has run for ``timeout_s``.
    min_rate: float
    timeout_s: float


@dataclass(frozen=True, slots=True)
class ObjectVersion:
    """Which object an answer was: its ``ETag``, ``Last-Modified`` and full size (each
    ``None`` when the server did not say)."""

    etag: str | None
    modified: str | None
    size: int | None

    @property
    def if_range(self) -> str | None:
        """What a resume sends as ``If-Range``: a strong ETag, else the date (RFC 9110
        13.1.5); ``None`` when there is neither."""
        strong = self.etag if self.etag and not self.etag.startswith("W/") else None
        return strong or self.modified

    def changes(self, now: ObjectVersion) -> list[str]:
        """The names of what differs in ``now`` (of what both answers said)."""
        return [
            name
            for name, before, after in (
                ("ETag", self.etag, now.etag),
                ("Last-Modified", self.modified, now.modified),
                ("size", self.size, now.size),
            )
            if before is not None and after is not None and before != after
        ]


@dataclass(slots=True)
class DownloadState:
    """Where one download stands between its attempts."""

    #: The URL to ask next (a fresh one replaces an expired one).
    url: str
    #: Whether the next attempt may ask for the rest only (``Range``).
    resumable: bool = False
    #: SHA-256 of ``dest``'s first :attr:`hashed` bytes; ``None`` once out of step with
    #: the file (it is then hashed whole at the end).
    digest: hashlib._Hash | None = field(default_factory=hashlib.sha256)
    hashed: int = 0
    #: The object the last answer served, to resume only the same one.
    version: ObjectVersion | None = None
    #: The presigned URL expired: a fresh one is asked for before the next attempt.
    expired: bool = False

    def restart_hash(self) -> None:
        """``dest`` starts again from byte 0: so does the running hash."""
        self.digest = hashlib.sha256()
        self.hashed = 0


def download_url(
    http: httpx.Client,
    policy: RetryPolicy,
    limits: DownloadLimits,
    url: str,
    dest: IO[bytes],
    *,
    what: str,
    refresh_url: Callable[[], str | None] | None = None,
    stats: DownloadStats | None = None,
) -> DownloadStats:
    """Stream ``url`` into ``dest`` with ``http``, retried by ``policy`` within ``limits``
    (see :meth:`OdysseyClient.download <odyssey_data.api.OdysseyClient.download>`).

    Raises:
        DownloadError: the download failed for good.
    """
    return _Download(http, policy, limits, what, refresh_url).run(url, dest, stats)


class _Download:
    """One download's attempts, from the first to the last."""

    def __init__(
        self,
        http: httpx.Client,
        policy: RetryPolicy,
        limits: DownloadLimits,
        what: str,
        refresh_url: Callable[[], str | None] | None,
    ) -> None:
        self.http = http
        self.policy = policy
        self.limits = limits
        self.what = what
        self.refresh_url = refresh_url

    def run(self, url: str, dest: IO[bytes], stats: DownloadStats | None) -> DownloadStats:
        stats = stats if stats is not None else DownloadStats()
        stats.sha256 = None
        # The running hash is reset on every restart from byte 0, continued on a resume
        # that starts exactly where it stopped.
        state = DownloadState(url)
        dest.seek(0)
        dest.truncate()
        # Each failed attempt raises the error the download fails with should it be the
        # last one (see api.errors): what leaves this loop is already the final error.
        for attempt in attempts(self.policy, "GET", lambda: state.url):
            if state.expired:
                # Outside the attempt: the API's own retries ran, its errors are final.
                self._refresh(state, stats)
            with attempt:
                stats.attempts += 1
                self._once(state, dest, stats)
                stats.bytes = dest.tell()
                stats.sha256 = _final_digest(state, dest, stats.bytes)
                return stats
        raise AssertionError("unreachable: stamina re-raises the last error")  # pragma: no cover

    def _refresh(self, state: DownloadState, stats: DownloadStats) -> None:
        """Replace the expired URL by a fresh one from the API."""
        assert self.refresh_url is not None
        fresh = self.refresh_url()
        stats.refreshes += 1
        if not fresh:
            raise DownloadError(f"{self.what}: the API no longer gives a URL for it")
        state.url, state.expired = fresh, False

    def _failed(
        self,
        stats: DownloadStats,
        detail: str,
        reason: str | None = None,
        wait: float | None = None,
    ) -> DownloadError:
        """This attempt failed in a way the next one may mend (see :func:`attempt_failed`)."""
        return attempt_failed(self.what, stats.attempts, detail, reason=reason, retry_after=wait)

    def _once(self, state: DownloadState, dest: IO[bytes], stats: DownloadStats) -> None:
        url = state.url
        offset = dest.tell() if state.resumable else 0
        if offset == 0:
            dest.seek(0)
            dest.truncate()
            state.restart_hash()
        elif state.digest is not None and state.hashed != offset:
            state.digest = None  # out of step with the file: hash it whole at the end
        # identity: byte counts and ranges are then those of the stored object.
        headers = {"Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
            if_range = state.version.if_range if state.version is not None else None
            if if_range:
                # The rest of *this* object, or (changed since) all of the new one.
                headers["If-Range"] = if_range
        # A redirect from https to plain http is refused before it is followed (the hook).
        https_only = {HTTPS_ONLY: url.lower().startswith("https:")}
        try:
            with self.http.stream(
                "GET", url, headers=headers, follow_redirects=True, extensions=https_only
            ) as response:
                self._read(state, response, dest, stats, offset)
        except (httpx.HTTPError, httpx.InvalidURL, Refused) as exc:
            raise translate(exc, self.what, url=url, attempt=stats.attempts) from exc

    def _read(
        self,
        state: DownloadState,
        response: httpx.Response,
        dest: IO[bytes],
        stats: DownloadStats,
        offset: int,
    ) -> None:
        """One download attempt's answer: check it, then write its body to ``dest``."""
        url = state.url
        status = response.status_code
        if status == 403 and self.refresh_url is not None and _is_expired(response):
            if stats.refreshes >= self.policy.max_url_refreshes:
                raise DownloadError(
                    f"{self.what}: the presigned URL kept expiring "
                    f"({stats.refreshes} refreshes); check the machine's clock"
                )
            state.expired = True
            raise self._failed(stats, f"presigned URL expired at {redact_url(url)}", wait=0.0)
        failure = answer_error(response, url=url, what=self.what, attempt=stats.attempts)
        if failure is not None:
            raise failure
        if status == 416 and offset:
            # Nothing left to send from ``offset``: done if that is the whole size,
            # else the object changed under us; start over either way.
            size = _content_range_size(response)
            if size == offset:
                return
            state.resumable = False
            raise self._failed(stats, f"HTTP 416 resuming at byte {offset} of {redact_url(url)}")
        if status >= 400:
            hint = {
                403: " (access denied: the URL is wrong or was revoked; re-run the export "
                "for fresh URLs)",
                404: " (not found: the object store no longer has this file)",
            }.get(status, "")
            raise DownloadError(f"{self.what}: HTTP {status} from {redact_url(url)}{hint}")
        encoded = response.headers.get("Content-Encoding", "identity").lower() != "identity"
        if status == 200 and offset:
            # The server ignored our Range: start over.
            dest.seek(0)
            dest.truncate()
            offset = 0
            state.restart_hash()
        start = None if encoded else _resumed_at(response)
        if start is not None and start != offset:
            state.resumable = False
            raise self._failed(stats, f"the server resumed at byte {start}, not {offset}")
        total = None if encoded else _expected_total(response, offset, start)
        # Decoded bodies (Content-Encoding) cannot be resumed by byte ranges.
        state.resumable = not encoded and (
            response.headers.get("Accept-Ranges") == "bytes" or status == 206
        )
        self._check_same_object(state, stats, response, total, offset)
        stats.size = total
        if total is not None and total > self.limits.max_bytes:
            raise DownloadError(
                f"{self.what}: {total} bytes is above the download cap of "
                f"{self.limits.max_bytes} bytes (raise --max-download-bytes)"
            )
        written = offset
        digest = state.digest
        # As the bytes arrive (no re-chunking): what came before a break is kept and
        # the next attempt resumes after it. Each chunk is hashed once written, so the
        # file is never read again to checksum it.
        started, floor = time.monotonic(), self.limits.min_rate
        for chunk in response.iter_bytes():
            written += len(chunk)
            elapsed = time.monotonic() - started
            if elapsed > self.limits.timeout_s and written - offset < floor * elapsed:
                slow = f"too slow: {written - offset} bytes in {elapsed:.0f} s"
                raise self._failed(
                    stats,
                    f"{slow} from {redact_url(url)}, below the minimum of {floor:.0f} "
                    "bytes/s (--min-download-rate)",
                    reason=slow,
                )
            if written > self.limits.max_bytes:
                raise DownloadError(
                    f"{self.what}: more than the download cap of {self.limits.max_bytes} "
                    "bytes (raise --max-download-bytes)"
                )
            dest.write(chunk)
            LIVE.add_bytes(len(chunk))
            if digest is not None:
                digest.update(chunk)
                state.hashed += len(chunk)
        if total is not None and written != total:
            raise self._failed(stats, f"short body: got {written} of {total} bytes")

    def _check_same_object(
        self,
        state: DownloadState,
        stats: DownloadStats,
        response: httpx.Response,
        total: int | None,
        offset: int,
    ) -> None:
        """Remember the object's ETag/Last-Modified and size; on a resume (206), make sure
        the rest comes from the same object, else start over (a retry from byte 0)."""
        headers = response.headers
        now = ObjectVersion(headers.get("ETag"), headers.get("Last-Modified"), total)
        if response.status_code == 206 and offset and state.version is not None:
            changed = state.version.changes(now)
            if changed:
                state.resumable = False
                state.version = None
                change = (
                    f"the file at {redact_url(state.url)} changed during the download (its "
                    f"{' and '.join(changed)} differ); downloading it again"
                )
                raise self._failed(stats, f"{change} from the start", reason=change)
        state.version = now


def _final_digest(state: DownloadState, dest: IO[bytes], size: int) -> str | None:
    """SHA-256 of dest's ``size`` bytes: the running hash, or a re-read when out of step
    (``None`` when that is needed and ``dest`` is write-only)."""
    digest = state.digest
    if digest is not None and state.hashed == size:
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


def _resumed_at(response: httpx.Response) -> int | None:
    """The first byte a 206 answer sends (``Content-Range: bytes START-END/SIZE``)."""
    if response.status_code != 206:
        return None
    span = response.headers.get("Content-Range", "").removeprefix("bytes ").partition("/")[0]
    try:
        return int(span.split("-")[0])
    except ValueError:
        return None


def _expected_total(response: httpx.Response, offset: int, start: int | None) -> int | None:
    """The full size of the object (the bytes before ``offset`` included); ``start`` is
    :func:`_resumed_at`'s."""
    if response.status_code == 206:
        try:
            if start is None:
                raise ValueError("no range")
            return int(response.headers.get("Content-Range", "").partition("/")[2])
        except ValueError:
            length = response.headers.get("Content-Length")
            return offset + int(length) if length and length.isdigit() else None
    length = response.headers.get("Content-Length")
    return int(length) if length is not None and length.isdigit() else None
