"""The demo server's knobs for tests: injected faults, and the log of what it answered.

:class:`FaultQueue` holds the pending :class:`Fault` objects that
:meth:`~odyssey_data.demo.DemoServer.inject` and
:meth:`~odyssey_data.demo.DemoServer.inject_truncation` add; each request takes the
first one whose path prefix matches. :class:`RequestLog` records ``(method, path,
status)`` of every answer, never the query string.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import NamedTuple


class LoggedRequest(NamedTuple):
    """One request as the server saw it (equal to a plain ``(method, path, status)``)."""

    method: str
    path: str
    status: int


class RequestLog:
    """A thread-safe, append-only list of :class:`LoggedRequest` (paths without query)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[LoggedRequest] = []

    def append(self, item: LoggedRequest) -> None:
        """Record one request."""
        with self._lock:
            self._items.append(item)

    def snapshot(self) -> list[LoggedRequest]:
        """A copy of the entries so far."""
        with self._lock:
            return list(self._items)

    def clear(self) -> None:
        """Forget every entry."""
        with self._lock:
            self._items.clear()

    def count(
        self, method: str | None = None, path_prefix: str = "", status: int | None = None
    ) -> int:
        """Count the entries matching every given criterion."""
        return sum(
            1
            for item in self.snapshot()
            if (method is None or item.method == method)
            and item.path.startswith(path_prefix)
            and (status is None or item.status == status)
        )

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def __iter__(self) -> Iterator[LoggedRequest]:
        return iter(self.snapshot())

    def __getitem__(self, index: int) -> LoggedRequest:
        with self._lock:
            return self._items[index]


@dataclass
class Fault:
    """A pending injected fault (see :meth:`DemoServer.inject`).

    Attributes:
        path_prefix: applies to requests whose path (without query) starts with this.
        times: how many more requests it applies to.
        status: the status to answer instead of the real one, or ``None`` to serve the
            real answer cut after ``truncate_after`` body bytes.
        headers: extra response headers (e.g. ``Retry-After``).
        body: the response body; empty means a JSON ``{"detail": ...}``.
        truncate_after: for a truncation fault, body bytes sent before the connection is
            closed (``Content-Length`` still announces the full size).
        chunked: for a truncation fault, send the body chunked (no ``Content-Length``)
            and close before the last chunk.
        stall_s: for a truncation fault, seconds to wait before closing the connection
            (a stall mid-body that a client's read timeout must catch).
    """

    path_prefix: str
    times: int
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    truncate_after: int | None = None
    chunked: bool = False
    stall_s: float = 0.0


class FaultQueue:
    """The pending faults, in the order injected (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def add(self, fault: Fault) -> None:
        """Queue ``fault`` after those already pending."""
        with self._lock:
            self._faults.append(fault)

    def pending(self) -> list[Fault]:
        """The faults still pending (copies)."""
        with self._lock:
            return [dataclasses.replace(f, headers=dict(f.headers)) for f in self._faults]

    def clear(self) -> None:
        """Drop every pending fault."""
        with self._lock:
            self._faults.clear()

    def take(self, path: str) -> Fault | None:
        """The first fault matching ``path``, used once (dropped when used up)."""
        with self._lock:
            for fault in self._faults:
                if path.startswith(fault.path_prefix):
                    fault.times -= 1
                    if fault.times <= 0:
                        self._faults.remove(fault)
                    return fault
        return None
