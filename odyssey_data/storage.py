"""Writing and reading the dataset on any fsspec target, and its commit protocol.

The only module that imports ``fsspec`` and writes Parquet. Layout and names follow
``dataset-format.md``; the commit protocol follows ``design.md``:

* Shards get deterministic names (``frames/part-000003.parquet``) and are written whole:
  on a local disk to a temp file in the same folder, then ``os.replace``; on object
  stores one PUT, which is atomic.
* ``manifest.json`` lists every file with its row count, size and SHA-256 and every
  recording's status. It is written last and replaced atomically, so a reader sees the
  old dataset or the new one, never half of one. A file it does not list is a leftover.
* Note: ``pq.write_table(path, filesystem=<fsspec local>)`` silently bypasses fsspec for
  local paths, so every file is opened with ``fs.open`` and pyarrow gets the handle.

Ownership (OUTPUT is shared with whatever already sits there):

* The export deletes or overwrites only names of its own (:data:`OWNED_NAMES`, the one
  registry of them: add a pattern there for every new kind of file the export writes)
  under a root it owns: one holding ``manifest.json``, or one that was empty (or absent)
  when the first export started, which then commits an empty manifest before writing
  anything else. :meth:`DatasetStore.check_ownership` refuses any other root, and
  :meth:`DatasetStore.remove` refuses any name not in the registry.
* On a local disk no path below the root may be a symbolic link: reading, writing and
  deleting refuse one (:meth:`DatasetStore.path`), and listings skip them, so nothing
  outside OUTPUT is ever touched through a link.
* Temp files live where the next run finds them: ``.tmp-`` names in the dataset's own
  folders (local), or a per-user scratch folder (:func:`local_scratch_root`) for targets
  that are not a local disk, whose folders are removed once their process is gone.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import importlib
import inspect
import io
import json
import logging
import os
import re
import shutil
import socket
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import urlsplit

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

if TYPE_CHECKING:
    import pyarrow.dataset as pads
from fsspec.implementations.local import LocalFileSystem
from fsspec.spec import AbstractBufferedFile

from odyssey_data.errors import (
    ConfigError,
    DatasetDamagedError,
    MissingDependencyError,
    StorageError,
    StorageUnreachableError,
    redact_url,
)
from odyssey_data.manifest import MANIFEST_NAME, FileEntry, utc_now_iso
from odyssey_data.schema import TABLES
from odyssey_data.storage_errors import bad_option_error, known_options, storage_error, translating

__all__ = [
    "LOCK_NAME",
    "MANIFEST_NAME",
    "OWNED_NAMES",
    "DatasetStore",
    "FileEntry",
    "WriterLock",
    "hash_file",
    "is_owned",
    "local_scratch_root",
    "safe_name",
    "utc_now_iso",
]

log = logging.getLogger(__name__)

#: The writer lock at the dataset root; readers ignore it.
LOCK_NAME = "_odyssey.lock"
#: Prefix of local temp files (renamed into place when whole; leftovers are removed).
TMP_PREFIX = ".tmp-"
#: Prefix of the temp folders workers download into (``tempfile`` adds random letters).
SCRATCH_PREFIX = f"{TMP_PREFIX}odyssey-data-"
ROW_GROUP_ROWS = 100_000
IMAGE_ROW_GROUP_ROWS = 1_024
#: The generation line of a manifest as :meth:`Manifest.dumps` writes it (one space in).
_GENERATION = re.compile(rb'^ "generation": (\d+),$', re.MULTILINE)
_SAFE_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,127}$")
#: The suffixes of a recording's media beside its video (``<name>.preview.mp4``).
_MEDIA_SUFFIXES = (".preview", ".thumbnail")
#: Names Windows keeps for devices, whatever the extension.
_DEVICE_NAMES = frozenset(
    ["con", "prn", "aux", "nul"] + [f"{p}{i}" for p in ("com", "lpt") for i in range(1, 10)]
)
_EXTRAS = {
    "s3": ("s3fs", "s3"),
    "s3a": ("s3fs", "s3"),
    "gs": ("gcsfs", "gcs"),
    "gcs": ("gcsfs", "gcs"),
}


# -- what the export owns ---------------------------------------------------------------
#: A file name :func:`safe_name` makes (the stem of a recording's files).
_SAFE_STEM = r"[A-Za-z0-9_][A-Za-z0-9._-]{0,199}"
#: A temp file of :meth:`DatasetStore._writing`: ``.tmp-<32 hex>-<final name>``.
_TMP_FILE = r"\.tmp-[0-9a-f]{32}-[^/]+"
#: A worker's temp folder (:data:`SCRATCH_PREFIX` + ``tempfile``'s random letters).
_SCRATCH_DIR = re.escape(SCRATCH_PREFIX) + r"[A-Za-z0-9_-]+"

#: The names the export writes, relative to the dataset root: the one registry of what
#: it owns. Only a name matching one of these may be deleted or overwritten (and only
#: under a root the export owns, see :meth:`DatasetStore.check_ownership`); anything
#: else in OUTPUT is the user's and is never touched. A feature that writes a new kind
#: of file into the dataset adds its pattern here (a full match of the relative path).
#: (The dataset card ``README.md`` proves itself instead, by the seal in its last line:
#: see :mod:`odyssey_data.card`; a LeRobot conversion by the file list of its record.)
OWNED_NAMES: list[re.Pattern[str]] = [
    re.compile(re.escape(name)) for name in (MANIFEST_NAME, LOCK_NAME)
] + [
    re.compile(rf"({'|'.join(TABLES)})/part-\d{{6,}}\.parquet"),
    re.compile(rf"videos/{_SAFE_STEM}\.mp4"),
    re.compile(rf"videos/{_SAFE_STEM}\.(thumbnail\.jpg|preview\.mp4)"),
    # Temp files beside their final name (root or a dataset folder), and worker folders.
    re.compile(rf"(({'|'.join((*TABLES, 'videos'))})/)?{_TMP_FILE}"),
    re.compile(rf"{_SCRATCH_DIR}(/.*)?"),
]


def is_owned(rel: str) -> bool:
    """Whether ``rel`` (a path relative to the dataset root) is a name the export writes.

    See :data:`OWNED_NAMES`.
    """
    return any(pattern.fullmatch(rel) for pattern in OWNED_NAMES)


def local_scratch_root() -> str:
    """The folder on this machine for temp files of exports to targets that are not a
    local disk (object stores): ``ODYSSEY_DATA_SCRATCH``, else ``$XDG_CACHE_HOME`` (or
    ``~/.cache``) ``/odyssey-data/scratch``.

    Not the system temp folder: a run killed with SIGKILL leaves its folder here, and the
    next export removes it (see :meth:`DatasetStore.remove_scratch`).
    """
    configured = os.environ.get("ODYSSEY_DATA_SCRATCH")
    if configured:
        return configured
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(cache, "odyssey-data", "scratch")


def scratch_prefix() -> str:
    """The prefix of this process's temp folders: :data:`SCRATCH_PREFIX`, this process's
    id and start time (so a later run can tell whether the process is gone) and ``-``."""
    pid = os.getpid()
    return f"{SCRATCH_PREFIX}{pid}_{_process_start(pid) or 0}-"


def _scratch_owner_alive(name: str) -> bool:
    """Whether the process that made the scratch folder ``name`` may still run."""
    match = re.match(re.escape(SCRATCH_PREFIX) + r"(\d+)_(\d+)-", name)
    if match is None:
        return False  # not made by scratch_prefix(): an older run's
    pid, start = int(match.group(1)), match.group(2)
    return _process_alive(pid, None if start == "0" else start)


def safe_name(stream_id: str) -> str:
    """A file name for ``stream_id`` that cannot escape its folder or meet another id's.

    Ids of lower-case letters, digits, ``.``, ``_`` and ``-`` (starting with a letter or
    digit, no ``..``) are kept as they are; anything else becomes
    ``_<slug>-<sha256 prefix>``, which no kept id can collide with because kept ids
    never start with ``_``. Also hashed: upper-case letters (``Abc`` and ``abc`` are one
    file on a case-insensitive disk), ids ending in ``.preview`` or ``.thumbnail``
    (``X.preview.mp4`` is recording ``X``'s preview), Windows device names (``con``,
    ``nul``…), separators, control characters, absolute paths and very long ids. The
    original id stays in the ``stream_id`` column.
    """
    kept = (
        _SAFE_ID.match(stream_id)
        and ".." not in stream_id
        and not stream_id.endswith(_MEDIA_SUFFIXES)
        and stream_id.split(".")[0] not in _DEVICE_NAMES
    )
    if kept:
        return stream_id
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", stream_id).strip("-")[:40]
    digest = hashlib.sha256(stream_id.encode("utf-8", "surrogatepass")).hexdigest()[:20]
    return f"_{slug}-{digest}" if slug else f"_{digest}"


def hash_file(handle: IO[bytes], chunk: int = 1 << 20) -> tuple[str, int]:
    """SHA-256 hex digest and size of a binary file read from its start."""
    handle.seek(0)
    digest = hashlib.sha256()
    size = 0
    while block := handle.read(chunk):
        digest.update(block)
        size += len(block)
    return digest.hexdigest(), size


class _HashingWriter(io.RawIOBase):
    """A write-only file that hashes and counts what passes through to ``inner``."""

    def __init__(self, inner: IO[bytes]) -> None:
        self._inner = inner
        self.digest = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        self._inner.write(view)
        self.digest.update(view)
        self.size += len(view)
        return len(view)

    def tell(self) -> int:
        return self.size


def _protocols(fs: fsspec.AbstractFileSystem) -> tuple[str, ...]:
    protocol = fs.protocol
    return (protocol,) if isinstance(protocol, str) else tuple(protocol)


def _check_relative(rel: str) -> None:
    parts = rel.split("/")
    if rel.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise StorageError(f"refusing the dataset path {rel!r}: not a plain relative path")


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


def _has_exclusive_create(fs: fsspec.AbstractFileSystem) -> bool:
    """Whether ``fs.pipe_file`` takes ``mode="create"`` (fsspec's exclusive write)."""
    method = getattr(fs, "_pipe_file", None) or fs.pipe_file
    try:
        return "mode" in inspect.signature(method).parameters
    except (TypeError, ValueError):  # pragma: no cover - not introspectable
        return False


def _fsync_dir(folder: str) -> None:
    # The rename is durable only once the folder's entry is: best effort (not on Windows).
    with contextlib.suppress(OSError):
        fd = os.open(folder or ".", os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _abandon(handle: IO[bytes]) -> None:
    """Drop an unfinished remote write without publishing it.

    ``with fs.open(...)`` would *close* the file on an exception, and closing finishes an
    S3 multipart or GCS resumable upload with whatever was written: a truncated object.
    ``discard`` aborts the upload; marking the file closed stops ``__del__`` finishing it.
    """
    discard = getattr(handle, "discard", None)
    if callable(discard):
        with contextlib.suppress(Exception):
            discard()
    if isinstance(handle, AbstractBufferedFile):
        handle.closed = True
    else:
        with contextlib.suppress(Exception):
            handle.close()


class DatasetStore:
    """A dataset root on any fsspec filesystem.

    Args:
        url: ``./out``, ``file:///…``, ``memory://…``, ``s3://bucket/prefix``,
            ``gs://bucket/prefix``.
        storage_options: passed to the fsspec filesystem (credentials, endpoint_url…).

    Raises:
        MissingDependencyError: the URL needs an extra (s3fs, gcsfs) that is missing.
        ConfigError: the URL's protocol is unknown.
    """

    def __init__(self, url: str, storage_options: Mapping[str, Any] | None = None) -> None:
        self.url = url
        self.storage_options = dict(storage_options or {})
        protocol = url.split("://", 1)[0].lower() if "://" in url else "file"
        _require_backend(protocol)
        try:
            fs, root = fsspec.core.url_to_fs(url, **self.storage_options)
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
        self.fs: fsspec.AbstractFileSystem = fs
        self.root: str = root.rstrip("/") if root not in ("/", "") else root
        self.is_local = isinstance(fs, LocalFileSystem)
        #: Whether worker processes see what this process writes (not so for ``memory://``,
        #: whose files live in the memory of one process).
        self.shared_between_processes = "memory" not in _protocols(fs)
        self._check_endpoint()

    def _check_endpoint(self, timeout_s: float = 3.0) -> None:
        """Fail at once, in one line, when the ``endpoint_url`` given has nothing listening.

        Backends retry a refused connection for seconds (s3fs and botocore both do, ~12 s
        in all) before a many-line error; one TCP connect tells the same in milliseconds.
        """
        endpoint = self.storage_options.get("endpoint_url")
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
                f"cannot reach the storage endpoint {redact_url(endpoint)} for {self.url} "
                f"({exc.strerror or type(exc).__name__}); check --storage-option endpoint_url "
                "and that the server is running"
            ) from exc

    def _error(self, exc: BaseException, action: str, rel: str) -> Exception:
        """``exc`` of the backend as the package's one-line error (see storage_errors)."""
        return storage_error(
            exc,
            action=action,
            path=rel,
            url=self.url,
            storage_options=self.storage_options,
            fs_class=type(self.fs),
        )

    def __getstate__(self) -> dict[str, Any]:
        # Filesystem objects do not always pickle; a store is rebuilt in each worker.
        return {"url": self.url, "storage_options": self.storage_options}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["url"], state["storage_options"])  # type: ignore[misc]

    # -- paths -----------------------------------------------------------------------
    def path(self, rel: str) -> str:
        """The filesystem path of ``rel`` (a relative dataset path).

        Raises:
            StorageError: ``rel`` is not a plain relative path, or (local disk) a part
                of it below the root is a symbolic link: reading, writing or deleting
                through it could reach outside the dataset.
        """
        _check_relative(rel)
        full = f"{self.root}/{rel}" if self.root else rel
        if self.is_local:
            self._refuse_links(rel)
        return full

    def _refuse_links(self, rel: str) -> None:
        parts = rel.split("/")
        current = self.root or "."
        for part in parts:
            current = f"{current}/{part}"
            try:
                is_link = os.path.islink(current)
            except OSError:  # pragma: no cover - islink swallows OSError itself
                is_link = False
            if is_link:
                shown = current.removeprefix(f"{self.root}/") if self.root else current
                raise StorageError(
                    f"{shown} under {self.url} is a symbolic link; the export never follows "
                    "a link out of its dataset: remove the link (or export elsewhere)"
                )
            if not os.path.lexists(current):
                return

    def check_ownership(self, *, allow_foreign: bool = False) -> bool:
        """Refuse to write into a root the export cannot prove it owns.

        A root holding ``manifest.json`` is a dataset (True is returned); a root that
        does not exist or holds nothing but a writer lock and temp files of the export
        is free (False). Any other root is someone's folder: refused, unless
        ``allow_foreign``, and even then refused while a file there has a name the
        export writes (:data:`OWNED_NAMES`): it would be overwritten or deleted.

        Returns:
            True when the root already holds a dataset.

        Raises:
            StorageError: the root is not an odyssey-data dataset (one line: what was
                found and the way out).
        """
        root = self.root or ""
        if self.read_bytes(MANIFEST_NAME) is not None:
            return True
        foreign = sorted(n for n in self._root_entries() if not is_owned(n))
        if not foreign:
            return False
        if not allow_foreign:
            shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
            raise StorageError(
                f"{self.url or root} is not an odyssey-data dataset (no {MANIFEST_NAME}) and "
                f"is not empty (it holds {shown}); export to a new or empty folder, or pass "
                "--allow-foreign-files (allow_foreign_files=True) to add a dataset beside "
                "those files, which it never deletes"
            )
        clashing = [rel for rel in self._owned_candidates() if rel != LOCK_NAME]
        if clashing:
            raise StorageError(
                f"{clashing[0]} under {self.url} has a name the export writes, but this "
                f"folder is not an odyssey-data dataset (no {MANIFEST_NAME}), so the file is "
                "not the export's: move it out of the folder (or export elsewhere)"
            )
        return False

    def _root_entries(self) -> list[str]:
        """Names directly at the root, files and folders, links included (local)."""
        return [name for name, _ in self._root_listing()]

    def _root_listing(self) -> list[tuple[str, bool]]:
        """(name, is a regular file) of every entry directly at the root (local: links
        are listed, and are not regular files)."""
        try:
            if self.is_local:
                return [
                    (entry.name, entry.is_file(follow_symlinks=False))
                    for entry in os.scandir(self.root or ".")
                ]
            root = self.root or ""
            self.fs.invalidate_cache(root)
            listed = self.fs.ls(root, detail=True)
        except (FileNotFoundError, NotADirectoryError):
            return []
        except OSError as exc:
            raise StorageError(f"cannot list {self.url}: {exc}") from exc
        out = []
        for entry in listed:
            name = str(entry["name"]).rstrip("/").rsplit("/", 1)[-1]
            if name and str(entry["name"]).rstrip("/") != (self.root or "").rstrip("/"):
                out.append((name, entry.get("type") == "file"))
        return out

    def _owned_candidates(self) -> list[str]:
        """Files in a not-yet-owned root whose names the export writes."""
        found = [n for n in self._root_entries() if is_owned(n)]
        for folder in (*TABLES, "videos"):
            found += [rel for rel in self.list_files(folder) if is_owned(rel)]
        return sorted(found)

    def local_path(self, rel: str) -> str | None:
        """An OS path for ``rel`` when the dataset is on local disk, else ``None``."""
        return self.path(rel) if self.is_local else None

    # -- writing ---------------------------------------------------------------------
    def _local_tmp(self, final: str) -> str:
        parent, _, name = final.rpartition("/")
        if parent:
            os.makedirs(parent, exist_ok=True)
        tmp = f"{TMP_PREFIX}{uuid.uuid4().hex}-{name}"
        return f"{parent}/{tmp}" if parent else tmp

    @contextlib.contextmanager
    def _writing(self, rel: str) -> Iterator[IO[bytes]]:
        """A binary file whose content appears at ``rel`` whole, or not at all.

        Local: a temp file in the same folder, flushed to disk, then ``os.replace``.
        Object stores: one upload, which the store publishes atomically when it completes;
        on an error the upload is aborted instead of being completed with a part.
        (``memory://`` shows a file while it is written; no manifest lists it yet.)
        """
        final = self.path(rel)
        if self.is_local:
            tmp = self._local_tmp(final)
            try:
                with open(tmp, "wb") as local:
                    yield local
                    local.flush()
                    os.fsync(local.fileno())
                os.replace(tmp, final)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
            return
        handle: IO[bytes] = self.fs.open(final, "wb")
        try:
            yield handle
        except BaseException:
            _abandon(handle)
            raise
        handle.close()

    @translating("write")
    def write_bytes(self, rel: str, data: bytes) -> FileEntry:
        """Write ``data`` whole to ``rel`` (atomic replace), returning its entry.

        Raises:
            StorageError: the write failed; ``rel`` then still holds what it held before.
        """
        try:
            if self.is_local:
                with self._writing(rel) as handle:
                    handle.write(data)
                _fsync_dir(self.path(rel).rpartition("/")[0])
            else:
                # One request: a reader sees the old object or the new one, never a part.
                self.fs.pipe_file(self.path(rel), data)
        except OSError as exc:
            raise self._error(exc, "write", rel) from exc
        return FileEntry(rel, "blob", None, len(data), hashlib.sha256(data).hexdigest())

    @translating("create")
    def create_exclusive(self, rel: str, data: bytes) -> bool:
        """Create ``rel`` with ``data`` only if it does not exist yet.

        Local disks: a temp file hard-linked into place (``link`` fails when the name
        exists, and the file is complete the moment it appears). Object stores: a
        conditional create (S3 ``If-None-Match``, GCS ``ifGenerationMatch=0``, memory
        ``xb``), after an existence check for stores or emulators that ignore the
        condition. Where the store ignores it, two writers racing within one request
        can both succeed: the caller reads the file back to confirm.

        Returns:
            True when this call created the file, False when it already existed.

        Raises:
            StorageError: the store refused the write for another reason.
        """
        final = self.path(rel)
        try:
            if self.is_local:
                for attempt in range(3):
                    tmp = self._local_tmp(final)
                    try:
                        with open(tmp, "wb") as handle:
                            handle.write(data)
                            handle.flush()
                            os.fsync(handle.fileno())
                        os.link(tmp, final)
                        break
                    except FileExistsError:
                        return False
                    except FileNotFoundError:
                        # The lock holder's leftover cleanup removed our temp file between
                        # its write and its link: write it again.
                        if attempt == 2:
                            raise
                    finally:
                        with contextlib.suppress(FileNotFoundError):
                            os.unlink(tmp)
                _fsync_dir(final.rpartition("/")[0])
                return True
            self.fs.invalidate_cache(final)
            if self.fs.exists(final):
                return False
            if not _has_exclusive_create(self.fs):  # pragma: no cover - older fsspec backends
                self.fs.pipe_file(final, data)
                return True
            try:
                self.fs.pipe_file(final, data, mode="create")
            except FileExistsError:
                return False
            return True
        except OSError as exc:
            raise self._error(exc, "create", rel) from exc
        finally:
            with contextlib.suppress(Exception):
                self.fs.invalidate_cache(final)

    @translating("create a temp folder in")
    def scratch_dir(self) -> str:
        """A folder on this machine for a worker's temp files.

        Local datasets: the dataset's root, on the dataset's own disk, so files made
        there are moved into the dataset by :meth:`put_file` with one ``os.replace``
        instead of a copy. Other targets: :func:`local_scratch_root`. Each user makes
        its own folder in it (``tempfile.TemporaryDirectory(prefix=scratch_prefix(),
        dir=...)``); those an interrupted run leaves are removed by
        :meth:`remove_scratch`.
        """
        root = (self.root or ".") if self.is_local else local_scratch_root()
        try:
            os.makedirs(root, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot make the temp folder {root}: {exc}") from exc
        return root

    def remove_scratch(self) -> int:
        """Delete temp folders interrupted runs left; returns how many.

        At a local dataset's root (the caller holds the writer lock): every worker
        folder. In the per-user scratch folder: those whose process is gone.
        """
        removed = 0
        places = [(self.root or ".", True)] if self.is_local else []
        places.append((local_scratch_root(), False))
        for place, all_of_them in places:
            with contextlib.suppress(FileNotFoundError, NotADirectoryError):
                for entry in os.scandir(place):
                    if not (
                        re.fullmatch(_SCRATCH_DIR, entry.name)
                        and entry.is_dir(follow_symlinks=False)
                    ):
                        continue
                    if all_of_them or not _scratch_owner_alive(entry.name):
                        shutil.rmtree(entry.path, ignore_errors=True)
                        removed += 1
        return removed

    @translating("write")
    def put_file(
        self,
        rel: str,
        local: str,
        kind: str = "video",
        *,
        sha256: str | None = None,
    ) -> FileEntry:
        """Put the local file ``local`` at ``rel`` whole, consuming it.

        On a local dataset on the same filesystem the file is flushed to disk and moved
        into place with ``os.replace`` (atomic, no copy); ``sha256`` (computed while the
        file was downloaded) then saves reading it again. Elsewhere it is copied (local,
        other filesystem) or uploaded (object stores) by :meth:`put_stream`, hashing on
        the way; a ``sha256`` given that differs from the bytes written is an error.
        ``local`` may be gone afterwards either way.

        Raises:
            StorageError: the write failed; ``rel`` then still holds what it held before.
        """
        if self.is_local:
            final = self.path(rel)
            try:
                with open(local, "rb") as handle:
                    os.fsync(handle.fileno())
                    size = os.fstat(handle.fileno()).st_size
                    if sha256 is None:
                        sha256, _ = hash_file(handle)
                parent = final.rpartition("/")[0]
                if parent:
                    os.makedirs(parent, exist_ok=True)
                os.replace(local, final)
            except OSError as exc:
                if exc.errno != errno.EXDEV:
                    raise self._error(exc, "write", rel) from exc
            else:
                _fsync_dir(parent)
                return FileEntry(rel, kind, None, size, sha256)
        with open(local, "rb") as handle:
            entry = self.put_stream(rel, handle, kind)
        if sha256 is not None and entry.sha256 != sha256:
            raise StorageError(
                f"{rel} under {self.url}: the bytes written do not hash to the downloaded "
                f"file's SHA-256 ({entry.sha256} != {sha256}); run the export again"
            )
        return entry

    @translating("write")
    def put_stream(self, rel: str, source: IO[bytes], kind: str = "video") -> FileEntry:
        """Copy a local binary file to ``rel`` whole, hashing it on the way."""
        source.seek(0)
        try:
            with self._writing(rel) as handle:
                writer = _HashingWriter(handle)
                shutil.copyfileobj(source, writer, 1 << 20)
        except OSError as exc:
            raise self._error(exc, "write", rel) from exc
        return FileEntry(rel, kind, None, writer.size, writer.digest.hexdigest())

    @translating("write")
    def write_table(
        self,
        rel: str,
        table: pa.Table | Iterable[Iterable[pa.RecordBatch]],
        kind: str,
        schema: pa.Schema | None = None,
    ) -> FileEntry:
        """Write ``table`` as one zstd Parquet file at ``rel`` (atomic replace).

        ``table`` may also be a sequence of parts (one per recording), each an iterable
        of record batches read as they are written (memory stays flat). Each part starts
        a row group of its own, so a reader filtering on one recording skips the others'
        row groups by their statistics. Parts without rows write an empty file of
        ``schema``.
        """
        parts: Iterable[Iterable[pa.RecordBatch]] = (
            [table.to_batches()] if isinstance(table, pa.Table) else table
        )
        rows = 0
        try:
            with self._writing(rel) as handle:
                writer = _HashingWriter(handle)
                parquet: pq.ParquetWriter | None = None
                try:
                    for part in parts:
                        group: list[pa.RecordBatch] = []
                        group_rows = 0
                        for batch in part:
                            if parquet is None:
                                parquet = pq.ParquetWriter(
                                    writer,
                                    batch.schema,
                                    compression="zstd",
                                    use_dictionary=True,
                                    write_statistics=True,
                                )
                            # Encoded images make rows heavy: small row groups keep
                            # random access to one frame's image cheap.
                            cap = (
                                IMAGE_ROW_GROUP_ROWS
                                if "image" in batch.schema.names
                                else ROW_GROUP_ROWS
                            )
                            while batch.num_rows:
                                take = batch.slice(0, cap - group_rows)
                                batch = batch.slice(take.num_rows)
                                group.append(take)
                                group_rows += take.num_rows
                                if group_rows >= cap:
                                    parquet.write_table(pa.Table.from_batches(group))
                                    rows += group_rows
                                    group, group_rows = [], 0
                        if group_rows and parquet is not None:
                            parquet.write_table(pa.Table.from_batches(group))
                            rows += group_rows
                    if parquet is None:
                        if isinstance(table, pa.Table):
                            empty = table
                        else:
                            empty = (schema or pa.schema([])).empty_table()
                        pq.write_table(empty, writer, compression="zstd")
                finally:
                    if parquet is not None:
                        parquet.close()
        except (OSError, pa.ArrowException) as exc:
            raise self._error(exc, "write", rel) from exc
        return FileEntry(rel, kind, rows, writer.size, writer.digest.hexdigest())

    # -- reading ---------------------------------------------------------------------
    @translating("read")
    def read_bytes(self, rel: str) -> bytes | None:
        """The bytes at ``rel``, or ``None`` when there is no such file."""
        try:
            data: bytes = self.fs.cat_file(self.path(rel))
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise self._error(exc, "read", rel) from exc
        return data

    def read_json(self, rel: str) -> Any:
        """Parsed JSON at ``rel``, or ``None`` when absent."""
        data = self.read_bytes(rel)
        if data is None:
            return None
        try:
            return json.loads(data)
        except ValueError as exc:
            raise StorageError(f"{rel} under {self.url} is not valid JSON: {exc}") from exc

    def manifest_generation(self) -> int | None:
        """The ``generation`` of the stored ``manifest.json``: ``None`` when there is none.

        Tolerant: a manifest that cannot be parsed counts as generation 0, so that
        ``--overwrite`` can replace it.
        """
        # The generation sits in the manifest's first lines: read those alone, so the
        # check before every commit does not grow with the dataset.
        try:
            head: bytes = self.fs.cat_file(self.path(MANIFEST_NAME), start=0, end=4096)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise self._error(exc, "read", MANIFEST_NAME) from exc
        found = _GENERATION.search(head)
        if found is not None:
            return int(found.group(1))
        data = self.read_bytes(MANIFEST_NAME)
        if data is None:
            return None
        try:
            generation = json.loads(data).get("generation", 0)
            return int(generation)
        except (ValueError, TypeError, AttributeError):
            return 0

    @translating("read")
    def open(self, rel: str) -> IO[bytes]:
        """Open ``rel`` for reading (seekable; remote files are read with a block cache)."""
        try:
            handle: IO[bytes] = self.fs.open(self.path(rel), "rb")
        except FileNotFoundError as exc:
            raise StorageError(f"{rel} is missing under {self.url}") from exc
        return handle

    @translating("read")
    def file_info(self, rel: str) -> dict[str, Any] | None:
        """fsspec's info of ``rel`` (with ``size``), or ``None`` when absent."""
        self.fs.invalidate_cache(self.path(rel))
        try:
            info: dict[str, Any] = self.fs.info(self.path(rel))
        except FileNotFoundError:
            return None
        return info

    def checksum(self, rel: str) -> tuple[str, int]:
        """SHA-256 and size of ``rel`` as stored."""
        with self.open(rel) as handle:
            return hash_file(handle)

    @translating("list")
    def list_files(self, folder: str) -> list[str]:
        """Relative paths of the files under ``folder`` (recursively; ``""``: all), sorted.

        On a local disk symbolic links are neither listed nor followed.
        """
        if self.is_local:
            base = self.path(folder) if folder else (self.root or ".")
            out = []
            for parent, dirs, files in os.walk(base, followlinks=False):
                rel_parent = os.path.relpath(parent, self.root or ".").replace(os.sep, "/")
                prefix = "" if rel_parent == "." else f"{rel_parent}/"
                dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(parent, d))]
                for name in files:
                    if not os.path.islink(os.path.join(parent, name)):
                        out.append(f"{prefix}{name}")
            return sorted(out)
        base = self.path(folder) if folder else self.root
        # Listings are cached per filesystem instance; another process may have written.
        self.fs.invalidate_cache(base)
        try:
            found = self.fs.find(base)
        except FileNotFoundError:
            return []
        prefix = f"{self.root}/" if self.root else ""
        out = []
        for name in found:
            name = name.removeprefix(self.fs._strip_protocol(prefix)) if prefix else name
            out.append(name.lstrip("/"))
        return sorted(out)

    @translating("list")
    def list_root_files(self) -> list[str]:
        """Names of the files directly at the dataset root (not in its folders), sorted.

        @translating("delete")
            On a local disk symbolic links are not listed.
        """
        return sorted(name for name, is_file in self._root_listing() if is_file)

    def remove(self, rels: Iterable[str], *, owned: Callable[[str], bool] = is_owned) -> None:
        """Delete files (missing ones are fine), each only if ``owned`` says the tool
        wrote it: by default a name the export writes (:data:`OWNED_NAMES`); another
        layout (a LeRobot conversion) passes the proof of its own (its record's list).

        Raises:
            StorageError: a name is not owned: nothing else in OUTPUT is ever deleted,
                whatever the caller asks.
        """
        rels = list(rels)
        foreign = [rel for rel in rels if not owned(rel)]
        if foreign:
            raise StorageError(
                f"refusing to delete {foreign[0]} under {self.url}: not a file this tool "
                "can prove it wrote"
            )
        for rel in rels:
            try:
                self.fs.rm_file(self.path(rel))
            except FileNotFoundError:
                pass
            except OSError as exc:
                raise self._error(exc, "delete", rel) from exc

    def dataset(self, rels: list[str], schema: pa.Schema | None = None) -> pads.Dataset:
        """A pyarrow dataset over the Parquet files ``rels`` (for lazy scans)."""
        # Imported here: pyarrow.dataset pulls in pandas (~0.25 s), which the export's
        # worker processes never need.
        import pyarrow.dataset as pads

        paths = [self.path(rel) for rel in rels]
        if self.is_local:
            return pads.dataset(paths, format="parquet", schema=schema)
        from pyarrow.fs import FSSpecHandler, PyFileSystem

        return pads.dataset(
            paths, format="parquet", schema=schema, filesystem=PyFileSystem(FSSpecHandler(self.fs))
        )

    @translating("read")
    def iter_table_batches(self, rel: str) -> Iterator[pa.RecordBatch]:
        """Stream the record batches of one Parquet file."""
        with self.open(rel) as handle:
            yield from pq.ParquetFile(handle).iter_batches()


# -- the writer lock -------------------------------------------------------------------
def _pid_namespace() -> str | None:
    # Two containers can share a host name; a pid means something only in its namespace.
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return None


def _process_start(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (clock ticks since boot), to tell pid reuse."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read().decode("ascii", "replace")
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its end.
    fields = stat[stat.rfind(")") + 2 :].split()
    if len(fields) < 20 or fields[0] in ("Z", "X"):  # a zombie has finished running
        return "dead"
    return fields[19]


def _process_alive(pid: int, start: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: it exists
    current = _process_start(pid)
    if current == "dead":
        return False
    return start is None or current is None or current == start


class WriterLock:
    """The one-writer-at-a-time lock of a dataset root (``_odyssey.lock``).

    The lock is a small JSON object (owner id, host, pid, times) created exclusively:
    see :meth:`DatasetStore.create_exclusive`. Its holder refreshes it while it works
    (:meth:`refresh`), checks it still owns it before every commit (:meth:`check`) and
    deletes it at the end (:meth:`release`). Readers ignore it.

    A lock is *stale*, and is broken with a warning, when its process is provably gone
    (same machine and pid namespace, and the pid no longer runs or now belongs to a newer
    process) or when it has not been refreshed for ``timeout_s``. Any other existing lock
    makes :meth:`acquire` fail with a message that says how to break it.

    Args:
        store: the dataset root.
        timeout_s: a lock not refreshed for this long is stale; ``None``: never by age.
        purpose: what the holder does, shown to whoever finds the lock.
    """

    #: How often :meth:`refresh` really rewrites the lock (seconds).
    refresh_every_s = 60.0

    def __init__(
        self, store: DatasetStore, *, timeout_s: float | None = 6 * 3600.0, purpose: str = "export"
    ) -> None:
        self.store = store
        self.timeout_s = timeout_s
        self.purpose = purpose
        self.owner = uuid.uuid4().hex
        self.held = False
        self._refreshed = 0.0
        self._created_at = utc_now_iso()

    def _document(self) -> bytes:
        now = time.time()
        self._refreshed = now
        pid = os.getpid()
        doc = {
            "owner": self.owner,
            "purpose": self.purpose,
            "host": socket.gethostname(),
            "pid": pid,
            "pid_namespace": _pid_namespace(),
            "pid_start": _process_start(pid),
            "created_at": self._created_at,
            "refreshed_at": utc_now_iso(),
            "refreshed_epoch": now,
        }
        return json.dumps(doc, indent=1).encode()

    def read(self) -> dict[str, Any] | None:
        """The lock's JSON as stored; ``{}`` when unreadable, ``None`` when there is none."""
        data = self.store.read_bytes(LOCK_NAME)
        if data is None:
            return None
        try:
            doc = json.loads(data)
        except ValueError:
            return {}
        return doc if isinstance(doc, dict) else {}

    def stale_reason(self, doc: Mapping[str, Any], now: float | None = None) -> str | None:
        """Why the lock ``doc`` may be broken, or ``None`` while its owner may be at work."""
        now = time.time() if now is None else now
        pid = doc.get("pid")
        same_machine = (
            doc.get("host") == socket.gethostname() and doc.get("pid_namespace") == _pid_namespace()
        )
        if same_machine and isinstance(pid, int) and not _process_alive(pid, doc.get("pid_start")):
            return f"its process (pid {pid} on this machine) is no longer running"
        refreshed = doc.get("refreshed_epoch")
        if self.timeout_s is not None and isinstance(refreshed, int | float):
            idle = now - float(refreshed)
            if idle > self.timeout_s:
                return (
                    f"it was last refreshed {idle:.0f} s ago, longer than the lock timeout "
                    f"of {self.timeout_s:.0f} s"
                )
        return None

    def describe(self, doc: Mapping[str, Any]) -> str:
        """The holder of ``doc`` in words."""
        if not doc:
            return "an unreadable lock"
        try:
            idle = time.time() - float(doc.get("refreshed_epoch") or 0.0)
        except (TypeError, ValueError):
            return "a lock of unknown age"
        return (
            f"{doc.get('purpose', 'export')} by pid {doc.get('pid')} on host "
            f"{doc.get('host')!r}, started {doc.get('created_at')}, last active {idle:.0f} s ago"
        )

    def acquire(self, *, force: bool = False) -> None:
        """Take the lock, breaking a stale one (or any, with ``force``).

        Raises:
            StorageError: another writer holds the lock; the message says how to break it.
        """
        where = f"{self.store.url}/{LOCK_NAME}"
        for _ in range(3):
            if self.store.create_exclusive(LOCK_NAME, self._document()):
                mine = self.read()
                if mine is not None and mine.get("owner") == self.owner:
                    self.held = True
                    return
                # The store ignored the exclusive create and another writer won the race.
                doc = mine or {}
            else:
                found = self.read()
                if found is None:
                    continue  # released between our create and our read: try again
                doc = found
            reason = "--break-lock was given" if force else self.stale_reason(doc)
            if reason is None and not doc:
                raise DatasetDamagedError(
                    f"the writer lock {where} is damaged (not a lock odyssey-data wrote): if "
                    "no other export is writing this dataset, run again with --break-lock"
                )
            if reason is None:
                timeout = (
                    f", or wait until it is idle for more than {self.timeout_s:.0f} s"
                    if self.timeout_s is not None
                    else ""
                )
                raise StorageError(
                    f"{self.store.url} is locked by another writer ({self.describe(doc)}). "
                    "Two exports must not write one dataset at once: wait for the other to "
                    "finish. If it is not running any more (killed on another machine), run "
                    f"again with --break-lock (break_lock=True){timeout}; the lock is {where}"
                )
            log.warning("breaking the lock at %s (%s): %s", where, self.describe(doc), reason)
            self.store.remove([LOCK_NAME])
            force = False
        raise StorageError(
            f"cannot take the lock at {where}: other writers keep taking it; try again later"
        )

    def check(self) -> None:
        """Make sure this writer still holds the lock (before a commit).

        Raises:
            StorageError: the lock was broken or taken by another writer.
        """
        doc = self.read()
        if not self.held or doc is None or doc.get("owner") != self.owner:
            holder = "nobody holds it now" if not doc else f"now held by {self.describe(doc)}"
            raise StorageError(
                f"this export lost its lock on {self.store.url} ({holder}; it was broken, "
                "maybe with --break-lock): stopping without committing. Files it wrote are "
                "not in the dataset and the next run removes them; run the export again."
            )

    def refresh(self, *, force: bool = False) -> None:
        """Rewrite the lock's time so others do not take it for stale (rate-limited).

        Raises:
            StorageError: the lock was lost (see :meth:`check`).
        """
        if not force and time.time() - self._refreshed < self.refresh_every_s:
            return
        self.check()
        self.store.write_bytes(LOCK_NAME, self._document())

    def release(self) -> None:
        """Delete the lock if this writer still holds it (never someone else's)."""
        if not self.held:
            return
        self.held = False
        with contextlib.suppress(StorageError):
            doc = self.read()
            if doc is not None and doc.get("owner") == self.owner:
                self.store.remove([LOCK_NAME])
