"""Opening a storage target: the fsspec filesystem behind a URL, checked up front.

A missing extra (s3fs, gcsfs), an unknown protocol, a mistyped storage option and an
endpoint with nothing listening each fail at once, in one line that says the fix,
instead of as fsspec's long error or after a backend's seconds of retries.
"""

from __future__ import annotations

import importlib
import re
import socket
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import fsspec

from odyssey_data.errors import (
    ConfigError,
    MissingDependencyError,
    StorageUnreachableError,
    redact_url,
)
from odyssey_data.storage.errors import bad_option_error, known_options

__all__ = ["check_endpoint", "open_target", "protocols"]

#: The protocols that need an extra: (package, extra).
_EXTRAS = {
    "s3": ("s3fs", "s3"),
    "s3a": ("s3fs", "s3"),
    "gs": ("gcsfs", "gcs"),
    "gcs": ("gcsfs", "gcs"),
}


def protocols(fs: fsspec.AbstractFileSystem) -> tuple[str, ...]:
    """The protocol names of ``fs`` (``("s3", "s3a")``…)."""
    protocol = fs.protocol
    return (protocol,) if isinstance(protocol, str) else tuple(protocol)


def _require_backend(protocol: str) -> None:
    """Import the package behind ``protocol`` when it is an extra, or say how to install it.

    Checked before fsspec sees the URL: fsspec's own error is long and names no extra.
    """
    if protocol not in _EXTRAS:
        return
    package, extra = _EXTRAS[protocol]
    try:
        importlib.import_module(package)
    except ImportError as exc:
        raise MissingDependencyError(package, extra, f"the storage target {protocol}://") from exc


def open_target(
    url: str, storage_options: Mapping[str, Any]
) -> tuple[fsspec.AbstractFileSystem, str]:
    """The fsspec filesystem of ``url`` and the root path on it.

    Raises:
        MissingDependencyError: the URL needs an extra (s3fs, gcsfs) that is missing.
        ConfigError: the URL's protocol is unknown, or a storage option is not one the
            backend takes (the nearest it does take is named).
    """
    protocol = url.split("://", 1)[0].lower() if "://" in url else "file"
    _require_backend(protocol)
    try:
        fs, root = fsspec.core.url_to_fs(url, **storage_options)
    except ImportError as exc:
        package, extra = _EXTRAS.get(protocol, (protocol, protocol))
        raise MissingDependencyError(package, extra, f"writing to {protocol}://") from exc
    except ValueError as exc:
        raise ConfigError(f"unknown storage target {url!r}: {exc}") from exc
    except TypeError as exc:
        m = re.search(r"unexpected keyword argument '([^']+)'", str(exc))
        if m is None:
            raise ConfigError(
                f"invalid storage options for {url!r} ({exc}); check the --storage-option keys"
            ) from exc
        cls = fsspec.get_filesystem_class(protocol)
        raise bad_option_error(url, m.group(1), known_options(cls)) from exc
    return fs, root


def check_endpoint(url: str, storage_options: Mapping[str, Any], timeout_s: float = 3.0) -> None:
    """Fail at once, in one line, when the ``endpoint_url`` given has nothing listening.

    Backends retry a refused connection for seconds (s3fs and botocore both do, ~12 s
    in all) before a many-line error; one TCP connect tells the same in milliseconds.

    Raises:
        StorageUnreachableError: nothing accepts a connection at the endpoint.
    """
    endpoint = storage_options.get("endpoint_url")
    if not isinstance(endpoint, str) or "://" not in endpoint:
        return
    parts = urlsplit(endpoint)
    if not parts.hostname:
        return
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        socket.create_connection((parts.hostname, port), timeout=timeout_s).close()
    except OSError as exc:
        raise StorageUnreachableError(
            f"cannot reach the storage endpoint {redact_url(endpoint)} for {url} "
            f"({exc.strerror or type(exc).__name__}); check --storage-option endpoint_url "
            "and that the server is running"
        ) from exc
