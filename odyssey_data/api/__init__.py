"""The Odyssey REST API client and the downloader of presigned artifacts (httpx).

This package is the only place that imports ``httpx``; its errors become the package's
:mod:`~odyssey_data.errors` here. One sync :class:`httpx.Client` pools connections for the
API and the presigned blob URLs alike (the bearer token is only sent to the API).

Retries (with exponential backoff and jitter, by ``stamina``) cover connect errors,
timeouts, dropped connections, short bodies, 408, 429 (honouring ``Retry-After``) and the
5xx that can heal (500, 502, 503, 504…; not 501 Not Implemented or 505). Other 4xx are
final, except a 401 from the API (the token is refreshed once) and the 403 of an expired
presigned URL (fresh URLs are asked for, and the download goes on). Each retry is logged
as one line, ``retrying GET URL in 1.6 s (attempt 2/6: connection refused)`` (logger
``odyssey_data.api``, level WARNING; the URL without its query string).

Credentials go only where they belong: the API key and the bearer token are sent only to
the ``api_url`` origin (scheme, host and port as given). ``POST /auth/token`` never
follows a redirect (the key is in its body); other API calls follow one only within the
origin; a request carrying a credential to any other origin is refused before it is
sent. Text a server sends back is shown only with the key, the token and every query
string redacted, and control characters neutralised. API answers are read up to
:data:`~odyssey_data.api.client.MAX_ANSWER_BYTES`.

The modules, one seam each:

- :mod:`~odyssey_data.api.client`: :class:`OdysseyClient`, its token, requests and endpoints;
- :mod:`~odyssey_data.api.paging`: :class:`OffsetPaginator` and the listing loop;
- :mod:`~odyssey_data.api.download`: one download (resume, ``If-Range``, size cap, rate floor);
- :mod:`~odyssey_data.api.credentials`: where the key and token may go, redaction of logs;
- :mod:`~odyssey_data.api.errors`: the one translation of httpx's exceptions (and of the
  answers worth another try) into :mod:`odyssey_data.errors`, with the retry decision;
- :mod:`~odyssey_data.api.retry`: the retry loop (backoff, the retry log line);
- :mod:`~odyssey_data.api.transport`: the shared TLS context and wide socket reads.
"""

from __future__ import annotations

from odyssey_data.api.client import OdysseyClient, open_client
from odyssey_data.api.credentials import DEFAULT_API_URL, resolve_credentials
from odyssey_data.api.download import DownloadStats
from odyssey_data.api.paging import OffsetPaginator
from odyssey_data.options import RetryPolicy

__all__ = [
    "DEFAULT_API_URL",
    "DownloadStats",
    "OdysseyClient",
    "OffsetPaginator",
    "RetryPolicy",
    "open_client",
    "resolve_credentials",
]
