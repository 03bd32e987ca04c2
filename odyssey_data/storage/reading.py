"""Reading a dataset's files: handles whose failures are the store's one-line errors.

:class:`ReadHandle` is what :meth:`DatasetStore.open
<odyssey_data.storage.DatasetStore.open>` returns; :class:`StoreHandler` is the pyarrow
filesystem of a remote dataset's lazy scans (:meth:`DatasetStore.dataset
<odyssey_data.storage.DatasetStore.dataset>`). Both send a backend's exceptions through
:func:`odyssey_data.storage.errors.translate`.
"""

from __future__ import annotations

import io
from typing import IO, TYPE_CHECKING, Any

from pyarrow import PythonFile
from pyarrow.fs import FSSpecHandler

from odyssey_data.storage.errors import translate

if TYPE_CHECKING:
    from odyssey_data.storage.store import DatasetStore

__all__ = ["ReadHandle", "StoreHandler"]


class ReadHandle(io.RawIOBase):
    """A file of the dataset opened for reading, whose failures are one-line errors.

    What :meth:`DatasetStore.open` returns: PyAV, pyarrow and hashing read through it.
    The backend's file (fsspec's, with its block cache) does the work; a ``read``,
    ``readinto``, ``seek``, ``tell`` or ``close`` that fails after the open (an endpoint
    gone, a connection reset, an object deleted, permission withdrawn) raises the
    :class:`~odyssey_data.errors.StorageError` the store's own methods raise, naming
    the file and the dataset, instead of the backend's exception. One ``try`` per call:
    it costs nothing next to the backend's own bookkeeping.
    """

    def __init__(self, inner: IO[bytes], store: DatasetStore, rel: str) -> None:
        self._inner = inner
        self._store = store
        self._rel = rel

    def _failed(self, exc: Exception) -> Exception:
        """``exc`` as the package's error, or ``exc`` itself if it is not the backend's
        (or the file was closed: using it then is the caller's mistake)."""
        if self.closed:
            return exc
        translated = translate(exc, self._store, "read", self._rel)
        return exc if translated is None else translated

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return bool(self._inner.seekable())

    def read(self, size: int | None = -1) -> bytes:
        try:
            return self._inner.read(-1 if size is None else size)
        except Exception as exc:
            raise self._failed(exc) from exc

    def readall(self) -> bytes:
        return self.read(-1)

    def readinto(self, buffer: Any) -> int:
        try:
            readinto = getattr(self._inner, "readinto", None)
            if readinto is not None:
                return int(readinto(buffer))
            view = memoryview(buffer).cast("B")
            data = self._inner.read(len(view))
            view[: len(data)] = data
            return len(data)
        except Exception as exc:
            raise self._failed(exc) from exc

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        try:
            return int(self._inner.seek(offset, whence))
        except Exception as exc:
            raise self._failed(exc) from exc

    def tell(self) -> int:
        try:
            return int(self._inner.tell())
        except Exception as exc:
            raise self._failed(exc) from exc

    def close(self) -> None:
        if self.closed:
            return
        try:
            self._inner.close()
        except Exception as exc:
            raise self._failed(exc) from exc
        finally:
            super().close()

    def __reduce__(self) -> tuple[Any, ...]:
        # As picklable as the backend's file is (fsspec's reopen theirs).
        return (type(self), (self._inner, self._store, self._rel))


class StoreHandler(FSSpecHandler):  # type: ignore[misc]  # pyarrow has no stubs
    """pyarrow's filesystem over the store's fsspec one, whose files are opened by
    :meth:`DatasetStore.open` and whose failures are the store's one-line errors.

    pyarrow's own handler turns every failure to open a file into a bare
    ``FileNotFoundError`` (it asks ``isfile`` first, which answers False for an
    endpoint gone), and lets the backend's exceptions out of ``info``.
    """

    def __init__(self, store: DatasetStore) -> None:
        super().__init__(store.fs)
        self._store = store

    def _rel(self, path: str) -> str:
        root = self._store.root
        return path.removeprefix(f"{root}/") if root else path

    def get_file_info(self, paths: list[str]) -> list[Any]:
        try:
            return list(super().get_file_info(paths))
        except Exception as exc:
            where = self._rel(paths[0]) if len(paths) == 1 else ""
            translated = translate(exc, self._store, "read", where)
            if translated is None:
                raise
            raise translated from exc

    def open_input_file(self, path: str) -> Any:
        return PythonFile(self._store.open(self._rel(path)), mode="r")

    def open_input_stream(self, path: str) -> Any:
        return self.open_input_file(path)
