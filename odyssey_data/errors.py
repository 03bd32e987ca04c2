"""The exceptions of odyssey-data.

Every error the package raises on purpose derives from :class:`OdysseyDataError`, so a
caller can catch one name. Errors from httpx, PyAV, pyarrow and fsspec are translated at
the module that talks to them (``raise ... from exc``), never leaked raw::

    OdysseyDataError
    ├── ConfigError (ValueError)               bad options or pipeline file
    ├── MissingDependencyError (ImportError)   an extra is not installed; names the pip command
    ├── ApiError                               the Odyssey REST API
    │   ├── AuthError                          401/403/422 on the token or an API call
    │   ├── NotFoundError                      404 for a recording or job
    │   ├── RateLimited                        429 after the retries ran out
    │   └── ApiResponseError                   invalid JSON or missing fields in an answer
    ├── RecordingError                         bad data in one recording
    │   ├── DownloadError                      fetching the video or events log failed
    │   ├── DecodeError                        the video cannot be read
    │   └── EventLogError                      the events log cannot be used at all
    └── StorageError                           writing, committing or reading the dataset
        ├── StorageAccessError                 credentials missing or refused, permission denied
        ├── StorageUnreachableError            the storage endpoint cannot be reached
        ├── StorageNotFoundError               the bucket (or a parent folder) does not exist
        ├── StorageFullError                   no space left (or over quota)
        └── DatasetDamagedError                manifest.json or the writer lock is unreadable

Messages say what failed, for which recording, and what to do. They never contain the API
key or a presigned URL's query string: use :func:`redact_url` on every URL put in a message.
Text that comes from a server (ids, prompts, error details) goes through :func:`printable`
before it reaches a terminal: the terminal is not the server's.
"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

__all__ = [
    "ApiError",
    "ApiResponseError",
    "AuthError",
    "ConfigError",
    "DatasetDamagedError",
    "DecodeError",
    "DownloadError",
    "EventLogError",
    "MissingDependencyError",
    "NotFoundError",
    "OdysseyDataError",
    "RateLimited",
    "RecordingError",
    "StorageAccessError",
    "StorageError",
    "StorageFullError",
    "StorageNotFoundError",
    "StorageUnreachableError",
    "causes",
    "printable",
    "redact_url",
]


class OdysseyDataError(Exception):
    """Root of every error raised by odyssey-data."""


class ConfigError(OdysseyDataError, ValueError):
    """Options, arguments or a pipeline file are invalid."""


class MissingDependencyError(OdysseyDataError, ImportError):
    """An optional extra is needed but not installed."""

    def __init__(self, package: str, extra: str, purpose: str) -> None:
        super().__init__(
            f"{purpose} needs the {package!r} package, which is not installed. "
            f"Install it with: pip install 'odyssey-data[{extra}]'"
        )
        self.package = package
        self.extra = extra


class _RetryDecision:
    """What an HTTP failure says about trying again (set where httpx's errors are
    translated, :mod:`odyssey_data.api.errors`, and read by the client's retry loop).

    Attributes:
        status_code: the HTTP status, when there was an answer.
        retryable: whether trying again could help. The client retries such a failure
            itself; an error it raises has had its retries, so this is then ``False``
            (but for :class:`RateLimited`: a later run may get past the limit).
        retry_after: seconds to wait before the next try, when known (the server's
            ``Retry-After``; 0 after a fresh presigned URL).
        reason: a few words on what failed (``connection refused``, ``HTTP 503``), as
            the client's retry log line says it.
    """

    retryable: bool = False

    def _decide(
        self,
        status_code: int | None,
        retryable: bool | None,
        retry_after: float | None,
        reason: str | None,
    ) -> None:
        self.status_code = status_code
        if retryable is not None:
            self.retryable = retryable
        self.retry_after = retry_after
        self.reason = reason


class ApiError(_RetryDecision, OdysseyDataError):
    """The Odyssey REST API refused or failed a request.

    Attributes:
        status_code: the HTTP status, when there was an answer.
        retryable: whether trying again later could help.
        retry_after: seconds the server asked to wait (``Retry-After``), when it said.
        reason: what failed, in a few words.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        retryable: bool | None = None,
        retry_after: float | None = None,
        reason: str | None = None,
    ) -> None:
        super().__init__(message)
        self._decide(status_code, retryable, retry_after, reason)


class AuthError(ApiError):
    """The API key is invalid, malformed or lacks access."""


class NotFoundError(ApiError):
    """The API does not know the requested recording or job."""


class RateLimited(ApiError):
    """The API kept answering 429 after every retry."""

    retryable = True


class ApiResponseError(ApiError):
    """The API answered with something that is not the documented shape."""


class RecordingError(OdysseyDataError):
    """One recording could not be exported; the others are not affected.

    Attributes:
        stream_id: the recording concerned, when known.
    """

    def __init__(self, message: str, *, stream_id: str | None = None) -> None:
        super().__init__(message)
        self.stream_id = stream_id


class DownloadError(_RetryDecision, RecordingError):
    """A video or events log could not be downloaded completely.

    Attributes:
        status_code: the HTTP status of the answer that failed it, when there was one.
        retryable: whether trying again could help (an attempt that failed so is
            retried by the client; the error it raises has had its retries).
        retry_after: seconds to wait before trying again, when known.
        reason: what failed, in a few words.
    """

    def __init__(
        self,
        message: str,
        *,
        stream_id: str | None = None,
        status_code: int | None = None,
        retryable: bool | None = None,
        retry_after: float | None = None,
        reason: str | None = None,
    ) -> None:
        super().__init__(message, stream_id=stream_id)
        self._decide(status_code, retryable, retry_after, reason)


class DecodeError(RecordingError):
    """A video file cannot be demuxed or decoded (or a video not encoded).

    What PyAV raises becomes this in one place,
    :func:`odyssey_data.video.errors.video_error`, with a one-line message naming the
    recording, what failed, FFmpeg's reason and what to do.
    """


class EventLogError(RecordingError):
    """An events log cannot be used at all (single bad lines are only counted)."""


class StorageError(OdysseyDataError):
    """The dataset could not be written, committed or read.

    Errors of fsspec and its backends (botocore, gcsfs, aiohttp, OSError) become these
    in one place, :func:`odyssey_data.storage.errors.storage_error`, with a one-line
    message naming the file, the problem and the fix.
    """


class StorageAccessError(StorageError):
    """Credentials are missing or refused, or the target is not writable."""


class StorageUnreachableError(StorageError):
    """The storage endpoint cannot be reached (nothing listens, DNS, timeout)."""


class StorageNotFoundError(StorageError):
    """The bucket, or a folder the target needs, does not exist."""


class StorageFullError(StorageError):
    """The target has no space left (or the quota is used up)."""


class DatasetDamagedError(StorageError):
    """``manifest.json`` or the writer lock cannot be read; the message says the way out."""


def causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc``, then what it was raised from or while handling, each once (the chain the
    translation points search for a library's reason: an errno, a status, a TLS error)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def redact_url(url: str) -> str:
    """Return ``url`` without its query string, fragment and user info.

    Presigned URLs carry their signature in the query string, so the query is a
    credential. Use this on every URL that goes into a message, log line or table.
    """
    try:
        parts = urlsplit(url)
        netloc = parts.hostname or ""
        if parts.port is not None:  # raises ValueError for a port out of range
            netloc = f"{netloc}:{parts.port}"
        return printable(urlunsplit((parts.scheme, netloc, parts.path, "", "")))
    except ValueError:
        return "<unparseable url>"


def printable(text: str) -> str:
    """``text`` with every character a terminal could act on shown as an escape.

    Control characters (ESC sequences that move the cursor, retitle the window or hide
    text, carriage returns that overwrite a line), Unicode format characters (bidi
    overrides, zero-width characters) and other non-printable ones become ``\\x1b``,
    ``\\u202e``…; everything printable, non-ASCII letters included, stays as it is.
    """
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)
