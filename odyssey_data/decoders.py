"""Open video decoders kept per process, so reading frames does not reopen a video per item.

A training loop reads one frame or one clip at a time, in random order, from a few
hundred videos. Opening a video costs a container probe and a fresh decoder each time;
a :class:`DecoderCache` keeps :class:`~odyssey_data.video.VideoReader` objects open
instead and reuses one for every item of the same video, positioned where its last read
ended (it decodes forward when the next frame is ahead in the same group of pictures,
and seeks by the frames table's key-frame index otherwise).

Bounded: at most ``max_open`` decoders and about ``max_bytes`` of decoder memory (each
reader's :attr:`~odyssey_data.video.VideoReader.nbytes` estimate); the least recently
used decoder is closed first. With the defaults (64 decoders, 512 MiB) a worker reading
640x360 recordings keeps 64 open (466 MB by the estimate, 277 MB measured); 100 open
measured 417 MB, as much as plain PyAV keeping them open (``benchmarks/read_path.py``).
The estimate errs high, so the memory bound holds.

Per process and fork-safe: the cache is never shared between processes. Pickling keeps
only its settings (a ``DataLoader`` worker started by spawn builds its own), and before
a fork every cache closes its idle decoders, so a forked worker starts empty and never
touches decoder threads that exist only in its parent. Thread-safe: a reader is taken
out of the cache while a thread decodes with it, so two threads never share one.

Threads are chosen per request, up to the caller's budget: isolated frames decode on one
thread; a long run that spans several groups of pictures (a clip, a sequential scan) is
cut at key frames into parts that single-threaded decoders of the same video read side
by side (:meth:`FrameIndex.split <odyssey_data.video.FrameIndex.split>`: the same frames,
no more decoding, and on 2 cores 1.2 to 1.4 times faster than frame threads); a long run
within one group of pictures decodes on frame threads (:meth:`FrameIndex.threads_for
<odyssey_data.video.FrameIndex.threads_for>`). The cache keeps each kind of decoder it
opened for a video (one per part, one frame-threaded).

Example:
    >>> cache = DecoderCache(max_open=16)  # doctest: +SKIP
    >>> cache.read("videos/a.mp4", lambda: "ds/videos/a.mp4", [3000], index=index)  # doctest: +SKIP
"""

from __future__ import annotations

import os
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from odyssey_data.errors import ConfigError
from odyssey_data.video import FrameIndex, VideoReader, VideoSource

__all__ = ["DecoderCache"]

#: Every live cache, to close their idle decoders before a fork.
_CACHES: weakref.WeakSet[DecoderCache] = weakref.WeakSet()


class DecoderCache:
    """A per-process LRU of open video decoders, bounded by count and by memory.

    Args:
        max_open: the most decoders kept open.
        max_bytes: the most decoder memory kept (the readers' estimates, bytes);
            ``None`` for no memory bound.

    Attributes:
        opened: decoders opened so far; ``reused``: reads served by an open decoder;
            ``evicted``: decoders closed to stay within the bounds; ``parallel``:
            requests cut into parts decoded side by side.
    """

    def __init__(self, max_open: int = 64, max_bytes: int | None = 512 << 20) -> None:
        if max_open < 1:
            raise ConfigError(f"max_open must be at least 1, not {max_open}")
        if max_bytes is not None and max_bytes < 1:
            raise ConfigError(f"max_bytes must be positive or None, not {max_bytes}")
        self.max_open = int(max_open)
        self.max_bytes = None if max_bytes is None else int(max_bytes)
        self._init_state()

    def _init_state(self) -> None:
        self._lock = threading.Lock()
        self._idle: OrderedDict[tuple[Hashable, int, int], VideoReader] = OrderedDict()
        self.opened = self.reused = self.evicted = self.parallel = 0
        self._pid = os.getpid()
        _CACHES.add(self)

    def __repr__(self) -> str:
        return (
            f"DecoderCache(max_open={self.max_open}, max_bytes={self.max_bytes}, "
            f"open={len(self)}, nbytes={self.nbytes})"
        )

    def __len__(self) -> int:
        """Decoders open and idle in this process."""
        return len(self._idle) if self._pid == os.getpid() else 0

    @property
    def nbytes(self) -> int:
        """Estimated memory of the idle decoders (bytes)."""
        with self._lock:
            return sum(reader.nbytes for reader in self._idle.values())

    def read(
        self,
        video: Hashable,
        open_source: Callable[[], VideoSource],
        pts: Sequence[int],
        *,
        index: FrameIndex | None = None,
        size: tuple[int, int] | None = None,
        threads: int = 1,
        what: str = "video",
    ) -> list[npt.NDArray[np.uint8]]:
        """Decode frames of ``video`` by pts with kept decoders, in the order asked.

        A long run that spans several groups of pictures (a clip) is cut at key frames
        into up to ``threads`` parts (:meth:`FrameIndex.split
        <odyssey_data.video.FrameIndex.split>`) that single-threaded decoders of the same
        video read side by side, one on this thread and the others on short-lived
        threads; a long run that cannot be cut evenly decodes on frame threads; anything
        else on one thread.

        Args:
            video: names the video in the cache (e.g. the dataset URL and video path).
            open_source: returns a path or a seekable binary file object (a file object
                is closed with its decoder), called for each decoder opened.
            pts: wanted presentation timestamps.
            index: the video's frames and key frames (the frames table's).
            size: ``(width, height)`` to resize to.
            threads: the most threads this request may decode on (see the module).
            what: names the recording in error messages.

        Raises:
            DecodeError: the video cannot be read or a wanted pts was not presented.
        """
        if not pts:
            return []
        if self._pid != os.getpid():  # a copy made without fork hooks; start empty
            self._init_state()
        index = index if index is not None else FrameIndex(())
        parts = index.split(pts, threads)
        if len(parts) == 1:
            key = (video, index.threads_for(pts, threads), 0)
            return self._read_with(key, open_source, pts, index, size, what)
        with self._lock:
            self.parallel += 1
        found: dict[int, npt.NDArray[np.uint8]] = {}
        for part, images in zip(
            parts, self._read_parts(video, open_source, parts, index, size, what), strict=True
        ):
            found.update(zip(part, images, strict=True))
        return [found[int(p)] for p in pts]

    def _read_parts(
        self,
        video: Hashable,
        open_source: Callable[[], VideoSource],
        parts: list[list[int]],
        index: FrameIndex,
        size: tuple[int, int] | None,
        what: str,
    ) -> list[list[npt.NDArray[np.uint8]]]:
        """Read each part with its own single-threaded decoder, side by side."""
        results: list[list[npt.NDArray[np.uint8]]] = [[] for _ in parts]
        failures: list[BaseException | None] = [None] * len(parts)

        def read_part(slot: int) -> None:
            try:
                key = (video, 1, slot)
                results[slot] = self._read_with(key, open_source, parts[slot], index, size, what)
            except BaseException as exc:  # raised on the calling thread below
                failures[slot] = exc

        helpers = [
            threading.Thread(target=read_part, args=(slot,), name="odyssey-data-decode")
            for slot in range(1, len(parts))
        ]
        for helper in helpers:
            helper.start()
        try:
            read_part(0)
        finally:
            for helper in helpers:
                helper.join()
        for failure in failures:
            if failure is not None:
                raise failure
        return results

    def _read_with(
        self,
        key: tuple[Hashable, int, int],
        open_source: Callable[[], VideoSource],
        pts: Sequence[int],
        index: FrameIndex,
        size: tuple[int, int] | None,
        what: str,
    ) -> list[npt.NDArray[np.uint8]]:
        """Read with the cache's decoder for ``key`` (opened if none is), then keep it."""
        reader = self._take(key)
        if reader is None:
            source = open_source()
            try:
                reader = VideoReader(
                    source,
                    index=index,
                    threads=key[1],
                    what=what,
                    close_source=not isinstance(source, str | os.PathLike),
                )
            except BaseException:
                if not isinstance(source, str | os.PathLike):
                    source.close()
                raise
            with self._lock:
                self.opened += 1
        else:
            with self._lock:
                self.reused += 1
            reader.index = index
        try:
            images = reader.read(pts, size=size)
        except BaseException:
            reader.close()  # its state is unknown after a failure
            raise
        self._give_back(key, reader)
        return images

    def _take(self, key: tuple[Hashable, int, int]) -> VideoReader | None:
        with self._lock:
            return self._idle.pop(key, None)

    def _give_back(self, key: tuple[Hashable, int, int], reader: VideoReader) -> None:
        closing: list[VideoReader] = []
        with self._lock:
            if key in self._idle:  # another thread opened one meanwhile: keep one
                closing.append(self._idle.pop(key))
            self._idle[key] = reader
            total = sum(r.nbytes for r in self._idle.values()) if self.max_bytes else 0
            while self._idle and (
                len(self._idle) > self.max_open
                or (self.max_bytes is not None and total > self.max_bytes)
            ):
                _, oldest = self._idle.popitem(last=False)
                total -= oldest.nbytes if self.max_bytes else 0
                closing.append(oldest)
                self.evicted += 1
        for old in closing:
            old.close()

    def close(self) -> None:
        """Close every idle decoder (the cache stays usable)."""
        with self._lock:
            readers = list(self._idle.values())
            self._idle.clear()
        for reader in readers:
            reader.close()

    def __getstate__(self) -> dict[str, Any]:
        return {"max_open": self.max_open, "max_bytes": self.max_bytes}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.max_open = state["max_open"]
        self.max_bytes = state["max_bytes"]
        self._init_state()


#: The caches whose locks the forking thread holds, from before a fork to after it.
_HELD: list[DecoderCache] = []


def _before_fork() -> None:
    # Close idle decoders and hold every lock through the fork: the child then inherits
    # no open decoder (a frame-threaded one would wait on threads the child lacks) and
    # no lock held by another thread.
    for cache in list(_CACHES):
        cache._lock.acquire()
        _HELD.append(cache)
        readers = list(cache._idle.values())
        cache._idle.clear()
        for reader in readers:
            reader.close()


def _after_fork_in_parent() -> None:
    while _HELD:
        _HELD.pop()._lock.release()


def _after_fork_in_child() -> None:
    _HELD.clear()
    for cache in list(_CACHES):
        cache._init_state()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=_before_fork,
        after_in_parent=_after_fork_in_parent,
        after_in_child=_after_fork_in_child,
    )
