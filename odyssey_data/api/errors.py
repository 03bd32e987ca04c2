"""One translation point for httpx: its exceptions become the package's errors here.

As :mod:`odyssey_data.storage.errors` is for fsspec and botocore (and as httpx maps
httpcore's exceptions to its own), every exception httpx raises in this package, and
every HTTP answer worth another try, becomes one of :mod:`odyssey_data.errors`'s here:
an :class:`~odyssey_data.errors.ApiError` for an API call, a
:class:`~odyssey_data.errors.DownloadError` for an attempt of a download. The retry
decision travels as their attributes (``retryable``, ``status_code``, ``retry_after``,
``reason``), which the retry loop (:mod:`odyssey_data.api.retry`) reads; nothing is
parsed back out of a message.

What is worth another try: connect errors, timeouts, dropped connections (httpx's
``TransportError``), but not a URL that is not http(s) nor a TLS certificate that does
not verify; and the answers 408, 429 and the 5xx that can heal (not 501, 505, 511).
"""

from __future__ import annotations

import email.utils
import ssl
import time

import httpx

from odyssey_data.api.credentials import Refused
from odyssey_data.errors import (
    ApiError,
    ApiResponseError,
    ConfigError,
    DownloadError,
    causes,
    printable,
    redact_url,
)

__all__ = ["answer_error", "attempt_failed", "is_transient_status", "translate"]


def translate(
    exc: Exception, what: str, *, url: str, attempt: int | None = None, config: bool = False
) -> ApiError | DownloadError | ConfigError:
    """``exc``, raised by httpx (or by the client's request hook) for ``url``, as the
    package's error, carrying whether another try could help.

    Args:
        exc: an :class:`httpx.HTTPError`, an :class:`httpx.InvalidURL`, or the
            :class:`~odyssey_data.api.credentials.Refused` of the client's request hook.
        what: what was being done, for the start of the message.
        url: the URL asked (a message shows it without its query string).
        attempt: for a download, which attempt failed (a :class:`DownloadError`); ``None``
            for an API call (an :class:`ApiError`).
        config: ``url`` is the API URL the user gave (an invalid one is a
            :class:`ConfigError`).
    """
    if isinstance(exc, Refused):
        message = f"{what}: {exc}"
        return ApiError(message) if attempt is None else DownloadError(message)
    if isinstance(exc, httpx.InvalidURL) and attempt is None:
        if config:
            return ConfigError(
                f"{what} {redact_url(url)!r} is not a valid URL ({printable(str(exc))})"
            )
        # An API call's URLs are the client's own, but for where a redirect points.
        return ApiResponseError(f"{what}: redirected to an invalid URL")
    why, retryable, reason = _why(exc, url), _is_transient(exc), _short_reason(exc)
    if attempt is None:
        return ApiError(
            f"{what}: cannot reach the API ({why}); check the network or --api-url",
            retryable=retryable,
            reason=reason,
        )
    tries = f"after {attempt} attempts " if attempt > 1 else ""
    return DownloadError(
        f"{what}: download failed {tries}({why}); re-run the export to try again",
        retryable=retryable,
        reason=reason,
    )


def answer_error(
    response: httpx.Response, *, url: str, what: str = "", attempt: int | None = None
) -> ApiError | DownloadError | None:
    """The error of an answer worth another try (408, 429, a 5xx that can heal), with
    its status and ``Retry-After``; ``None`` for any other answer.

    For a download (``attempt`` given) it is the :func:`attempt_failed` of ``what``. For
    an API call it says only ``HTTP 503 from URL``: the caller names the call once the
    retries ran out.
    """
    status = response.status_code
    if not is_transient_status(status):
        return None
    detail = f"HTTP {status} from {redact_url(url)}"
    wait = _retry_after(response)
    if attempt is None:
        return ApiError(
            detail, status_code=status, retryable=True, retry_after=wait, reason=f"HTTP {status}"
        )
    return attempt_failed(
        what, attempt, detail, reason=f"HTTP {status}", status_code=status, retry_after=wait
    )


def attempt_failed(
    what: str,
    attempt: int,
    detail: str,
    *,
    reason: str | None = None,
    status_code: int | None = None,
    retry_after: float | None = None,
) -> DownloadError:
    """A download attempt that failed in a way another attempt can mend (a short body,
    a trickle, an expired URL, an answer worth another try); its message is the one the
    download fails with should it be the last attempt.

    Args:
        detail: what went wrong (the message's parenthesis).
        reason: a few words of it for the retry log line (default: ``detail``).
    """
    return DownloadError(
        f"{what}: download failed after {attempt} attempts ({detail}); "
        "re-run the export to try again",
        status_code=status_code,
        retryable=True,
        retry_after=retry_after,
        reason=reason or detail,
    )


def is_transient_status(status: int) -> bool:
    """Statuses worth another try: 408 and 429, and the 5xx that can heal (not 501 Not
    Implemented, 505 HTTP Version Not Supported, 511 Network Authentication Required)."""
    return status in (408, 429) or (status >= 500 and status not in (501, 505, 511))


def _retry_after(response: httpx.Response) -> float | None:
    """The answer's ``Retry-After`` in seconds (a number or an HTTP date), if valid."""
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
    for item in causes(exc):
        if isinstance(item, ssl.SSLCertVerificationError):
            return item
    return None


def _is_transient(exc: Exception) -> bool:
    # A bad scheme or a certificate that does not verify will not heal by retrying.
    return (
        isinstance(exc, httpx.TransportError)
        and not isinstance(exc, httpx.UnsupportedProtocol)
        and _tls_failure(exc) is None
    )


def _why(exc: Exception, url: str) -> str:
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


def _short_reason(exc: Exception) -> str:
    """A few words for a retry line: ``connection refused``, ``timed out``…"""
    if any(isinstance(item, ConnectionRefusedError) for item in causes(exc)):
        return "connection refused"
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    if isinstance(exc, httpx.ConnectError):
        return "cannot connect"
    if isinstance(exc, httpx.RemoteProtocolError):
        return "connection dropped"
    if isinstance(exc, httpx.NetworkError):
        return "network error"
    return type(exc).__name__
