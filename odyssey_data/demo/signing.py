"""The demo server's credentials: bearer tokens, and presigned blob URLs it can check.

URLs are signed like S3's query-string authentication (``X-Amz-*`` parameters, an
HMAC-SHA256 with a per-server secret) plus two signed ``X-Demo-*`` parameters that keep
the issue time and lifetime in milliseconds, so tests can use sub-second lifetimes.
Times are epoch seconds from the server's replaceable clock.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import threading
from datetime import UTC, datetime
from urllib.parse import quote, urlencode

_CREDENTIAL_ID = "ODYSSEYDEMOAKIA0000"
#: The query parameters a presigned URL carries, all required.
_SIGNED_QUERY = (
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Date",
    "X-Amz-Expires",
    "X-Amz-SignedHeaders",
    "X-Demo-Issued-Ms",
    "X-Demo-Ttl-Ms",
    "X-Amz-Signature",
)


class Tokens:
    """Bearer tokens issued by ``POST /auth/token``, each with its expiry (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._expiry: dict[str, float] = {}

    def issue(self, now: float, ttl_s: float) -> str:
        """A new token valid until ``now + ttl_s``."""
        token = "demo." + secrets.token_urlsafe(24)
        with self._lock:
            self._expiry[token] = now + ttl_s
        return token

    def valid(self, token: str, now: float) -> bool:
        """Whether ``token`` was issued and has not expired at ``now``."""
        with self._lock:
            expiry = self._expiry.get(token)
        return expiry is not None and now < expiry

    def clear(self) -> None:
        """Invalidate every issued token."""
        with self._lock:
            self._expiry.clear()


class UrlSigner:
    """Signs blob URLs with a secret of its own and checks them."""

    def __init__(self) -> None:
        self._secret = secrets.token_bytes(32)

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

    def presign(self, base_url: str, stream_id: str, name: str, *, now: float, ttl_s: float) -> str:
        """The URL of blob ``name`` of ``stream_id`` under ``base_url``, valid ``ttl_s``."""
        issued = datetime.fromtimestamp(now, UTC)
        params = {
            "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
            "X-Amz-Credential": f"{_CREDENTIAL_ID}/{issued:%Y%m%d}/us-east-1/s3/aws4_request",
            "X-Amz-Date": f"{issued:%Y%m%dT%H%M%SZ}",
            "X-Amz-Expires": str(max(1, math.ceil(ttl_s))),
            "X-Amz-SignedHeaders": "host",
            # S3 counts expiry in whole seconds from X-Amz-Date; these two, also signed,
            # keep millisecond precision so tests can use sub-second lifetimes.
            "X-Demo-Issued-Ms": str(int(now * 1000)),
            "X-Demo-Ttl-Ms": str(max(0, round(ttl_s * 1000))),
        }
        params["X-Amz-Signature"] = self._signature(stream_id, name, params)
        segment = quote(stream_id, safe="")
        if segment in (".", ".."):  # a client would resolve a dot segment away
            segment = segment.replace(".", "%2E")
        return f"{base_url}/blobs/{segment}/{name}?{urlencode(params)}"

    def refusal(self, stream_id: str, name: str, query: dict[str, str], now: float) -> str | None:
        """Why a blob request with this query is refused at ``now``, or ``None`` if not."""
        if any(key not in query for key in _SIGNED_QUERY):
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
        if now * 1000 >= expires_ms:
            return "Request has expired"
        return None
