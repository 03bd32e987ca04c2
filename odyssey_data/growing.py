"""A file read while another thread of this process is still downloading it.

Decoding can start while the bytes still arrive: a fast-start MP4 (index first) decodes
front to back. The downloading thread writes through a :class:`WatchedWriter`, which
reports each write to a shared :class:`Growth`; a :class:`GrowingReader` hands the
decoder what is already on disk and waits for the rest. A download that starts over
from byte 0 (a retry the server would not resume) or fails makes the reader raise
:class:`StartedOver`, and the caller reads the finished file instead. A file with its
index at the end still works: the decoder's seek to the end waits for the download.
"""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Callable
from typing import IO, Any

__all__ = ["GrowingReader", "Growth", "StartedOver", "WatchedWriter"]

#: How long a reader waits between looks at a download that reports nothing new.
_POLL_S = 0.5


class StartedOver(Exception):
    """The download started over or failed while the file was being read."""


class Growth:
    """How far a file is written, shared by its writer and its readers (thread-safe).

    Attributes:
        written: bytes on disk from the start of the file.
        size: the full size, once the server announced it (``None`` before).
        generation: counts the times the writer went back over bytes already written.
        finished: the writer is done, for good or not.
        failed: the writer gave up (the file is not whole).
        abandoned: the reader gave up (an interrupt); the writer stops at its next write.
    """

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.started = threading.Event()
        self.written = 0
        self.size: int | None = None
        self.generation = 0
        self.finished = False
        self.failed = False
        self.abandoned = False

    def advance(self, end: int) -> None:
        """The file now holds its first ``end`` bytes."""
        with self.cond:
            if end > self.written:
                self.written = end
                self.cond.notify_all()

    def cut(self, end: int) -> None:
        """The file was cut to ``end`` bytes; bytes a reader has seen may change."""
        with self.cond:
            if end < self.written:
                self.written = end
                self.generation += 1
                self.cond.notify_all()

    def announce(self, size: int | None) -> None:
        """The full size, as the server announced it."""
        with self.cond:
            self.size = size
            self.cond.notify_all()

    def abandon(self) -> None:
        """Nobody reads any more (an interrupt): the writer's next write raises."""
        with self.cond:
            self.abandoned = True
            self.cond.notify_all()

    def finish(self, *, failed: bool = False) -> None:
        """The writer is done (idempotent; a failure stays a failure)."""
        with self.cond:
            self.finished = True
            self.failed = self.failed or failed
            self.cond.notify_all()
        self.started.set()


class WatchedWriter:
    """The writer's file object, reporting every write and cut to a :class:`Growth`.

    Each write is flushed before it is reported, so a reader finds the bytes on disk.
    ``size`` tells the full size once the download knows it (announced with the first
    write after that). Everything else is the wrapped file's own.
    """

    def __init__(
        self, handle: IO[bytes], growth: Growth, size: Callable[[], int | None] | None = None
    ) -> None:
        self._handle = handle
        self._growth = growth
        self._size = size

    def write(self, data: bytes) -> int:
        if self._growth.abandoned:
            raise StartedOver("the reader gave up on this download")
        written = self._handle.write(data)
        self._handle.flush()
        if self._growth.size is None and self._size is not None:
            self._growth.announce(self._size())
        self._growth.advance(self._handle.tell())
        return written

    def truncate(self, size: int | None = None) -> int:
        end = self._handle.truncate(size)
        self._growth.cut(end)
        return end

    def __getattr__(self, name: str) -> Any:
        return getattr(self._handle, name)


class GrowingReader(io.RawIOBase):
    """Reads ``path`` as it grows, waiting for bytes not yet written.

    Raises :class:`StartedOver` when the writer goes back over written bytes or fails.
    """

    def __init__(self, path: str, growth: Growth) -> None:
        super().__init__()
        self._growth = growth
        self._generation = growth.generation
        self._fd = os.open(path, os.O_RDONLY)
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def _wait(self, ready: Any) -> None:
        growth = self._growth
        with growth.cond:
            while True:
                if growth.generation != self._generation or growth.failed:
                    raise StartedOver("the download started over or failed")
                if ready() or growth.finished:
                    return
                growth.cond.wait(_POLL_S)

    def readinto(self, buffer: Any) -> int:
        self._wait(lambda: self._growth.written > self._pos)
        available = self._growth.written - self._pos
        if available <= 0:
            return 0  # the end of the finished file
        data = os.pread(self._fd, min(len(buffer), available), self._pos)
        buffer[: len(data)] = data
        self._pos += len(data)
        return len(data)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_END:
            growth = self._growth
            self._wait(lambda: growth.size is not None)
            end = growth.size if growth.size is not None else growth.written
            self._pos = max(0, end + offset)
        elif whence == io.SEEK_CUR:
            self._pos = max(0, self._pos + offset)
        else:
            self._pos = max(0, offset)
        return self._pos

    def close(self) -> None:
        if not self.closed:
            os.close(self._fd)
        super().close()
