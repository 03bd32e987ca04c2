"""One translation point for the errors of storage backends (fsspec, s3fs/botocore,
gcsfs/google-auth, aiohttp, the OS) into :class:`~odyssey_data.errors.StorageError`.

Backends raise a zoo of exceptions whose text runs to many lines (or a 70-line
traceback when nobody catches them). :func:`storage_error` turns any of them into one
line that says what failed, where, and the fix; :func:`translating` wraps the methods of
:class:`~odyssey_data.storage.DatasetStore` with it. Classification looks at the type
names along the exception's cause chain, so no backend has to be imported here.
"""

from __future__ import annotations

import difflib
import errno
import functools
import inspect
import re
from collections.abc import Callable
from typing import Any, TypeVar, cast

from odyssey_data.errors import (
    ConfigError,
    OdysseyDataError,
    StorageAccessError,
    StorageError,
    StorageFullError,
    StorageNotFoundError,
    StorageUnreachableError,
    causes,
    redact_url,
)

__all__ = ["bad_option_error", "known_options", "storage_error", "translate", "translating"]

_F = TypeVar("_F", bound=Callable[..., Any])

_NO_CREDENTIALS = {
    "NoCredentialsError",
    "PartialCredentialsError",
    "DefaultCredentialsError",
    "CredentialRetrievalError",
}
_REFUSED_CREDENTIALS = {"RefreshError", "InvalidAccessKeyId", "SignatureDoesNotMatch"}
_UNREACHABLE = {
    "EndpointConnectionError",
    "ConnectTimeoutError",
    "ConnectionClosedError",
    "ClientConnectorError",
    "ClientConnectionError",
    "ServerDisconnectedError",
    "ServerTimeoutError",
    "ConnectionRefusedError",
    "ConnectionResetError",
    "ConnectionAbortedError",
    "TimeoutError",
    "gaierror",
    "TransportError",
}
_UNEXPECTED_KEYWORD = re.compile(r"unexpected keyword argument '([^']+)'")


def _names(exc: BaseException) -> set[str]:
    names: set[str] = set()
    for item in causes(exc):
        names.update(cls.__name__ for cls in type(item).__mro__)
        code = getattr(item, "response", None)
        if isinstance(code, dict):  # botocore ClientError: response["Error"]["Code"]
            error = code.get("Error")
            if isinstance(error, dict) and isinstance(error.get("Code"), str):
                names.add(error["Code"])
    return names


def _status(exc: BaseException) -> int | None:
    for item in causes(exc):
        code = getattr(item, "code", None)  # gcsfs HttpError
        if isinstance(code, int) and 100 <= code < 600:
            return code
    return None


def _errno(exc: BaseException) -> int | None:
    for item in causes(exc):
        if isinstance(item, OSError) and item.errno is not None:
            return item.errno
    return None


def _protocol(url: str) -> str:
    return url.split("://", 1)[0].lower() if "://" in url else "file"


def _credentials_fix(url: str) -> str:
    protocol = _protocol(url)
    if protocol in ("s3", "s3a"):
        return (
            "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE), or pass "
            "--storage-option key=... --storage-option secret=..."
        )
    if protocol in ("gs", "gcs"):
        return (
            "set GOOGLE_APPLICATION_CREDENTIALS to a service-account file (or run "
            "'gcloud auth application-default login'), or pass --storage-option token=..."
        )
    return "check the credentials in --storage-option"


def _endpoint(options: dict[str, Any] | None) -> str | None:
    value = (options or {}).get("endpoint_url")
    if value is None:
        client_kwargs = (options or {}).get("client_kwargs")
        if isinstance(client_kwargs, dict):
            value = client_kwargs.get("endpoint_url")
    return redact_url(str(value)) if value else None


def _one_line(text: str, limit: int = 160) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def storage_error(
    exc: BaseException,
    *,
    action: str,
    path: str,
    url: str,
    storage_options: dict[str, Any] | None = None,
    fs_class: type | None = None,
) -> OdysseyDataError:
    """The package's one-line error for a backend's ``exc`` while ``action`` on ``path``.

    Args:
        exc: what the backend raised.
        action: ``"write"``, ``"read"``, ``"list"``, ``"delete"``, ``"create"``…
        path: the dataset file concerned (relative) or the root.
        url: the dataset root, as the user gave it.
        storage_options: the fsspec options (only ``endpoint_url`` is named in messages).
        fs_class: the fsspec filesystem class, whose options a mistyped one is matched to.

    Returns:
        A :class:`StorageError` subclass, or a :class:`ConfigError` for a storage option
        the backend does not take. An error that is already the package's is returned
        as it is.
    """
    if isinstance(exc, OdysseyDataError):
        return exc
    where = f"{path} under {url}" if path and path != url else url
    head = f"cannot {action} {where}"
    names = _names(exc)
    status = _status(exc)
    code = _errno(exc)
    if isinstance(exc, TypeError) and (m := _UNEXPECTED_KEYWORD.search(str(exc))):
        return bad_option_error(url, m.group(1), known_options(fs_class))
    if names & _NO_CREDENTIALS:
        return StorageAccessError(f"{head}: no credentials found; {_credentials_fix(url)}")
    if names & _REFUSED_CREDENTIALS or status == 401:
        return StorageAccessError(f"{head}: the credentials were refused; {_credentials_fix(url)}")
    if code in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        problem = "file too large for the target" if code == errno.EFBIG else "no space left"
        return StorageFullError(
            f"{head}: {problem}; free some space (or export to another place) and run "
            "again: what was committed is kept"
        )
    if code == errno.EROFS:
        return StorageAccessError(
            f"{head}: the file system is read-only; export to a writable place"
        )
    if "PermissionError" in names or "AccessDenied" in names or status == 403:
        local = _protocol(url) in ("file", "local")
        check = "the folder's permissions" if local else "the credentials and the bucket policy"
        return StorageAccessError(f"{head}: permission denied; check {check}")
    if names & _UNREACHABLE:
        endpoint = _endpoint(storage_options)
        target = f"the endpoint {endpoint}" if endpoint else f"the {_protocol(url)}:// service"
        return StorageUnreachableError(
            f"{head}: cannot reach {target} ({_one_line(type(exc).__name__)}); check "
            "--storage-option endpoint_url and that the server is running"
        )
    if (
        action == "read"
        and path
        and isinstance(exc, FileNotFoundError)
        and "NoSuchBucket" not in names
    ):
        # The file was there when it was opened: deleted or replaced since.
        return StorageNotFoundError(
            f"{head}: the file is gone (deleted or replaced since it was opened); open "
            "the dataset again, and run 'odyssey-data verify' if it stays missing"
        )
    if "NoSuchBucket" in names or (status == 404 and _protocol(url) != "file"):
        bucket = url.split("://", 1)[-1].split("/", 1)[0]
        return StorageNotFoundError(
            f"{head}: the bucket {bucket!r} does not exist; create it first or fix the URL"
        )
    if isinstance(exc, NotADirectoryError) or code == errno.ENOTDIR:
        return StorageError(
            f"{head}: a file is in the way where a folder must be ({_one_line(str(exc))}); "
            "move it, or choose another OUTPUT"
        )
    if isinstance(exc, IsADirectoryError) or code == errno.EISDIR:
        return StorageError(
            f"{head}: a folder is in the way where a file must be; move it, or choose "
            "another OUTPUT"
        )
    if isinstance(exc, FileNotFoundError) and _protocol(url) in ("s3", "s3a", "gs", "gcs"):
        bucket = url.split("://", 1)[-1].split("/", 1)[0]
        return StorageNotFoundError(
            f"{head}: not found (does the bucket {bucket!r} exist?); create it first or fix the URL"
        )
    detail = _one_line(str(exc) or type(exc).__name__)
    return StorageError(f"{head}: {detail}")


def bad_option_error(url: str, key: str, known: list[str]) -> ConfigError:
    """The error for a storage option ``key`` the backend of ``url`` does not take,
    with the nearest of the ``known`` names it does take."""
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return ConfigError(
        f"the {_protocol(url)}:// storage does not take the option {key!r} "
        f"(--storage-option {key}=...){hint}"
    )


def known_options(cls: type | None) -> list[str]:
    """The keyword options the filesystem class ``cls`` names in its constructors."""
    if cls is None:
        return []
    names: list[str] = []
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        try:
            params = inspect.signature(init).parameters
        except (TypeError, ValueError):
            continue
        names += [n for n, p in params.items() if n != "self" and p.kind is not p.VAR_KEYWORD]
    return sorted(set(names))


def translate(exc: Exception, store: Any, action: str, path: str) -> Exception | None:
    """``store._error(exc, ...)`` for a backend's error; ``None`` for an error that is
    already the package's, or a programming error (which must show as it is).

    What :func:`translating` and the store's read handles use.
    """
    if isinstance(exc, OdysseyDataError):
        return None
    if isinstance(exc, TypeError) and not _UNEXPECTED_KEYWORD.search(str(exc)):
        return None
    if isinstance(exc, (AttributeError, KeyError, IndexError, AssertionError, NameError)):
        return None
    translated: Exception = store._error(exc, action, path)
    return translated


def translating(action: str) -> Callable[[_F], _F]:
    """Decorate a :class:`DatasetStore` method: backend errors become one-line errors.

    The method's first argument after ``self`` names the file when it is a string.
    Works for plain methods and generator methods.
    """

    def decorate(method: _F) -> _F:
        def path_of(args: tuple[Any, ...]) -> str:
            return args[0] if args and isinstance(args[0], str) else ""

        if inspect.isgeneratorfunction(method):

            @functools.wraps(method)
            def gen_wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
                try:
                    yield from method(self, *args, **kwargs)
                except Exception as exc:
                    translated = translate(exc, self, action, path_of(args))
                    if translated is None:
                        raise
                    raise translated from exc

            return cast("_F", gen_wrapper)

        @functools.wraps(method)
        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                return method(self, *args, **kwargs)
            except Exception as exc:
                translated = translate(exc, self, action, path_of(args))
                if translated is None:
                    raise
                raise translated from exc

        return cast("_F", wrapper)

    return decorate
