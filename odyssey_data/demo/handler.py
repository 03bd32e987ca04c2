"""The demo server's HTTP side: routing requests to the REST resources and the blobs.

:class:`Handler` answers one connection's requests for a
:class:`~odyssey_data.demo.DemoServer` (reached as ``self.demo``): it reads the body,
applies a pending injected fault, authenticates, and routes ``/auth/token``,
``/stream-recordings``, ``/recordings/{id}``, ``/simulation-jobs[/{id}]`` and
``/blobs/{id}/{name}`` (with single ``Range`` requests, 206/416). Errors are answered
as the API does (JSON ``detail``) or, for blobs, as S3 does (XML). Every answer is
recorded in the server's request log.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import re
import secrets
import socket
import threading
import time
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, TypeVar, cast
from urllib.parse import parse_qs, unquote, urlsplit

from odyssey_data.demo import resources
from odyssey_data.demo.faults import Fault, LoggedRequest

if TYPE_CHECKING:
    from odyssey_data.demo.server import DemoServer

_Item = TypeVar("_Item")

# The server's logger, as when the server was one module.
log = logging.getLogger("odyssey_data.demo.server")

#: The blobs of a recording, with their content types.
BLOBS: dict[str, str] = {
    "video.mp4": "video/mp4",
    "events.jsonl": "application/x-ndjson",
    "thumbnail.jpg": "image/jpeg",
    "preview.mp4": "video/mp4",
}
_MAX_BODY = 1 << 20
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


class DemoHTTPServer(ThreadingHTTPServer):
    """The listening socket of a :class:`DemoServer`: a thread per connection."""

    daemon_threads = True
    # Tracks open client sockets so stop() can close idle keep-alive connections too.
    _open: set[socket.socket]

    def __init__(self, address: tuple[str, int], demo: DemoServer) -> None:
        self.demo = demo
        self._open = set()
        self._open_lock = threading.Lock()
        super().__init__(address, Handler)

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


class Handler(BaseHTTPRequestHandler):
    """Answers one connection's requests (HTTP/1.1 keep-alive) like the Odyssey API."""

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
        return cast(DemoHTTPServer, self.server).demo

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
        self._page("recordings", self.demo.catalog.snapshot(), resources.recording_info)

    def _list_jobs(self) -> None:
        query = parse_qs(urlsplit(self.path).query, keep_blank_values=True)
        jobs = self.demo.catalog.jobs_snapshot()
        status = (query.get("status") or [""])[-1]
        if status:
            jobs = [job for job in jobs if job.status == status]
        active = (query.get("active") or [""])[-1].lower()
        if active in ("true", "1", "false", "0"):
            jobs = [job for job in jobs if job.is_active == (active in ("true", "1"))]
        self._page("jobs", jobs, resources.job_info)

    def _job(self, job_id: str) -> None:
        job = self.demo.catalog.job(job_id)
        if job is None:
            self._detail(404, "Simulation job not found")
            return
        self._json(200, resources.job_detail(job, self.demo.presign))

    def _recording(self, stream_id: str) -> None:
        rec = self.demo.catalog.get(stream_id)
        if rec is None:
            self._detail(404, "Recording not found")
            return
        self._json(200, resources.recording_detail(rec, self.demo.presign))

    # --- blobs ------------------------------------------------------------------------

    def _blob(self, stream_id: str, name: str) -> None:
        query = {k: v[-1] for k, v in parse_qs(urlsplit(self.path).query).items()}
        verdict = self.demo._check_signature(stream_id, name, query)
        if verdict is not None:
            self._s3_error(403, "AccessDenied", verdict)
            return
        rec = self.demo.catalog.get(stream_id)
        data: bytes | None = None
        if rec is not None and name in BLOBS:
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
            self._send(200, data, content_type=BLOBS[name], headers=headers, throttle=True)
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
            206, data[first : last + 1], content_type=BLOBS[name], headers=headers, throttle=True
        )
