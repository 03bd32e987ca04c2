"""The connections under the client: a shared TLS context and wide socket reads (httpcore).

An export makes a client per download thread and per worker: :func:`ssl_context` loads
the CA bundle once per setting, and :func:`widen_reads` makes a client's connections ask
the socket for :data:`READ_BYTES` at a time (downloads are several times faster).
"""

from __future__ import annotations

import os
import ssl
import threading
from typing import Any

import httpcore
import httpx

__all__ = ["READ_BYTES", "ssl_context", "widen_reads"]


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


def ssl_context() -> ssl.SSLContext:
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


def widen_reads(client: httpx.Client) -> bool:
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
