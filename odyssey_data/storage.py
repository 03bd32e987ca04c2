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
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import shutil
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any

import fsspec
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
from fsspec.implementations.local import LocalFileSystem

from odyssey_data.errors import ConfigError, MissingDependencyError, StorageError

__all__ = [
    "MANIFEST_NAME",
    "DatasetStore",
    "FileEntry",
    "hash_file",
    "safe_name",
    "utc_now_iso",
]

MANIFEST_NAME = "manifest.json"
ROW_GROUP_ROWS = 100_000
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_EXTRAS = {
    "s3": ("s3fs", "s3"),
    "s3a": ("s3fs", "s3"),
    "gs": ("gcsfs", "gcs"),
    "gcs": ("gcsfs", "gcs"),
}


def utc_now_iso() -> str:
    """The current UTC time as ISO 8601 with a ``Z``."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def safe_name(stream_id: str) -> str:
    """A file name for ``stream_id`` that cannot escape its folder.

    Ids of letters, digits, ``.``, ``_`` and ``-`` (starting with a letter or digit, no
    ``..``) are kept as they are; anything else (separators, ``..``, control characters,
    absolute paths, very long ids) becomes ``_<slug>-<sha256 prefix>``, which no kept id
    can collide with because kept ids never start with ``_``. The original id stays in
    the ``stream_id`` column.
    """
    if _SAFE_ID.match(stream_id) and ".." not in stream_id:
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


@dataclass(frozen=True, slots=True)
class FileEntry:
    """A file the manifest lists: where, what, how big, and its checksum."""

    path: str
    kind: str
    num_rows: int | None
    bytes: int
    sha256: str

    def to_json(self) -> dict[str, Any]:
        """The manifest's JSON form."""
        return {
            "path": self.path,
            "kind": self.kind,
            "num_rows": self.num_rows,
            "bytes": self.bytes,
            "sha256": self.sha256,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FileEntry:
        """Parse the manifest's JSON form."""
        return cls(
            path=str(data["path"]),
            kind=str(data["kind"]),
            num_rows=None if data.get("num_rows") is None else int(data["num_rows"]),
            bytes=int(data["bytes"]),
            sha256=str(data["sha256"]),
        )


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


def _check_relative(rel: str) -> None:
    parts = rel.split("/")
    if rel.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise StorageError(f"refusing the dataset path {rel!r}: not a plain relative path")


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
        protocol = url.split("://", 1)[0] if "://" in url else "file"
        try:
            fs, root = fsspec.core.url_to_fs(url, **self.storage_options)
        except ImportError as exc:
            package, extra = _EXTRAS.get(protocol, (protocol, protocol))
            raise MissingDependencyError(package, extra, f"writing to {protocol}://") from exc
        except ValueError as exc:
            raise ConfigError(f"unknown storage target {url!r}: {exc}") from exc
        self.fs: fsspec.AbstractFileSystem = fs
        self.root: str = root.rstrip("/") if root not in ("/", "") else root
        self.is_local = isinstance(fs, LocalFileSystem)

    def __getstate__(self) -> dict[str, Any]:
        # Filesystem objects do not always pickle; a store is rebuilt in each worker.
        return {"url": self.url, "storage_options": self.storage_options}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["url"], state["storage_options"])  # type: ignore[misc]

    # -- paths -----------------------------------------------------------------------
    def path(self, rel: str) -> str:
        """The filesystem path of ``rel`` (a relative dataset path)."""
        _check_relative(rel)
        return f"{self.root}/{rel}" if self.root else rel

    def local_path(self, rel: str) -> str | None:
        """An OS path for ``rel`` when the dataset is on local disk, else ``None``."""
        return self.path(rel) if self.is_local else None

    # -- writing ---------------------------------------------------------------------
    def _atomic(self, rel: str) -> tuple[str, str]:
        final = self.path(rel)
        parent = final.rsplit("/", 1)[0] if "/" in final else ""
        if self.is_local:
            if parent:
                os.makedirs(parent, exist_ok=True)
            return final, f"{parent}/.tmp-{uuid.uuid4().hex}-{final.rsplit('/', 1)[-1]}"
        return final, final

    def _finish(self, final: str, tmp: str) -> None:
        if tmp != final:
            os.replace(tmp, final)

    def write_bytes(self, rel: str, data: bytes) -> FileEntry:
        """Write ``data`` whole to ``rel`` (atomic replace), returning its entry."""
        final, tmp = self._atomic(rel)
        try:
            with self.fs.open(tmp, "wb") as handle:
                handle.write(data)
            self._finish(final, tmp)
        except OSError as exc:
            raise StorageError(f"cannot write {rel} under {self.url}: {exc}") from exc
        finally:
            self._discard(tmp, final)
        return FileEntry(rel, "blob", None, len(data), hashlib.sha256(data).hexdigest())

    def put_stream(self, rel: str, source: IO[bytes], kind: str = "video") -> FileEntry:
        """Copy a local binary file to ``rel`` whole, hashing it on the way."""
        final, tmp = self._atomic(rel)
        source.seek(0)
        try:
            with self.fs.open(tmp, "wb") as handle:
                writer = _HashingWriter(handle)
                shutil.copyfileobj(source, writer, 1 << 20)
            self._finish(final, tmp)
        except OSError as exc:
            raise StorageError(f"cannot write {rel} under {self.url}: {exc}") from exc
        finally:
            self._discard(tmp, final)
        return FileEntry(rel, kind, None, writer.size, writer.digest.hexdigest())

    def write_table(self, rel: str, table: pa.Table, kind: str) -> FileEntry:
        """Write ``table`` as one zstd Parquet file at ``rel`` (atomic replace)."""
        final, tmp = self._atomic(rel)
        try:
            with self.fs.open(tmp, "wb") as handle:
                writer = _HashingWriter(handle)
                pq.write_table(
                    table,
                    writer,
                    compression="zstd",
                    row_group_size=ROW_GROUP_ROWS,
                    use_dictionary=True,
                    write_statistics=True,
                )
            self._finish(final, tmp)
        except (OSError, pa.ArrowException) as exc:
            raise StorageError(f"cannot write {rel} under {self.url}: {exc}") from exc
        finally:
            self._discard(tmp, final)
        return FileEntry(rel, kind, table.num_rows, writer.size, writer.digest.hexdigest())

    def _discard(self, tmp: str, final: str) -> None:
        if tmp != final and os.path.exists(tmp):
            os.unlink(tmp)

    # -- reading ---------------------------------------------------------------------
    def read_bytes(self, rel: str) -> bytes | None:
        """The bytes at ``rel``, or ``None`` when there is no such file."""
        try:
            data: bytes = self.fs.cat_file(self.path(rel))
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StorageError(f"cannot read {rel} under {self.url}: {exc}") from exc
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

    def open(self, rel: str) -> IO[bytes]:
        """Open ``rel`` for reading (seekable; remote files are read with a block cache)."""
        try:
            handle: IO[bytes] = self.fs.open(self.path(rel), "rb")
        except FileNotFoundError as exc:
            raise StorageError(f"{rel} is missing under {self.url}") from exc
        return handle

    def file_info(self, rel: str) -> dict[str, Any] | None:
        """fsspec's info of ``rel`` (with ``size``), or ``None`` when absent."""
        try:
            info: dict[str, Any] = self.fs.info(self.path(rel))
        except FileNotFoundError:
            return None
        return info

    def checksum(self, rel: str) -> tuple[str, int]:
        """SHA-256 and size of ``rel`` as stored."""
        with self.open(rel) as handle:
            return hash_file(handle)

    def list_files(self, folder: str) -> list[str]:
        """Relative paths of the files under ``folder`` (recursively), sorted."""
        base = self.path(folder)
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

    def remove(self, rels: Iterable[str]) -> None:
        """Delete files (missing ones are fine)."""
        for rel in rels:
            with contextlib.suppress(FileNotFoundError):
                self.fs.rm_file(self.path(rel))

    def dataset(self, rels: list[str], schema: pa.Schema | None = None) -> pads.Dataset:
        """A pyarrow dataset over the Parquet files ``rels`` (for lazy scans)."""
        paths = [self.path(rel) for rel in rels]
        if self.is_local:
            return pads.dataset(paths, format="parquet", schema=schema)
        from pyarrow.fs import FSSpecHandler, PyFileSystem

        return pads.dataset(
            paths, format="parquet", schema=schema, filesystem=PyFileSystem(FSSpecHandler(self.fs))
        )

    def iter_table_batches(self, rel: str) -> Iterator[pa.RecordBatch]:
        """Stream the record batches of one Parquet file."""
        with self.open(rel) as handle:
            yield from pq.ParquetFile(handle).iter_batches()
