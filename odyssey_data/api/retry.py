"""The retry policy wired to httpx: what is worth another try, how long to wait, one log line.

Retries (with exponential backoff and jitter, by ``stamina``) cover connect errors,
timeouts, dropped connections, short bodies, 408, 429 (honouring ``Retry-After``) and the
5xx that can heal (500, 502, 503, 504…; not 501 Not Implemented or 505). Each retry is
logged as one line, ``retrying GET URL in 1.6 s (attempt 2/6: connection refused)``
(logger ``odyssey_data.api``, level WARNING; the URL without its query string).
"""

from __future__ import annotations

import email.utils
import logging
import random
import ssl
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import stamina

from odyssey_data.errors import redact_url
from odyssey_data.options import RetryPolicy

__all__ = [
    "Retryable",
    "attempts",
    "is_transient_status",
    "retry_after",
    "transport_reason",
]

#: The logger of the package's API client (one name for all its modules).
log = logging.getLogger("odyssey_data.api")


class Retryable(Exception):
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


def retry_after(response: httpx.Response) -> float | None:
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


def transport_reason(exc: Exception, url: str) -> str:
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


def is_transient_status(status: int) -> bool:
    """Statuses worth another try: 408 and 429, and the 5xx that can heal (not 501 Not
    Implemented, 505 HTTP Version Not Supported, 511 Network Authentication Required)."""
    return status in (408, 429) or (status >= 500 and status not in (501, 505, 511))


def _short_reason(exc: BaseException) -> str:
    """A few words for a retry line: ``connection refused``, ``timed out``, ``HTTP 503``."""
    if isinstance(exc, Retryable):
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


def attempts(policy: RetryPolicy, method: str, url: Callable[[], str]) -> Iterator[Any]:
    """stamina's attempts, with our own backoff so that each retry is logged as one
    line saying what, when, which attempt and why."""
    failed = 0
    started = time.monotonic()

    def hook(exc: Exception) -> bool | float:
        nonlocal failed
        if isinstance(exc, Retryable):
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
        attempts=policy.attempts,
        timeout=policy.timeout_s,
        wait_initial=policy.wait_initial_s,
        wait_max=policy.wait_max_s,
    )
