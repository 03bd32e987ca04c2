"""The retry policy wired to the client: which failures are tried again, how long to wait,
and one log line per retry.

Retries (with exponential backoff and jitter, by ``stamina``) cover the failures whose
error says ``retryable`` (:mod:`odyssey_data.api.errors` decides that: connect errors,
timeouts, dropped connections, short bodies, 408, 429 honouring ``Retry-After``, the 5xx
that can heal). Each retry is logged as one line, ``retrying GET URL in 1.6 s (attempt
2/6: connection refused)`` (logger ``odyssey_data.api``, level WARNING; the URL without
its query string).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator
from typing import Any

import stamina

from odyssey_data.errors import ApiError, DownloadError, redact_url
from odyssey_data.options import RetryPolicy

__all__ = ["attempts"]

#: The logger of the package's API client (one name for all its modules).
log = logging.getLogger("odyssey_data.api")


def attempts(policy: RetryPolicy, method: str, url: Callable[[], str]) -> Iterator[Any]:
    """stamina's attempts, with our own backoff so that each retry is logged as one
    line saying what, when, which attempt and why.

    An error that leaves the loop has had its retries: its ``retryable`` is cleared, so
    that a loop around this one (a request waiting for the token) does not try the whole
    loop again (attempts x attempts).
    """
    failed = 0
    started = time.monotonic()

    def hook(exc: Exception) -> bool | float:
        nonlocal failed
        if not isinstance(exc, ApiError | DownloadError) or not exc.retryable:
            return False
        failed += 1
        wait = exc.retry_after
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
                exc.reason or type(exc).__name__,
            )
        return wait

    try:
        yield from stamina.retry_context(
            on=hook,
            attempts=policy.attempts,
            timeout=policy.timeout_s,
            wait_initial=policy.wait_initial_s,
            wait_max=policy.wait_max_s,
        )
    except (ApiError, DownloadError) as exc:
        exc.retryable = False
        raise
