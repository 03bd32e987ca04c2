"""The random-access reader: frames read back by pts, the decoder kept positioned.

A :class:`VideoReader` is an open video whose decoder stays positioned between reads,
seeking only when a key frame of the frames table (a
:class:`~odyssey_data.video.index.FrameIndex`) lies between its position and the next
target. :func:`read_frames` is one reader used once;
:class:`odyssey_data.decoders.DecoderCache` keeps them open. ``benchmarks/read_path.py``
measures it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Generator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from av.video.reformatter import VideoReformatter

from odyssey_data.errors import DecodeError
from odyssey_data.video.container import VideoSource, open_video, to_rgb, video_stream
from odyssey_data.video.errors import RETRY, translated
from odyssey_data.video.index import FrameIndex, min_forward_skip

__all__ = ["VideoReader", "available_cores", "read_frames"]

log = logging.getLogger(__name__)

#: A position past the last frame: the decoder was drained.
_END = np.iinfo(np.int64).max


class _OutOfOrder(Exception):
    """The decoder presented a pts at or before the previous one."""


class VideoReader:
    """An open video whose decoder stays positioned between reads.

    Frames come out exactly as a decode from the start would present them: the reader
    seeks only to key frames, decodes forward from there, and picks frames by pts. It
    keeps the container, the decoder and its position, so reading the next frames of the
    same video costs only their decoding: no open, no probe, no seek unless a key frame
    lies between the position and the target.

    The container is opened without FFmpeg's probe decode. Should the decoder then
    present frames out of pts order (a stream whose reordering its headers do not tell),
    the reader opens the video again with the probe and reads again.

    Args:
        source: a path or a seekable binary file object.
        index: the video's frames and key frames (the frames table's).
        threads: 1 decodes on the calling thread; more uses that many frame threads
            (fixed for the reader's life: FFmpeg cannot change it once decoding began).
        what: names the recording in error messages.
        close_source: close a file object ``source`` with the reader.

    Attributes:
        decoded: frames decoded so far; ``seeks``: seeks so far; ``opens``: times the
            container was opened.
    """

    def __init__(
        self,
        source: VideoSource,
        *,
        index: FrameIndex | None = None,
        threads: int = 1,
        what: str = "video",
        close_source: bool = False,
    ) -> None:
        self.source = source
        self.index = index if index is not None else FrameIndex(())
        self.threads = max(1, int(threads))
        self.what = what
        self._close_source = close_source
        self.decoded = self.seeks = self.opens = 0
        self._container: Any = None
        self._open(probe_decode=False)

    def _open(self, *, probe_decode: bool) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None
        if not isinstance(self.source, str | Path):
            self.source.seek(0)
        container = open_video(self.source, self.what, packets_only=not probe_decode)
        try:
            stream = video_stream(container, self.what)
            if self.threads == 1:
                stream.codec_context.thread_count = 1
            else:
                stream.thread_type = "FRAME"
                stream.codec_context.thread_count = self.threads
        except BaseException:
            container.close()
            raise
        self._container, self._stream = container, stream
        self._probed = probe_decode
        self._frames: Generator[Any, None, None] | None = None
        self._reformatter = VideoReformatter()
        self._seek_map: dict[int, int] | None = None
        self._sought = False
        self.position: int | None = None  # pts of the last frame presented
        self._last: Any = None  # that frame, to serve it again without a seek
        self.opens += 1

    @property
    def nbytes(self) -> int:
        """An estimate of the memory this open decoder holds (bytes).

        Frame buffers of the decoder (reference frames, reordering, one per thread) and
        the container's buffers; measured per open 640x360 H.264 decoder at 6.1 MB on one
        thread and 7.5 MB on two, which this estimate (6.5 and 8.2 MB) bounds.
        """
        ctx = self._stream.codec_context
        width, height = int(ctx.width or 1920), int(ctx.height or 1080)
        deep = any(bits in str(ctx.pix_fmt or "") for bits in ("10", "12", "16"))
        frame = width * height * (3 if deep else 1.5)
        buffered = int(getattr(self.source, "blocksize", 0) or 0)
        return int(frame * (12 + 3 * self.threads)) + (2 << 20) + buffered

    def read(
        self, pts: Sequence[int], *, size: tuple[int, int] | None = None
    ) -> list[npt.NDArray[np.uint8]]:
        """Decode the frames with these presentation timestamps, in the order asked.

        Args:
            pts: wanted presentation timestamps (the frames table's ``pts``).
            size: ``(width, height)`` to resize to, or ``None`` for the decoded size.

        Returns:
            ``H×W×3`` uint8 RGB arrays, one per requested pts.

        Raises:
            DecodeError: the video cannot be read or a wanted pts was not presented.
        """
        if not pts:
            return []
        wanted = sorted(set(int(p) for p in pts))
        with translated(self.what, "decoding failed"):
            try:
                found = self._collect(wanted, size)
            except _OutOfOrder:
                if self._probed:
                    raise DecodeError(
                        f"{self.what}: the decoder presents frames out of order; the "
                        f"video is damaged ({RETRY})"
                    ) from None
                log.info("%s: frames out of order without the probe; reopening", self.what)
                self._open(probe_decode=True)
                found = self._collect(wanted, size)
        missing = [p for p in wanted if p not in found]
        if missing:
            raise DecodeError(
                f"{self.what}: no frame was presented at pts {missing[:5]}; the frames table "
                "and the video disagree (re-export this recording or run 'odyssey-data verify')"
            )
        return [found[int(p)] for p in pts]

    def _collect(
        self, wanted: list[int], size: tuple[int, int] | None
    ) -> dict[int, npt.NDArray[np.uint8]]:
        found: dict[int, npt.NDArray[np.uint8]] = {}
        for target in wanted:
            frame = self._frame_at(target)
            if frame is not None:
                found[target] = to_rgb(self._reformatter, frame, size)
        return found

    def _frame_at(self, target: int) -> Any:
        """The decoded frame presented at ``target``, or ``None`` if none is."""
        if self._last is not None and self.position == target:
            return self._last
        if self.index.needs_seek(self.position, target, min_forward_skip(self.threads)):
            key = self.index.key_at_or_before(target)
            self._seek(target if key is None else self._seek_timestamp(key))
        return self._decode_to(target)

    def _seek(self, timestamp: int) -> None:
        if self._frames is not None:
            self._frames.close()
        # backward=True: land on the key frame at or before the timestamp. PyAV flushes
        # the decoder after the seek.
        self._container.seek(timestamp, stream=self._stream, backward=True, any_frame=False)
        self._frames = None
        self._sought = True
        self.seeks += 1

    def _seek_timestamp(self, key: int) -> int:
        """The seek timestamp that lands on the key frame presented at ``key``.

        FFmpeg's MP4 demuxer searches its sample index by decode timestamp after taking
        one constant off the requested time, so a key frame's own pts often lands on the
        key frame before it (a whole group of pictures decoded for nothing). The
        container's index lists the key frames in decode order, which for closed groups
        of pictures is their presentation order: the i-th key frame's decode timestamp
        plus that constant (the first frame's pts minus its decode timestamp) lands on it.
        Where the index and the frames table do not pair up, the key frame's pts is used;
        a landing past the target is caught in :meth:`_decode_to` either way.
        """
        if self._seek_map is None:
            self._seek_map = {}
            first = self.index.first_pts
            entries = [e for e in self._stream.index_entries if not e.is_discard]
            dts = [int(e.timestamp) for e in entries if e.is_keyframe]
            if entries and first is not None and len(dts) == self.index.key_pts.size:
                shift = first - int(entries[0].timestamp)
                self._seek_map = {
                    int(p): d + shift for p, d in zip(self.index.key_pts, dts, strict=True)
                }
        return self._seek_map.get(key, key)

    def _decode_to(self, target: int) -> Any:
        """Decode forward to the first frame presented at or after ``target``."""
        if self._frames is None:
            self._frames = self._container.decode(self._stream)
        for frame in self._frames:
            if frame.pts is None:
                continue
            self.decoded += 1
            pts = int(frame.pts)
            if self._sought:
                self._sought = False
                if pts > target:
                    # Landed past the target (a container whose seek is not by key frame
                    # as indexed): read from the start of the stream instead.
                    log.info("%s: seek went past pts %s; reading from the start", self.what, target)
                    self._open(probe_decode=self._probed)
                    return self._decode_to(target)
            elif self.position is not None and pts <= self.position:
                raise _OutOfOrder
            self.position, self._last = pts, frame
            if pts >= target:
                return frame if pts == target else None
        self.position, self._last = int(_END), None
        return None

    def close(self) -> None:
        """Close the container (and the source file object if the reader owns it)."""
        if self._frames is not None:
            self._frames.close()
            self._frames = None
        self._last = None
        if self._container is not None:
            self._container.close()
            self._container = None
        if self._close_source and not isinstance(self.source, str | Path):
            self.source.close()

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_frames(
    source: VideoSource,
    pts: Sequence[int],
    *,
    size: tuple[int, int] | None = None,
    keyframes: Sequence[int] | None = None,
    index: FrameIndex | None = None,
    threads: int = 0,
    what: str = "video",
) -> list[npt.NDArray[np.uint8]]:
    """Decode the frames with the given presentation timestamps, in the order asked.

    Opens a :class:`VideoReader`, reads, closes it. Targets are sorted; the decoder
    seeks to the key frame before the first one and decodes forward, seeking again only
    when a key frame lies between the current position and the next target. A batch
    costs at most one decode pass over the video, never one seek per frame.

    Args:
        source: a path or a seekable binary file object.
        pts: wanted presentation timestamps (the ``pts`` column of the frames table).
        size: ``(width, height)`` to resize to, or ``None`` for the decoded size.
        keyframes: pts of the video's key frames (the frames table's ``is_keyframe``
            rows), to skip long stretches between scattered targets; ``None`` decodes
            everything from the first target to the last.
        index: the video's frames and key frames (instead of ``keyframes``); with every
            frame's pts, the threads are chosen by :meth:`FrameIndex.threads_for`.
        threads: the most decoder threads to use; 0 for one per core.
        what: names the recording in error messages.

    Returns:
        ``H×W×3`` uint8 RGB arrays, one per requested pts, in request order.

    Raises:
        DecodeError: the video cannot be read or a wanted pts was not presented.
    """
    if not pts:
        return []
    if index is None:
        index = FrameIndex(keyframes or ())
    budget = threads if threads > 0 else available_cores()
    with VideoReader(
        source, index=index, threads=index.threads_for(pts, budget), what=what
    ) as reader:
        return reader.read(pts, size=size)


def available_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1
