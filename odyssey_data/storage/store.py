"""The dataset store: one dataset root on any fsspec target (local, S3, GCS, memory).

:class:`DatasetStore` reads, writes, lists and deletes the dataset's files; it is the
only class that touches fsspec, and every backend error it meets becomes a one-line
:class:`~odyssey_data.errors.StorageError` (:mod:`odyssey_data.storage.errors`). Files
are written whole: on a local disk by :mod:`odyssey_data.storage.local` (temp file,
then rename), on object stores as one PUT or upload, aborted on an error. Names and
roots it may touch are decided by :mod:`odyssey_data.storage.ownership`.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import inspect
import io
import json
import os
import re
import shutil
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import IO, TYPE_CHECKING, Any, cast

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
from fsspec.implementations.local import LocalFileSystem
from fsspec.spec import AbstractBufferedFile

from odyssey_data.errors import StorageError
from odyssey_data.manifest import MANIFEST_NAME, FileEntry
from odyssey_data.storage import local as disk
from odyssey_data.storage.errors import storage_error, translating
from odyssey_data.storage.ownership import check_root, is_owned
from odyssey_data.storage.parquet import write_parquet
from odyssey_data.storage.reading import ReadHandle, StoreHandler
from odyssey_data.storage.scratch import (
    local_scratch_root,
    make_scratch_folder,
    remove_scratch_folders,
    scratch_error,
)
from odyssey_data.storage.target import check_endpoint, open_target, protocols

if TYPE_CHECKING:
    import pyarrow.dataset as pads

__all__ = ["DatasetStore", "hash_file"]

#: The generation line of a manifest as :meth:`Manifest.dumps` writes it (one space in).
_GENERATION = re.compile(rb'^ "generation": (\d+),$', re.MULTILINE)


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


def _has_exclusive_create(fs: fsspec.AbstractFileSystem) -> bool:
    """Whether ``fs.pipe_file`` takes ``mode="create"`` (fsspec's exclusive write)."""
    method = getattr(fs, "_pipe_file", None) or fs.pipe_file
    try:
        return "mode" in inspect.signature(method).parameters
    except (TypeError, ValueError):  # pragma: no cover - not introspectable
        return False


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
        fs, root = open_target(url, self.storage_options)
        self.fs: fsspec.AbstractFileSystem = fs
        self.root: str = root.rstrip("/") if root not in ("/", "") else root
        self.is_local = isinstance(fs, LocalFileSystem)
        #: Whether worker processes see what this process writes (not so for ``memory://``,
        #: whose files live in the memory of one process).
        self.shared_between_processes = "memory" not in protocols(fs)
        check_endpoint(url, self.storage_options)

    def _error(self, exc: BaseException, action: str, rel: str) -> Exception:
        """``exc`` of the backend as the package's one-line error (see storage.errors)."""
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
        disk.check_relative(rel)
        full = f"{self.root}/{rel}" if self.root else rel
        if self.is_local:
            disk.refuse_links(self.root, self.url, rel)
        return full

    def check_ownership(self, *, allow_foreign: bool = False) -> bool:
        """Refuse to write into a root the export cannot prove it owns.

        A root holding ``manifest.json`` is a dataset (True is returned); a root that
        does not exist or holds nothing but a writer lock and temp files of the export
        is free (False). Any other root is someone's folder: refused, unless
        ``allow_foreign``, and even then refused while a file there has a name the
        export writes (:data:`~odyssey_data.storage.OWNED_NAMES`): it would be
        overwritten or deleted (the rules: :func:`~odyssey_data.storage.ownership.check_root`).

        Returns:
            True when the root already holds a dataset.

        Raises:
            StorageError: the root is not an odyssey-data dataset (one line: what was
                found and the way out).
        """
        if self.read_bytes(MANIFEST_NAME) is not None:
            return True
        check_root(
            self.url or self.root or "",
            self._root_entries(),
            self.list_files,
            allow_foreign=allow_foreign,
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
                return disk.root_listing(self.root or ".")
            root = self.root or ""
            self.fs.invalidate_cache(root)
            listed = self.fs.ls(root, detail=True)
        except (FileNotFoundError, NotADirectoryError):
            return []
        except OSError as exc:
            raise self._error(exc, "list", "") from exc
        out = []
        for entry in listed:
            name = str(entry["name"]).rstrip("/").rsplit("/", 1)[-1]
            if name and str(entry["name"]).rstrip("/") != (self.root or "").rstrip("/"):
                out.append((name, entry.get("type") == "file"))
        return out

    def local_path(self, rel: str) -> str | None:
        """An OS path for ``rel`` when the dataset is on local disk, else ``None``."""
        return self.path(rel) if self.is_local else None

    # -- writing ---------------------------------------------------------------------
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
            with disk.writing_whole(final) as whole:
                yield whole
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
                disk.fsync_dir(self.path(rel).rpartition("/")[0])
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
                return disk.create_whole(final, data)
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
        its own folder in it (:meth:`make_scratch_folder`, :meth:`scratch_folder`);
        those an interrupted run leaves are removed by :meth:`remove_scratch`.
        """
        root = (self.root or ".") if self.is_local else local_scratch_root()
        try:
            os.makedirs(root, exist_ok=True)
        except OSError as exc:
            raise scratch_error(exc, self._scratch_where(root)) from exc
        return root

    def _scratch_where(self, root: str) -> str:
        """How messages name the scratch place ``root``."""
        return root if self.is_local else f"{root} (ODYSSEY_DATA_SCRATCH)"

    def make_scratch_folder(self) -> str:
        """A new temp folder of this process in :meth:`scratch_dir`; the caller removes
        it (a run killed first leaves it to :meth:`remove_scratch`).

        Raises:
            StorageError: the OS refused it (disk full, read-only, permission denied):
                the run stops, as every recording needs one.
        """
        root = self.scratch_dir()
        return make_scratch_folder(root, self._scratch_where(root))

    @contextlib.contextmanager
    def scratch_folder(self) -> Iterator[str]:
        """:meth:`make_scratch_folder`, removed with what it holds when the block ends."""
        folder = self.make_scratch_folder()
        try:
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def remove_scratch(self) -> int:
        """Delete temp folders interrupted runs left; returns how many.

        At a local dataset's root (the caller holds the writer lock): every worker
        folder. In the per-user scratch folder: those whose process is gone.
        """
        places = [(self.root or ".", True)] if self.is_local else []
        places.append((local_scratch_root(), False))
        return remove_scratch_folders(places)

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
                disk.fsync_dir(parent)
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
        of record batches read as they are written (memory stays flat): see
        :func:`~odyssey_data.storage.parquet.write_parquet`. Parts without rows write an
        empty file of ``schema``.
        """
        try:
            with self._writing(rel) as handle:
                writer = _HashingWriter(handle)
                rows = write_parquet(writer, table, schema)
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

    @translating("read")
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
        """Open ``rel`` for reading (seekable; remote files are read with a block cache).

        Reading, seeking and closing the file raise one-line
        :class:`~odyssey_data.errors.StorageError` s too, like the store's methods.
        """
        try:
            handle: IO[bytes] = self.fs.open(self.path(rel), "rb")
        except FileNotFoundError as exc:
            raise StorageError(f"{rel} is missing under {self.url}") from exc
        return cast("IO[bytes]", ReadHandle(handle, self, rel))

    @translating("read")
    def file_info(self, rel: str) -> dict[str, Any] | None:
        """fsspec's info of ``rel`` (with ``size``), or ``None`` when absent."""
        self.fs.invalidate_cache(self.path(rel))
        try:
            info: dict[str, Any] = self.fs.info(self.path(rel))
        except FileNotFoundError:
            return None
        return info

    @translating("read")
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
            return disk.walk_files(self.root or ".", base)
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

        On a local disk symbolic links are not listed.
        """
        return sorted(name for name, is_file in self._root_listing() if is_file)

    @translating("delete")
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

    @translating("read")
    def dataset(self, rels: list[str], schema: pa.Schema | None = None) -> pads.Dataset:
        """A pyarrow dataset over the Parquet files ``rels`` (for lazy scans).

        On targets that are not a local disk, pyarrow reads through the store: a scan
        that fails later (in polars' ``collect()``: the endpoint gone, a file deleted)
        raises the store's one-line :class:`~odyssey_data.errors.StorageError`.
        """
        # Imported here: pyarrow.dataset pulls in pandas (~0.25 s), which the export's
        # worker processes never need.
        import pyarrow.dataset as pads

        paths = [self.path(rel) for rel in rels]
        if self.is_local:
            return pads.dataset(paths, format="parquet", schema=schema)
        from pyarrow.fs import PyFileSystem

        return pads.dataset(
            paths, format="parquet", schema=schema, filesystem=PyFileSystem(StoreHandler(self))
        )

    @translating("read")
    def iter_table_batches(self, rel: str) -> Iterator[pa.RecordBatch]:
        """Stream the record batches of one Parquet file."""
        with self.open(rel) as handle:
            yield from pq.ParquetFile(handle).iter_batches()
