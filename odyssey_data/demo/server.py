"""An Odyssey-compatible REST server on localhost, serving synthetic recordings.

``DemoServer`` speaks the Odyssey recordings API, as the exporter's client expects it,
with the standard library only (:class:`http.server.ThreadingHTTPServer` in a daemon
thread):

* ``POST /auth/token`` → a bearer token (401 wrong key, 422 malformed key or body);
* ``GET /stream-recordings?limit=&offset=`` → pages, most recent first, ``limit`` capped
  at ``page_cap`` so clients must page by what they actually got;
* ``GET /recordings/{stream_id}`` → presigned-looking blob URLs (404 unknown id);
* ``GET /simulation-jobs?status=&active=&limit=&offset=`` → pages of simulation jobs
  (``limit`` capped at ``page_cap`` too) and ``GET /simulation-jobs/{job_id}`` → the job
  with its script and, once completed, its output streams' blob URLs (404 unknown id);
* ``GET|HEAD /blobs/{stream_id}/video.mp4|events.jsonl|thumbnail.jpg|preview.mp4?X-Amz-...``
  → the bytes, with
  ``Content-Length``, ``Accept-Ranges`` and single ``Range`` requests (206/416). The
  signature (HMAC-SHA256 with a per-server secret) and the expiry are checked: 403 S3-style
  XML ``AccessDenied``, ``Request has expired`` once ``url_ttl_s`` has passed.

For tests: :attr:`DemoServer.request_log` records ``(method, path, status)`` of every
request (never the query string), :meth:`DemoServer.inject` makes the next requests on a
path answer an error status, :meth:`DemoServer.inject_truncation` cuts a body short, and
:attr:`DemoServer.clock` can be replaced to move time forward (URL and token expiry).

The server never logs the API key, tokens or query strings; ``log_message`` is quiet
(``logging`` at debug level, paths only).

This module holds the server's state and lifecycle; :mod:`.handler` answers the HTTP
requests, :mod:`.resources` shapes the JSON, :mod:`.signing` makes and checks tokens
and URLs, :mod:`.faults` holds the injected faults and the request log.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

from odyssey_data.demo.faults import Fault, FaultQueue, LoggedRequest, RequestLog
from odyssey_data.demo.handler import DemoHTTPServer
from odyssey_data.demo.signing import Tokens, UrlSigner
from odyssey_data.demo.synth import DemoCatalog, make_demo_catalog

__all__ = [
    "DEMO_API_KEY",
    "DemoServer",
    "Fault",
    "LoggedRequest",
    "RequestLog",
    "run_demo_server",
    "serve",
]

#: The API key the demo server accepts by default (Odyssey format: ``ody_...``).
DEMO_API_KEY = "ody_demo_4f2a9c7e1b8d6053a1c4e9f7b2d80c63"

#: Bytes written at a time by a throttled blob response.
_THROTTLE_CHUNK = 64 << 10


class DemoServer:
    """An Odyssey-compatible REST server on localhost, in a background thread.

    Example::

        with DemoServer(make_demo_catalog(4)) as srv:
            client = httpx.Client(base_url=srv.base_url)
            token = client.post("/auth/token", json={"api_key": srv.api_key}).json()

    Args:
        catalog: the recordings to serve; ``None`` makes the default demo catalog.
        host: the address to bind (keep it on loopback).
        port: the port; 0 picks a free one (see :attr:`base_url`).
        api_key: the only key ``POST /auth/token`` accepts.
        page_cap: the most recordings one list page returns, whatever ``limit`` asks.
        url_ttl_s: lifetime of presigned blob URLs, in seconds (fractions allowed).
        token_ttl_s: lifetime of bearer tokens (``expires_in``), in seconds.
        throttle_bytes_per_s: cap the blob bytes sent per second, all connections
            together (a slow link); ``None`` sends as fast as the socket takes them.

    Attributes:
        catalog: the served recordings; add to it while running with ``catalog.add``.
        api_key: the accepted API key.
        page_cap: see Args; may be changed while running.
        url_ttl_s: see Args; applies to URLs issued after a change.
        token_ttl_s: see Args; applies to tokens issued after a change.
        throttle_bytes_per_s: see Args; may be changed while running.
        request_log: ``(method, path, status)`` of every request, query strings left out.
        clock: returns the current time in epoch seconds; replace it to move time forward
            (``srv.clock = lambda: time.time() + 7200`` expires every URL and token).
    """

    def __init__(
        self,
        catalog: DemoCatalog | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str = DEMO_API_KEY,
        page_cap: int = 4,
        url_ttl_s: float = 3600.0,
        token_ttl_s: int = 3600,
        throttle_bytes_per_s: float | None = None,
    ) -> None:
        if page_cap < 1:
            raise ValueError("page_cap must be at least 1")
        if throttle_bytes_per_s is not None and not throttle_bytes_per_s > 0:
            raise ValueError("throttle_bytes_per_s must be positive")
        self.catalog = catalog if catalog is not None else make_demo_catalog()
        self.host = host
        self.port = port
        self.api_key = api_key
        self.page_cap = page_cap
        self.url_ttl_s = url_ttl_s
        self.token_ttl_s = token_ttl_s
        self.throttle_bytes_per_s = throttle_bytes_per_s
        self._link_free_at = 0.0  # when the throttled link is free again (monotonic)
        self.request_log = RequestLog()
        self.clock: Callable[[], float] = time.time
        self._signer = UrlSigner()
        self._tokens = Tokens()
        self._faults = FaultQueue()
        self._lock = threading.Lock()
        # ETag per blob, kept with the bytes it was computed from (hashing a 30 MB video
        # on every request would cost the machine as much CPU as the client's download).
        self._etags: dict[tuple[str, str], tuple[bytes, str]] = {}
        self._httpd: DemoHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def _etag(self, stream_id: str, name: str, data: bytes) -> str:
        """The blob's ETag (quoted MD5, as S3 gives for a single-part upload), cached."""
        with self._lock:
            cached = self._etags.get((stream_id, name))
        if cached is not None and cached[0] is data:
            return cached[1]
        etag = f'"{hashlib.md5(data).hexdigest()}"'  # noqa: S324 (S3's ETag is an MD5)
        with self._lock:
            self._etags[(stream_id, name)] = (data, etag)
        return etag

    def warm(self) -> None:
        """Make every recording's files and their ETags now, not at the first request.

        For measurements: an object store does not hash a video while serving it, so
        the demo server should not spend CPU on it inside a measured export either.
        """
        for rec in self.catalog.snapshot():
            for name, data in (
                ("video.mp4", rec.video_bytes()),
                ("preview.mp4", rec.video_bytes()),
                ("thumbnail.jpg", rec.thumbnail_bytes()),
                ("events.jsonl", rec.events_bytes()),
            ):
                if data is not None:
                    self._etag(rec.stream_id, name, data)

    def _throttled_write(self, wfile: Any, body: bytes) -> None:
        """Write ``body`` in chunks, no faster than ``throttle_bytes_per_s`` overall.

        Each chunk books the next free slot of one shared link (all connections share
        the bandwidth), then waits for it: two parallel downloads each get half.
        """
        view = memoryview(body)
        for start in range(0, len(view), _THROTTLE_CHUNK):
            chunk = view[start : start + _THROTTLE_CHUNK]
            rate = self.throttle_bytes_per_s
            if rate:
                with self._lock:
                    now = time.monotonic()
                    self._link_free_at = max(now, self._link_free_at) + len(chunk) / rate
                    wait = self._link_free_at - now
                time.sleep(wait)
            wfile.write(chunk)

    # --- lifecycle --------------------------------------------------------------------

    def start(self) -> DemoServer:
        """Bind the port and start answering in a daemon thread.

        Returns:
            The server itself.

        Raises:
            RuntimeError: already started.
            OSError: the port cannot be bound.
        """
        if self._httpd is not None:
            raise RuntimeError("the demo server is already running")
        httpd = DemoHTTPServer((self.host, self.port), self)
        self.port = int(httpd.server_address[1])
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"odyssey-demo-server:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop answering, close open connections and free the port (idempotent)."""
        httpd, thread = self._httpd, self._thread
        if httpd is None:
            return
        httpd.shutdown()
        httpd.close_connections()
        httpd.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._httpd = None
        self._thread = None

    @property
    def running(self) -> bool:
        """Whether the server is answering."""
        return self._httpd is not None

    def __enter__(self) -> DemoServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """``http://HOST:PORT`` of the running server.

        Raises:
            RuntimeError: the server is not started.
        """
        if self._httpd is None:
            raise RuntimeError("the demo server is not running; call start() first")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    # --- faults -----------------------------------------------------------------------

    def inject(
        self,
        path_prefix: str,
        status: int,
        times: int = 1,
        headers: dict[str, str] | None = None,
        body: bytes = b"",
    ) -> None:
        """Make the next ``times`` requests on ``path_prefix`` answer ``status`` instead.

        Faults apply before authentication, in the order injected, and are recorded in
        :attr:`request_log` with the injected status.

        Args:
            path_prefix: matched against the request path without query, e.g.
                ``"/stream-recordings"`` or ``"/blobs/"``.
            status: the HTTP status to answer, e.g. 429, 500, 503 or 403.
            times: how many requests it applies to.
            headers: extra response headers, e.g. ``{"Retry-After": "1"}``; a
                ``Content-Type`` here sets the body's type.
            body: the response body; empty means ``{"detail": "Injected fault (STATUS)"}``.
        """
        if times < 1:
            raise ValueError("times must be at least 1")
        self._faults.add(
            Fault(path_prefix, times, status=status, headers=dict(headers or {}), body=body)
        )

    def inject_truncation(
        self,
        path_prefix: str,
        after_bytes: int,
        times: int = 1,
        *,
        chunked: bool = False,
        stall_s: float = 0.0,
    ) -> None:
        """Make the next ``times`` answers on ``path_prefix`` stop after ``after_bytes``.

        The headers announce the full ``Content-Length``, then the connection is closed
        early: what a client sees when a download breaks half-way.

        Args:
            path_prefix: matched against the request path without query.
            after_bytes: body bytes sent before the connection is closed.
            times: how many answers it applies to.
            chunked: send the body chunked without ``Content-Length`` instead, and close
                before the terminating chunk.
            stall_s: wait this long (sending nothing) before closing: a stall mid-body.
        """
        if times < 1 or after_bytes < 0 or stall_s < 0:
            raise ValueError("times must be at least 1, after_bytes and stall_s not negative")
        self._faults.add(
            Fault(path_prefix, times, truncate_after=after_bytes, chunked=chunked, stall_s=stall_s)
        )

    @property
    def faults(self) -> list[Fault]:
        """The faults still pending (a copy)."""
        return self._faults.pending()

    def clear_faults(self) -> None:
        """Drop every pending fault."""
        self._faults.clear()

    def _take_fault(self, path: str) -> Fault | None:
        return self._faults.take(path)

    # --- tokens -----------------------------------------------------------------------

    def _issue_token(self) -> str:
        return self._tokens.issue(self.clock(), self.token_ttl_s)

    def _token_valid(self, token: str) -> bool:
        return self._tokens.valid(token, self.clock())

    def expire_tokens(self) -> None:
        """Invalidate every issued token (the next API call answers 401)."""
        self._tokens.clear()

    # --- presigned URLs ---------------------------------------------------------------

    def presign(self, stream_id: str, name: str) -> str:
        """A presigned URL for a blob (``video.mp4`` or ``events.jsonl``) of a recording.

        The URL is valid for :attr:`url_ttl_s` from now (by :attr:`clock`).

        Raises:
            RuntimeError: the server is not started.
        """
        now = self.clock()
        base_url = self.base_url
        return self._signer.presign(base_url, stream_id, name, now=now, ttl_s=self.url_ttl_s)

    def _check_signature(self, stream_id: str, name: str, query: dict[str, str]) -> str | None:
        """Return why a blob request is refused, or ``None`` if it may proceed."""
        return self._signer.refusal(stream_id, name, query, self.clock())


def serve(server: DemoServer, stop: threading.Event | None = None) -> None:
    """Block until Ctrl-C (or ``stop`` is set), then stop the server.

    Starts the server if it is not running. Returns normally after Ctrl-C.
    """
    if not server.running:
        server.start()
    event = stop if stop is not None else threading.Event()
    try:
        while not event.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


def run_demo_server(
    port: int = 0,
    recordings: int = 6,
    seed: int = 0,
    *,
    host: str = "127.0.0.1",
    api_key: str = DEMO_API_KEY,
    active: int = 1,
    seconds: float = 3.5,
    page_cap: int = 4,
    on_ready: Callable[[DemoServer], None] | None = None,
    stop: threading.Event | None = None,
) -> None:
    """Run a demo server with a fresh catalog until Ctrl-C (the CLI's ``serve-demo``).

    Prints nothing: ``on_ready`` is called once the server listens, with the server, so
    the caller can print :attr:`DemoServer.base_url` and the key.

    Args:
        port: the port; 0 picks a free one.
        recordings: number of finished recordings.
        seed: makes the catalog reproducible.
        host: the address to bind.
        api_key: the accepted API key.
        active: number of still-active recordings.
        seconds: video length of every recording.
        page_cap: the most recordings one list page returns.
        on_ready: called with the running server before blocking.
        stop: an event that ends the server when set (tests); Ctrl-C always does.
    """
    catalog = make_demo_catalog(recordings, seed=seed, seconds=seconds, active=active)
    server = DemoServer(catalog, host=host, port=port, api_key=api_key, page_cap=page_cap)
    server.start()
    try:
        if on_ready is not None:
            on_ready(server)
    except BaseException:
        server.stop()
        raise
    serve(server, stop)
