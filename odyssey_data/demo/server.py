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
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import hmac
import json
import logging
import math
import re
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, NamedTuple, TypeVar, cast
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

from odyssey_data.demo.synth import (
    DemoCatalog,
    DemoRecording,
    DemoSimulationJob,
    make_demo_catalog,
)

__all__ = [
    "DEMO_API_KEY",
    "DemoServer",
    "Fault",
    "LoggedRequest",
    "RequestLog",
    "run_demo_server",
    "serve",
]

_Item = TypeVar("_Item")

log = logging.getLogger(__name__)

#: The API key the demo server accepts by default (Odyssey format: ``ody_...``).
DEMO_API_KEY = "ody_demo_4f2a9c7e1b8d6053a1c4e9f7b2d80c63"

_BLOBS: dict[str, str] = {
    "video.mp4": "video/mp4",
    "events.jsonl": "application/x-ndjson",
    "thumbnail.jpg": "image/jpeg",
    "preview.mp4": "video/mp4",
}
_CREDENTIAL_ID = "ODYSSEYDEMOAKIA0000"
_MAX_BODY = 1 << 20
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
#: Bytes written at a time by a throttled blob response.
_THROTTLE_CHUNK = 64 << 10


def _iso_z(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


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


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    # Tracks open client sockets so stop() can close idle keep-alive connections too.
    _open: set[socket.socket]

    def __init__(self, address: tuple[str, int], demo: DemoServer) -> None:
        self.demo = demo
        self._open = set()
        self._open_lock = threading.Lock()
        super().__init__(address, _Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = super().get_request()
        with self._open_lock:
            self._open.add(sock)
        return sock, address

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self._open_lock:
            sockets = list(self._open)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up mid-answer is normal (timeouts, cut downloads).
        log.debug("demo server: connection error", exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "odyssey-demo/1.0"
    sys_version = ""
    timeout = 60.0  # idle keep-alive connections end after this
    # Headers and body go out in two writes; with Nagle on, the client's delayed ACK
    # adds ~40 ms to every answer.
    disable_nagle_algorithm = True

    _truncate_after: int | None = None
    _fault: Fault | None = None

    # --- plumbing -------------------------------------------------------------------

    @property
    def demo(self) -> DemoServer:
        return cast(_HTTPServer, self.server).demo

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Quiet: every request is recorded in ``request_log`` instead."""

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet by default; debug logging with any query string removed."""
        log.debug("demo server: %s", re.sub(r"\?\S*", "?<redacted>", format % args))

    def _path(self) -> str:
        return urlsplit(self.path).path

    def _read_body(self) -> bytes | None:
        raw = self.headers.get("Content-Length")
        if raw is None:
            return b""
        try:
            length = int(raw)
        except ValueError:
            return None
        if length < 0 or length > _MAX_BODY:
            return None
        return self.rfile.read(length)

    def _send(
        self,
        status: int,
        body: bytes = b"",
        *,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
        content_length: int | None = None,
        throttle: bool = False,
    ) -> None:
        method = self.command
        path = self._path()
        self.demo.request_log.append(LoggedRequest(method, path, status))
        log.debug("demo server: %s %s -> %d", method, path, status)
        self.send_response(status)
        all_headers = {"Content-Type": content_type}
        all_headers.update(headers or {})
        for name, value in all_headers.items():
            self.send_header(name, value)
        length = len(body) if content_length is None else content_length
        fault = self._fault if self._truncate_after is not None else None
        if fault is not None and fault.chunked and method != "HEAD":
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(length))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if method == "HEAD":
            return
        if fault is not None and self._truncate_after is not None:
            body = body[: self._truncate_after]
            if fault.chunked and body:  # one chunk, and never the terminating one
                body = b"%x\r\n%s\r\n" % (len(body), body)
            self.close_connection = True
        try:
            if throttle and self.demo.throttle_bytes_per_s:
                self.demo._throttled_write(self.wfile, body)
            else:
                self.wfile.write(body)
            if fault is not None and fault.stall_s > 0:
                self.wfile.flush()
                time.sleep(fault.stall_s)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _json(self, status: int, payload: object, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(payload).encode("utf-8"), headers=headers)

    def _detail(self, status: int, detail: object, headers: dict[str, str] | None = None) -> None:
        self._json(status, {"detail": detail}, headers)

    def _s3_error(self, status: int, code: str, message: str) -> None:
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{code}</Code><Message>{message}</Message>"
            f"<RequestId>{secrets.token_hex(8).upper()}</RequestId></Error>"
        ).encode()
        self._send(status, body, content_type="application/xml")

    # --- dispatch ---------------------------------------------------------------------

    def do_GET(self) -> None:
        """Answer a GET."""
        self._dispatch()

    def do_HEAD(self) -> None:
        """Answer a HEAD (blobs only; API paths answer 405)."""
        self._dispatch()

    def do_POST(self) -> None:
        """Answer a POST."""
        self._dispatch()

    def do_PUT(self) -> None:
        """Answer a PUT (always 405 or 404)."""
        self._dispatch()

    def do_DELETE(self) -> None:
        """Answer a DELETE (always 405 or 404)."""
        self._dispatch()

    def _dispatch(self) -> None:
        self._truncate_after = None
        self._fault = None
        body = self._read_body()
        if body is None:
            self.close_connection = True
            self._detail(
                413 if self.headers.get("Content-Length", "").isdigit() else 400,
                "Invalid request body",
            )
            return
        path = self._path()
        fault = self.demo._take_fault(path)
        if fault is not None:
            if fault.status is not None:
                self._answer_fault(fault)
                return
            self._truncate_after = fault.truncate_after
            self._fault = fault
        try:
            self._route(path, body)
        except Exception:  # a bug in the demo: answer 500 instead of hanging the client
            log.exception("demo server: internal error on %s %s", self.command, path)
            self.close_connection = True
            self._detail(500, "Internal Server Error")

    def _answer_fault(self, fault: Fault) -> None:
        assert fault.status is not None
        headers = dict(fault.headers)
        content_type = headers.pop("Content-Type", None)
        if fault.body:
            self._send(
                fault.status,
                fault.body,
                content_type=content_type or "application/octet-stream",
                headers=headers,
            )
        else:
            payload = json.dumps({"detail": f"Injected fault ({fault.status})"}).encode()
            self._send(
                fault.status,
                payload,
                content_type=content_type or "application/json",
                headers=headers,
            )

    def _route(self, path: str, body: bytes) -> None:
        parts = path.split("/")
        method = self.command
        if path == "/auth/token":
            if method != "POST":
                self._detail(405, "Method Not Allowed")
            else:
                self._token(body)
        elif path == "/stream-recordings":
            if method != "GET":
                self._detail(405, "Method Not Allowed")
            elif self._authorized():
                self._list()
        elif path == "/simulation-jobs":
            if method != "GET":
                self._detail(405, "Method Not Allowed")
            elif self._authorized():
                self._list_jobs()
        elif len(parts) == 3 and parts[1] == "simulation-jobs" and parts[2]:
            if method != "GET":
                self._detail(405, "Method Not Allowed")
            elif self._authorized():
                self._job(unquote(parts[2]))
        elif len(parts) == 3 and parts[1] == "recordings" and parts[2]:
            if method != "GET":
                self._detail(405, "Method Not Allowed")
            elif self._authorized():
                self._recording(unquote(parts[2]))
        elif len(parts) == 4 and parts[1] == "blobs" and parts[2]:
            if method not in ("GET", "HEAD"):
                self._s3_error(405, "MethodNotAllowed", "The specified method is not allowed")
            else:
                self._blob(unquote(parts[2]), parts[3])
        else:
            self._detail(404, "Not Found")

    # --- API --------------------------------------------------------------------------

    def _token(self, body: bytes) -> None:
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            self._detail(
                422, [{"loc": ["body"], "msg": "Invalid JSON body", "type": "json_invalid"}]
            )
            return
        key = payload.get("api_key") if isinstance(payload, dict) else None
        if not isinstance(key, str):
            self._detail(
                422, [{"loc": ["body", "api_key"], "msg": "Field required", "type": "missing"}]
            )
            return
        if not key.startswith("ody_"):
            self._detail(422, "Malformed API key: Odyssey keys start with 'ody_'")
            return
        if not hmac.compare_digest(key.encode(), self.demo.api_key.encode()):
            self._detail(401, "Invalid API key")
            return
        token = self.demo._issue_token()
        self._json(
            200,
            {"access_token": token, "expires_in": self.demo.token_ttl_s, "token_type": "bearer"},
        )

    def _authorized(self) -> bool:
        header = self.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        challenge = {"WWW-Authenticate": "Bearer"}
        if scheme.lower() != "bearer" or not token.strip():
            self._detail(401, "Not authenticated", challenge)
            return False
        if not self.demo._token_valid(token.strip()):
            self._detail(401, "Invalid or expired token", challenge)
            return False
        return True

    def _query_int(
        self, query: dict[str, list[str]], name: str, default: int, low: int
    ) -> int | None:
        values = query.get(name)
        if not values:
            return default
        try:
            value = int(values[-1])
        except ValueError:
            value = None
        if value is None or value < low:
            self._detail(
                422,
                [
                    {
                        "loc": ["query", name],
                        "msg": f"Input should be an integer >= {low}",
                        "type": "int_parsing" if value is None else "greater_than_equal",
                    }
                ],
            )
            return None
        return value

    def _page(self, key: str, items: Sequence[_Item], to_json: Callable[[_Item], Any]) -> None:
        """Answer one page of ``items`` by the query's limit/offset, capped at page_cap."""
        query = parse_qs(urlsplit(self.path).query, keep_blank_values=True)
        limit = self._query_int(query, "limit", 50, 1)
        if limit is None:
            return
        offset = self._query_int(query, "offset", 0, 0)
        if offset is None:
            return
        used = min(limit, self.demo.page_cap)
        self._json(
            200,
            {
                key: [to_json(item) for item in items[offset : offset + used]],
                "total": len(items),
                "limit": used,
                "offset": offset,
            },
        )

    def _list(self) -> None:
        self._page("recordings", self.demo.catalog.snapshot(), _recording_info)

    def _list_jobs(self) -> None:
        query = parse_qs(urlsplit(self.path).query, keep_blank_values=True)
        jobs = self.demo.catalog.jobs_snapshot()
        status = (query.get("status") or [""])[-1]
        if status:
            jobs = [job for job in jobs if job.status == status]
        active = (query.get("active") or [""])[-1].lower()
        if active in ("true", "1", "false", "0"):
            jobs = [job for job in jobs if job.is_active == (active in ("true", "1"))]
        self._page("jobs", jobs, _job_info)

    def _job(self, job_id: str) -> None:
        job = self.demo.catalog.job(job_id)
        if job is None:
            self._detail(404, "Simulation job not found")
            return
        detail = _job_info(job)
        detail.update(
            {
                "dispatched_at": None if job.status == "pending" else _iso_z(job.created_at),
                "started_at": None if job.status == "pending" else _iso_z(job.created_at),
                "assigned_region": None if job.status == "pending" else "demo-local-1",
                "retry_count": 0,
                "estimated_wait_minutes": 3.0 if job.status == "pending" else None,
                "streams": [
                    {**self._artifacts(out), "script_index": out.script_index}
                    for out in (job.outputs if job.status == "completed" else ())
                ],
            }
        )
        if job.script_in_detail:
            detail["script"] = job.script_json()
        self._json(200, detail)

    def _artifacts(self, rec: DemoRecording) -> dict[str, object]:
        """The ``Recording`` fields of a simulation output: all four blobs signed."""
        sign = self.demo.presign
        sid = rec.stream_id
        return {
            "stream_id": sid,
            "video_url": sign(sid, "video.mp4"),
            "events_url": sign(sid, "events.jsonl"),
            "thumbnail_url": sign(sid, "thumbnail.jpg"),
            "preview_url": sign(sid, "preview.mp4"),
            "frame_count": rec.frame_count,
            "duration_seconds": rec.duration_seconds,
        }

    def _recording(self, stream_id: str) -> None:
        rec = self.demo.catalog.get(stream_id)
        if rec is None:
            self._detail(404, "Recording not found")
            return
        if rec.job_id is not None:  # a simulation output: served here too
            self._json(200, self._artifacts(rec))
            return
        video = None if rec.is_active else self.demo.presign(rec.stream_id, "video.mp4")
        events = None if rec.is_active else self.demo.presign(rec.stream_id, "events.jsonl")
        preview = None if rec.is_active else self.demo.presign(rec.stream_id, "video.mp4")
        self._json(
            200,
            {
                "stream_id": rec.stream_id,
                "video_url": video,
                "events_url": events,
                "thumbnail_url": None,
                "preview_url": preview,
                "frame_count": rec.frame_count,
                "duration_seconds": rec.duration_seconds,
            },
        )

    # --- blobs ------------------------------------------------------------------------

    def _blob(self, stream_id: str, name: str) -> None:
        query = {k: v[-1] for k, v in parse_qs(urlsplit(self.path).query).items()}
        verdict = self.demo._check_signature(stream_id, name, query)
        if verdict is not None:
            self._s3_error(403, "AccessDenied", verdict)
            return
        rec = self.demo.catalog.get(stream_id)
        data: bytes | None = None
        if rec is not None and name in _BLOBS:
            if name in ("video.mp4", "preview.mp4"):
                data = rec.video_bytes()
            elif name == "thumbnail.jpg":
                data = rec.thumbnail_bytes()
            else:
                data = rec.events_bytes()
        if data is None:
            self._s3_error(404, "NoSuchKey", "The specified key does not exist.")
            return
        size = len(data)
        headers = {"Accept-Ranges": "bytes", "ETag": self.demo._etag(stream_id, name, data)}
        spec = self.headers.get("Range")
        match = _RANGE.match(spec.strip()) if spec else None
        if match is None or match.group(1) == match.group(2) == "":
            # No Range, or one we do not support (several ranges): the whole object.
            self._send(200, data, content_type=_BLOBS[name], headers=headers, throttle=True)
            return
        first_s, last_s = match.groups()
        if first_s:
            first = int(first_s)
            last = min(int(last_s), size - 1) if last_s else size - 1
            unsatisfiable = first >= size or (last_s != "" and int(last_s) < first)
        else:  # suffix range: the last N bytes
            first, last = max(0, size - int(last_s)), size - 1
            unsatisfiable = int(last_s) == 0 or size == 0
        if unsatisfiable:
            body = (
                b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>InvalidRange</Code>'
                b"<Message>The requested range is not satisfiable</Message></Error>"
            )
            self._send(
                416,
                body,
                content_type="application/xml",
                headers={"Content-Range": f"bytes */{size}", "Accept-Ranges": "bytes"},
            )
            return
        headers["Content-Range"] = f"bytes {first}-{last}/{size}"
        self._send(
            206, data[first : last + 1], content_type=_BLOBS[name], headers=headers, throttle=True
        )


def _job_info(job: DemoSimulationJob) -> dict[str, object]:
    return {
        "job_id": job.job_id,
        "status": job.status,
        "priority": job.priority,
        "created_at": _iso_z(job.created_at),
        "completed_at": _iso_z(job.created_at) if job.status == "completed" else None,
        "error_message": job.error_message,
    }


def _recording_info(rec: DemoRecording) -> dict[str, object]:
    return {
        "stream_id": rec.stream_id,
        "width": rec.width,
        "height": rec.height,
        "started_at": _iso_z(rec.started_at),
        "ended_at": None if rec.ended_at is None else _iso_z(rec.ended_at),
        "duration_seconds": rec.duration_seconds,
    }


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
        self._secret = secrets.token_bytes(32)
        self._tokens: dict[str, float] = {}
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        # ETag per blob, kept with the bytes it was computed from (hashing a 30 MB video
        # on every request would cost the machine as much CPU as the client's download).
        self._etags: dict[tuple[str, str], tuple[bytes, str]] = {}
        self._httpd: _HTTPServer | None = None
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
        httpd = _HTTPServer((self.host, self.port), self)
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
        with self._lock:
            self._faults.append(
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
        with self._lock:
            self._faults.append(
                Fault(
                    path_prefix,
                    times,
                    truncate_after=after_bytes,
                    chunked=chunked,
                    stall_s=stall_s,
                )
            )

    @property
    def faults(self) -> list[Fault]:
        """The faults still pending (a copy)."""
        with self._lock:
            return [dataclasses.replace(f, headers=dict(f.headers)) for f in self._faults]

    def clear_faults(self) -> None:
        """Drop every pending fault."""
        with self._lock:
            self._faults.clear()

    def _take_fault(self, path: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if path.startswith(fault.path_prefix):
                    fault.times -= 1
                    if fault.times <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    # --- tokens -----------------------------------------------------------------------

    def _issue_token(self) -> str:
        token = "demo." + secrets.token_urlsafe(24)
        with self._lock:
            self._tokens[token] = self.clock() + self.token_ttl_s
        return token

    def _token_valid(self, token: str) -> bool:
        with self._lock:
            expiry = self._tokens.get(token)
        return expiry is not None and self.clock() < expiry

    def expire_tokens(self) -> None:
        """Invalidate every issued token (the next API call answers 401)."""
        with self._lock:
            self._tokens.clear()

    # --- presigned URLs ---------------------------------------------------------------

    def _signature(self, stream_id: str, name: str, params: dict[str, str]) -> str:
        message = "\n".join(
            [
                params["X-Amz-Algorithm"],
                f"/blobs/{stream_id}/{name}",
                params["X-Amz-Credential"],
                params["X-Amz-Date"],
                params["X-Amz-Expires"],
                params["X-Amz-SignedHeaders"],
                params["X-Demo-Issued-Ms"],
                params["X-Demo-Ttl-Ms"],
            ]
        )
        return hmac.new(self._secret, message.encode("utf-8"), hashlib.sha256).hexdigest()

    def presign(self, stream_id: str, name: str) -> str:
        """A presigned URL for a blob (``video.mp4`` or ``events.jsonl``) of a recording.

        The URL is valid for :attr:`url_ttl_s` from now (by :attr:`clock`).

        Raises:
            RuntimeError: the server is not started.
        """
        now = self.clock()
        issued = datetime.fromtimestamp(now, UTC)
        params = {
            "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
            "X-Amz-Credential": f"{_CREDENTIAL_ID}/{issued:%Y%m%d}/us-east-1/s3/aws4_request",
            "X-Amz-Date": f"{issued:%Y%m%dT%H%M%SZ}",
            "X-Amz-Expires": str(max(1, math.ceil(self.url_ttl_s))),
            "X-Amz-SignedHeaders": "host",
            # S3 counts expiry in whole seconds from X-Amz-Date; these two, also signed,
            # keep millisecond precision so tests can use sub-second lifetimes.
            "X-Demo-Issued-Ms": str(int(now * 1000)),
            "X-Demo-Ttl-Ms": str(max(0, round(self.url_ttl_s * 1000))),
        }
        params["X-Amz-Signature"] = self._signature(stream_id, name, params)
        segment = quote(stream_id, safe="")
        if segment in (".", ".."):  # a client would resolve a dot segment away
            segment = segment.replace(".", "%2E")
        return f"{self.base_url}/blobs/{segment}/{name}?{urlencode(params)}"

    def _check_signature(self, stream_id: str, name: str, query: dict[str, str]) -> str | None:
        """Return why a blob request is refused, or ``None`` if it may proceed."""
        needed = (
            "X-Amz-Algorithm",
            "X-Amz-Credential",
            "X-Amz-Date",
            "X-Amz-Expires",
            "X-Amz-SignedHeaders",
            "X-Demo-Issued-Ms",
            "X-Demo-Ttl-Ms",
            "X-Amz-Signature",
        )
        if any(key not in query for key in needed):
            return "Query-string authentication requires the X-Amz-* signature parameters"
        expected = self._signature(stream_id, name, query)
        if not hmac.compare_digest(expected, query["X-Amz-Signature"]):
            return (
                "The request signature we calculated does not match the signature you "
                "provided. Check your key and signing method."
            )
        try:
            expires_ms = int(query["X-Demo-Issued-Ms"]) + int(query["X-Demo-Ttl-Ms"])
        except ValueError:
            return "Invalid expiry parameters"
        if self.clock() * 1000 >= expires_ms:
            return "Request has expired"
        return None


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
