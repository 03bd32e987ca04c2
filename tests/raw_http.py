"""A tiny HTTP server on 127.0.0.1 whose every answer a test writes by hand (tests only).

For the faults the demo server cannot stage: a port that refuses connections until the
server comes up, an answer whose headers never come, a body that stalls or whose chunked
encoding stops early, a redirect, a server with a certificate nobody trusts. Each
connection carries one request (answers say ``Connection: close``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

KEY = "ody_raw_server_key_5e1f0c9a7b3d"
SIGNATURE = "5ec2e7519a7u2e0f"  # the "presigned" query of every blob URL served here


@dataclass(frozen=True)
class Seen:
    """One request as the server read it."""

    index: int
    method: str
    target: str  # with the query string
    headers: dict[str, str]  # lower-case names
    at: float  # time.monotonic() when it arrived

    @property
    def path(self) -> str:
        return urlsplit(self.target).path


class Conn:
    """The connection a responder writes its answer to."""

    def __init__(self, sock: socket.socket, stop: threading.Event) -> None:
        self.sock = sock
        self._stop = stop

    def raw(self, data: bytes) -> None:
        with contextlib.suppress(OSError):
            self.sock.sendall(data)

    def head(self, status: int, headers: dict[str, str]) -> None:
        lines = [f"HTTP/1.1 {status} X"]
        lines += [f"{k}: {v}" for k, v in {**headers, "Connection": "close"}.items()]
        self.raw(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))

    def send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        """A whole answer with ``Content-Length``."""
        self.head(status, {"Content-Length": str(len(body)), **(headers or {})})
        self.raw(body)

    def json(self, status: int, payload: object) -> None:
        self.send(status, json.dumps(payload).encode(), {"Content-Type": "application/json"})

    def stall(self, seconds: float) -> None:
        """Send nothing for ``seconds`` (returns early when the server stops)."""
        self._stop.wait(seconds)


Responder = Callable[[Seen, Conn], None]


class RawHTTPServer:
    """Calls ``respond(seen, conn)`` for every request, in a thread per connection."""

    def __init__(
        self, respond: Responder, *, port: int = 0, tls: ssl.SSLContext | None = None
    ) -> None:
        self.respond = respond
        self.port = port
        self.tls = tls
        self.requests: list[Seen] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._listener: socket.socket | None = None
        self._socks: set[socket.socket] = set()

    @property
    def base_url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def start(self) -> RawHTTPServer:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(16)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._listener is not None:
            self._listener.close()
        with self._lock:
            socks = list(self._socks)
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def __enter__(self) -> RawHTTPServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def count(self, path_prefix: str = "") -> int:
        with self._lock:
            return sum(1 for seen in self.requests if seen.path.startswith(path_prefix))

    def _accept(self) -> None:
        assert self._listener is not None
        while not self._stop.is_set():
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(sock,), daemon=True).start()

    def _serve(self, sock: socket.socket) -> None:
        with self._lock:
            self._socks.add(sock)
        try:
            if self.tls is not None:
                try:
                    sock = self.tls.wrap_socket(sock, server_side=True)
                except (OSError, ssl.SSLError):
                    return  # the client refused our certificate
            sock.settimeout(10)
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = sock.recv(65536)
                if not chunk:
                    return
                data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, target, _ = lines[0].split(" ", 2)
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            missing = int(headers.get("content-length", "0")) - len(body)
            while missing > 0:
                chunk = sock.recv(missing)
                if not chunk:
                    break
                missing -= len(chunk)
            with self._lock:
                seen = Seen(len(self.requests), method, target, headers, time.monotonic())
                self.requests.append(seen)
            self.respond(seen, Conn(sock, self._stop))
        except OSError:
            pass
        finally:
            with self._lock:
                self._socks.discard(sock)
            with contextlib.suppress(OSError):
                sock.close()


def serve_api(seen: Seen, conn: Conn, base_url: str, blob: str = "/blob/video.mp4") -> bool:
    """Answer the API's token and recording calls; False for anything else.

    ``GET /recordings/{id}`` gives ``video_url`` = ``base_url + blob`` with a presigned
    looking query string (:data:`SIGNATURE`) and no events log.
    """
    if seen.path == "/auth/token":
        conn.json(200, {"access_token": "raw-token", "expires_in": 3600})
        return True
    if seen.path.startswith("/recordings/"):
        url = f"{base_url}{blob}?X-Amz-Signature={SIGNATURE}"
        conn.json(200, {"stream_id": seen.path.rsplit("/", 1)[1], "video_url": url})
        return True
    return False


def serve_range(seen: Seen, conn: Conn, data: bytes, *, ranges: bool = True) -> None:
    """The whole of ``data``, or the ``Range: bytes=N-`` asked for (206 / 416)."""
    spec = seen.headers.get("range")
    if not ranges or not spec:
        conn.send(200, data, {"Accept-Ranges": "bytes"} if ranges else {})
        return
    start = int(spec.removeprefix("bytes=").rstrip("-"))
    if start >= len(data):
        conn.send(416, b"", {"Content-Range": f"bytes */{len(data)}"})
        return
    conn.send(
        206,
        data[start:],
        {"Accept-Ranges": "bytes", "Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}"},
    )


def free_port() -> int:
    """A port nothing listens on (yet)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 that no system trusts: (cert, key) files."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "odyssey-data test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


def tls_context(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    """A server-side TLS context with ``certificate`` (see :func:`self_signed_certificate`)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    return context
