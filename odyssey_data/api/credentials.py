"""Where credentials go, and where they never show.

The API key and the bearer token go only to the ``api_url`` origin (scheme, host and
port as given): :class:`CredentialGuard` is an httpx request hook that refuses, before it
is sent, a request carrying the token elsewhere, a download redirected from https to
plain http, or one redirected to a link-local or cloud metadata address. Server text is
shown only through :func:`scrub`, and the logs of httpx and httpcore never show a query
string (a presigned URL's signature is a credential).
"""

from __future__ import annotations

import logging
import os
import re

import httpx

from odyssey_data.errors import ConfigError, printable, redact_url
from odyssey_data.models import is_metadata_host

__all__ = [
    "DEFAULT_API_URL",
    "HTTPS_ONLY",
    "CredentialGuard",
    "Refused",
    "origin",
    "resolve_credentials",
    "scrub",
]

DEFAULT_API_URL = "https://api.odyssey.ml"
_DEFAULT_PORTS = {"http": 80, "https": 443}
_QUERY = re.compile(r"\?[^\s'\"<>]*")


def origin(url: httpx.URL) -> tuple[str, str, int | None]:
    """Scheme, host and port: where a credential may go."""
    return (url.scheme, url.host, url.port or _DEFAULT_PORTS.get(url.scheme))


class _RedactHttpxLog(logging.Filter):
    """httpx logs full request URLs at INFO; presigned query strings are credentials."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                redact_url(str(a)) if isinstance(a, httpx.URL) else a for a in record.args
            )
        return True


class _RedactQueryLog(logging.Filter):
    """httpcore's debug traces show response headers: a ``Location`` may be presigned."""

    _QUERY = re.compile(r"\?[^\s'\"()\],]*")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "?" in message:
            record.msg, record.args = self._QUERY.sub("?<redacted>", message), None
        return True


logging.getLogger("httpx").addFilter(_RedactHttpxLog())
for _name in ("connection", "http11", "http2", "proxy", "socks"):
    logging.getLogger(f"httpcore.{_name}").addFilter(_RedactQueryLog())


def resolve_credentials(api_url: str | None, api_key: str | None) -> tuple[str, str]:
    """Resolve the API URL and key from options, then ``ODYSSEY_API_URL``/``ODYSSEY_API_KEY``.

    Raises:
        ConfigError: no key was given, or the URL is not http(s).
    """
    url = (api_url or os.environ.get("ODYSSEY_API_URL") or DEFAULT_API_URL).rstrip("/")
    key = api_key or os.environ.get("ODYSSEY_API_KEY") or ""
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"the API URL {redact_url(url)!r} must start with http:// or https://")
    if not key:
        raise ConfigError(
            "no Odyssey API key: pass --api-key or set ODYSSEY_API_KEY "
            "(or try 'odyssey-data demo' to run against the local demo server)"
        )
    return url, key


class Refused(Exception):
    """A request the client refuses to send (raised by its request hook)."""


#: The request extension that marks a download begun on https (see the request hook).
HTTPS_ONLY = "odyssey_data.https_only"


class CredentialGuard:
    """An httpx request hook, run before every request and redirect is sent: a bearer
    token goes to the API's origin or nowhere, a download that began on https never
    goes on over plain http, and no download is redirected to a link-local or cloud
    metadata address.

    Raises:
        Refused: the request must not be sent (the caller makes it its own error).
    """

    def __init__(self, api_url: str) -> None:
        self.api_url = api_url
        self.origin = origin(httpx.URL(api_url))

    def __call__(self, request: httpx.Request) -> None:
        if "authorization" in request.headers and origin(request.url) != self.origin:
            raise Refused(
                f"refusing to send the API's bearer token to {redact_url(str(request.url))}, "
                f"outside the API's origin {self.api_url}"
            )
        if HTTPS_ONLY in request.extensions and is_metadata_host(request.url.host):
            raise Refused(
                f"refusing a redirect to {redact_url(str(request.url))}, a link-local or "
                "cloud metadata address"
            )
        if request.extensions.get(HTTPS_ONLY) and request.url.scheme != "https":
            raise Refused(
                f"refusing a redirect from https to plain http ({redact_url(str(request.url))}):"
                " the file could be altered on the way"
            )


def scrub(text: str, secrets: tuple[str | None, ...]) -> str:
    """Server text fit for a message: no secret (the key, the token), no query string, no
    control characters."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "<redacted>")
    return printable(_QUERY.sub("?<redacted>", text))[:200]
