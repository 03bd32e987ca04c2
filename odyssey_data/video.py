"""Everything that touches PyAV: frame timing, frame decoding, and writing test videos.

This is the only module that imports ``av``; PyAV errors become
:class:`~odyssey_data.errors.DecodeError` here.

Frame timing comes from demuxing, not decoding (tens of thousands of frames per second
instead of hundreds): packets whose ``pts`` is ``None`` or that the demuxer marks as
discard (edit lists) are dropped and the rest sorted by ``pts``, which equals the decoded
frames' presentation order on H.264 with B-frames. ``stream.index_entries`` holds decode
timestamps, so timing never comes from it (a :class:`VideoReader` only aims its seeks with
it). Where the two could differ (a packet without pts; a
stream that does not start plainly, with a key frame shown first, and whose first
decoded frame then is not the first demuxed pts), :func:`probe_frames` falls back to
decoding the whole recording.

Frames are read back by pts through a :class:`VideoReader`: an open video whose decoder
stays positioned between reads, seeking only when a key frame of the frames table (a
:class:`FrameIndex`) lies between its position and the next target. :func:`read_frames`
is one reader used once; :class:`odyssey_data.decoders.DecoderCache` keeps them open.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Container, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import IO, Any, Literal

import av
import av.error
import numpy as np
import numpy.typing as npt
from av.video.reformatter import Interpolation, VideoReformatter

from odyssey_data.errors import DecodeError

__all__ = [
    "LONG_RUN_FRAMES",
    "FrameIndex",
    "FrameTiming",
    "VideoReader",
    "available_cores",
    "decode_frames",
    "encode_jpeg",
    "encode_video",
    "media_problem",
    "probe_frames",
    "read_frames",
    "resample_video",
    "scan_windows",
]

log = logging.getLogger(__name__)

VideoSource = str | Path | IO[bytes]
ProbeMode = Literal["auto", "demux", "decode"]


@dataclass(frozen=True, slots=True, eq=False)
class FrameTiming:
    """Presentation timing of every frame of a video's video stream (the default track).

    Attributes:
        pts: presentation timestamps in presentation order (int64, strictly increasing).
        is_keyframe: whether each frame is a key frame.
        time_base: the stream's time base (seconds per pts tick).
        width: coded width in pixels.
        height: coded height in pixels.
        codec: codec name, e.g. ``"h264"``.
        method: ``"demux"`` or ``"decode"``: how the timing was read.
    """

    pts: npt.NDArray[np.int64]
    is_keyframe: npt.NDArray[np.bool_]
    time_base: Fraction
    width: int
    height: int
    codec: str
    method: str

    @property
    def frame_count(self) -> int:
        """Number of presented frames."""
        return int(self.pts.shape[0])

    @property
    def first_pts(self) -> int:
        """The pts of the first presented frame (time zero of the recording)."""
        return int(self.pts[0])

    def timestamps_s(self) -> npt.NDArray[np.float64]:
        """Seconds since the first presented frame: ``(pts - first_pts) * time_base``."""
        out: npt.NDArray[np.float64] = ticks_to_seconds(
            (self.pts - self.pts[0]).astype(np.float64), self.time_base
        )
        return out


def ticks_to_seconds(ticks: Any, time_base: Fraction) -> Any:
    """``ticks * time_base`` in seconds, for a float or an array of float64 ticks.

    ``ticks * num / den``, not ``ticks * (num / den)``: for the usual 1/N time bases this
    is one correctly rounded division, so the value is the closest float to the exact
    time, and a frame's time is the same computed alone or with the others.
    """
    return ticks * time_base.numerator / time_base.denominator


#: Options of a container whose probe need not decode a frame: FFmpeg then skips decoding
#: one while it probes the streams (~10 ms of CPU per full-size recording; the parameters
#: read come from the container and codec headers). The stream's own decoder is made
#: afresh from those parameters, so frames decoded later are the same.
_NO_PROBE_DECODE = {"skip_frame": "all"}


def _open(source: VideoSource, what: str, *, packets_only: bool = False) -> Any:
    """Open ``source`` for reading; ``packets_only`` skips FFmpeg's probe decode.

    Meant for reading packets and stream parameters; a :class:`VideoReader` also opens
    this way, as its decoder is made from the parameters and not from the probe's.
    """
    try:
        # PyAV's stubs type stream_options as list[str]; it takes one dict per stream.
        return av.open(  # type: ignore[call-overload]
            source if not isinstance(source, Path) else str(source),
            "r",
            stream_options=[_NO_PROBE_DECODE] if packets_only else None,
        )
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise DecodeError(
            f"{what}: not a readable video file ({_reason(exc)}): not a video, or cut short "
            "(re-run the export; if it persists, the recording itself is damaged)"
        ) from exc


def _reason(exc: Exception) -> str:
    # FFmpeg's message names the file, here a temp file the reader cannot open anyway.
    strerror = getattr(exc, "strerror", None)
    return str(strerror) if strerror else type(exc).__name__


def _video_stream(container: Any, what: str) -> Any:
    """The recording's video stream: the only one, or the default track of several.

    Cover pictures (attached pictures) do not count. A file with several video streams
    and not exactly one marked as the default track is refused: exporting the wrong
    one would be silent corruption.
    """
    disposition = av.stream.Disposition
    streams = [s for s in container.streams.video if not s.disposition & disposition.attached_pic]
    if not streams:
        raise DecodeError(f"{what}: the file has no video stream")
    if len(streams) == 1:
        return streams[0]
    defaults = [s for s in streams if s.disposition & disposition.default]
    if len(defaults) == 1:
        return defaults[0]
    raise DecodeError(
        f"{what}: the file has {len(streams)} video streams and "
        f"{'none' if not defaults else len(defaults)} of them marked as the default track: "
        "cannot tell which one is the recording"
    )


@dataclass(slots=True)
class _Packets:
    """What the demuxer handed over, to tell a complete file from a cut one."""

    count: int = 0  # non-empty packets, discarded or pts-less ones included
    last_corrupt: bool = False  # the last packet was cut short (a short read at EOF)
    last_dts: int | None = None
    #: (packet number, its dts, the dts before it) of the first packet whose decode
    #: timestamp goes backwards, if any.
    backwards: tuple[int, int, int] | None = None

    def see(self, packet: Any) -> None:
        self.count += 1
        self.last_corrupt = bool(packet.is_corrupt)
        dts = packet.dts
        if dts is not None:
            if self.last_dts is not None and dts < self.last_dts and self.backwards is None:
                self.backwards = (self.count, int(dts), self.last_dts)
            self.last_dts = int(dts)


def _check_order(seen: _Packets, what: str) -> None:
    """Refuse a stream whose decode timestamps go backwards.

    Frames are ordered by their pts, which is right only while the stream's clock runs
    forward: a packet stamped earlier than the one decoded before it (a spliced or
    damaged stream) would be moved silently to another place in the recording.
    """
    if seen.backwards is not None:
        number, dts, before = seen.backwards
        raise DecodeError(
            f"{what}: timestamps go backwards in decode order (packet {number} has dts "
            f"{dts}, after {before}); the stream is damaged or spliced, its frame order "
            "cannot be trusted"
        )


def _demux_timing(
    container: Any, stream: Any
) -> tuple[np.ndarray, np.ndarray, bool, _Packets, bool]:
    """Packets' timing, and whether the stream starts plainly.

    Returns (pts, is_keyframe) sorted by pts, whether a packet had no pts, what the
    demuxer handed over, and ``plain_start``: the first packet in decode order is a key
    frame, not discarded, whose pts is the earliest of all. A decoder then has nothing
    to hold back or drop before it (no leading frames of an open GOP, no edit list
    cutting into a GOP, no stream cut after its key frame), so it presents that frame
    first, as the demuxed timing says.
    """
    pts_list: list[int] = []
    key_list: list[bool] = []
    missing_pts = False
    seen = _Packets()
    first_key, first_pts = False, None
    for packet in container.demux(stream):
        if packet.size == 0:  # the flush packet at the end
            continue
        seen.see(packet)
        if seen.count == 1:
            first_key = bool(packet.is_keyframe) and not packet.is_discard
            first_pts = packet.pts
        if packet.pts is None:
            missing_pts = True
            continue
        if packet.is_discard:
            continue
        pts_list.append(packet.pts)
        key_list.append(bool(packet.is_keyframe))
    pts = np.asarray(pts_list, dtype=np.int64)
    keys = np.asarray(key_list, dtype=np.bool_)
    order = np.argsort(pts, kind="stable")
    pts, keys = pts[order], keys[order]
    plain_start = first_key and first_pts is not None and pts.size > 0 and first_pts == pts[0]
    return pts, keys, missing_pts, seen, bool(plain_start)


def _decode_timing(container: Any, stream: Any) -> tuple[np.ndarray, np.ndarray, _Packets]:
    stream.thread_type = "AUTO"
    pts_list: list[int] = []
    key_list: list[bool] = []
    seen = _Packets()
    for packet in container.demux(stream):
        if packet.size:
            seen.see(packet)
        try:
            # The empty packet at the end flushes the decoder's delayed frames.
            frames = packet.decode()
        except av.error.FFmpegError:
            if not seen.last_corrupt:
                raise
            # The decoder choking on a frame cut short at the end of the file (now, or
            # at the flush): _check_complete reports the truncation.
            frames = []
        for frame in frames:
            if frame.pts is None:
                continue
            pts_list.append(frame.pts)
            key_list.append(bool(frame.key_frame))
    return np.asarray(pts_list, dtype=np.int64), np.asarray(key_list, dtype=np.bool_), seen


def _check_complete(seen: _Packets, indexed: int, what: str) -> None:
    """Refuse a file cut short, even when what is left still decodes.

    A fast-start MP4 keeps its index (every frame's offset and size) before the frames;
    cut the file and the demuxer still reads the frames that remain, so the recording
    would come out shorter without an error. The index says how many frames there must
    be (``stream.frames``, 0 when the container does not say), and a frame whose bytes
    run past the end of the file comes back flagged corrupt.
    """
    if (indexed and seen.count < indexed) or seen.last_corrupt:
        complete = seen.count - seen.last_corrupt
        found = (
            f"its index lists {indexed} frames, the file holds {complete} complete"
            if indexed
            else f"its last frame runs past the end of the file, after {complete} complete"
        )
        raise DecodeError(
            f"{what}: the video file is truncated: {found}; the download or the stored "
            "recording was cut short (re-run the export; if it persists, the recording "
            "itself is damaged)"
        )


def _first_decoded_pts(source: VideoSource, what: str) -> int | None:
    if not isinstance(source, str | Path):
        source.seek(0)
    with _open(source, what) as container:
        stream = _video_stream(container, what)
        for frame in container.decode(stream):
            return None if frame.pts is None else int(frame.pts)
    return None


def probe_frames(
    source: VideoSource, *, what: str = "video", mode: ProbeMode = "auto"
) -> FrameTiming:
    """Read the presentation timing of every frame of the video stream (the only one,
    or the default track: see :func:`_video_stream`).

    Args:
        source: a path or a seekable binary file object.
        what: names the recording in error messages.
        mode: ``"auto"`` demuxes and, unless the stream starts plainly (its first
            packet a key frame shown first), checks the first frame against a decode,
            falling back to a full decode where they could differ; ``"demux"`` trusts
            the packets; ``"decode"`` decodes every frame.

    Returns:
        The timing, with at least one frame.

    Raises:
        DecodeError: the file is not a video, has no video stream (or several and no
            single default track), no frames, duplicate timestamps, timestamps that go
            backwards in decode order, or is cut short (fewer frames than its index
            lists, or a last frame whose bytes run past the end of the file).
    """
    try:
        with _open(source, what, packets_only=mode != "decode") as container:
            stream = _video_stream(container, what)
            time_base, width, height = _stream_params(stream, what)
            codec = str(stream.codec_context.name)
            indexed = int(stream.frames or 0)
            if mode == "decode":
                pts, keys, seen = _decode_timing(container, stream)
                method = "decode"
            else:
                pts, keys, missing, seen, plain_start = _demux_timing(container, stream)
                method = "demux"
                if missing and mode == "auto":
                    method = ""
            _check_complete(seen, indexed, what)
            _check_order(seen, what)
        if not (width and height):
            # A codec whose frame size only a decoded header tells (the container was
            # opened without decoding while probing): open it again to read the size.
            if not isinstance(source, str | Path):
                source.seek(0)
            with _open(source, what) as container:
                ctx = _video_stream(container, what).codec_context
                width, height = int(ctx.width), int(ctx.height)
        if method == "demux" and mode == "auto" and pts.size and not plain_start:
            # The decoder might hold back or drop frames at the start: decode the first
            # one and compare (a plain start is trusted without decoding a frame).
            first = _first_decoded_pts(source, what)
            if first != int(pts[0]):
                log.info("%s: first decoded pts %s != demuxed %s; decoding", what, first, pts[0])
                method = ""
        if not method:
            if not isinstance(source, str | Path):
                source.seek(0)
            with _open(source, what) as container:
                pts, keys, _ = _decode_timing(container, _video_stream(container, what))
            method = "decode"
    except av.error.FFmpegError as exc:
        raise DecodeError(
            f"{what}: the video cannot be read ({_reason(exc)}); it may be damaged "
            "(re-run the export; if it persists, the recording itself is damaged)"
        ) from exc
    if pts.size == 0:
        raise DecodeError(f"{what}: the video stream holds no frames")
    if pts.size > 1 and not bool(np.all(np.diff(pts) > 0)):
        raise DecodeError(f"{what}: two frames share a presentation timestamp")
    return FrameTiming(
        pts=pts,
        is_keyframe=keys,
        time_base=time_base,
        width=width,
        height=height,
        codec=codec,
        method=method,
    )


#: Frames decoded per seek from which frame threads pay off. Below it one thread is
#: faster: a frame-threaded decoder holds frames back and restarts its threads at every
#: seek (one frame after a seek: 29 ms on frame threads against 21 ms on one thread, at
#: 640x360 on 2 cores). Measured by ``benchmarks/read_path.py``.
LONG_RUN_FRAMES = 16

#: A position past the last frame: the decoder was drained.
_END = np.iinfo(np.int64).max


class FrameIndex:
    """Where a video's frames and key frames are, as the frames table lists them.

    A :class:`VideoReader` positions its decoder with this instead of asking the
    container: it seeks only when a key frame lies between its position and the next
    target, and otherwise decodes forward.

    Args:
        key_pts: presentation timestamps of the key frames (the ``is_keyframe`` rows).
        pts: every presented frame's pts, ascending, or ``None`` when only the key frames
            are known (then decode costs cannot be counted, see :meth:`plan`).
    """

    __slots__ = ("key_pts", "pts")

    def __init__(self, key_pts: Iterable[int], pts: npt.ArrayLike | None = None) -> None:
        self.key_pts: npt.NDArray[np.int64] = np.sort(np.asarray(list(key_pts), dtype=np.int64))
        self.pts: npt.NDArray[np.int64] | None = (
            None if pts is None else np.asarray(pts, dtype=np.int64)
        )

    @classmethod
    def of(cls, pts: npt.ArrayLike, is_keyframe: npt.ArrayLike) -> FrameIndex:
        """From a video's ``pts`` and ``is_keyframe`` columns, sorted by pts."""
        all_pts = np.asarray(pts, dtype=np.int64)
        keys = np.asarray(is_keyframe, dtype=np.bool_)
        if all_pts.size > 1 and not bool(np.all(all_pts[1:] > all_pts[:-1])):
            order = np.argsort(all_pts, kind="stable")
            all_pts, keys = all_pts[order], keys[order]
        return cls(all_pts[keys].tolist(), all_pts)

    @property
    def first_pts(self) -> int | None:
        """The first presented frame's pts, if known."""
        if self.pts is not None and self.pts.size:
            return int(self.pts[0])
        return int(self.key_pts[0]) if self.key_pts.size else None

    def key_at_or_before(self, target: int) -> int | None:
        """The last key frame at or before ``target``, or ``None``."""
        at = int(np.searchsorted(self.key_pts, target, side="right")) - 1
        return int(self.key_pts[at]) if at >= 0 else None

    def needs_seek(self, position: int | None, target: int, min_skip: int = 1) -> bool:
        """Whether a decoder that last presented ``position`` must seek to reach ``target``.

        ``position`` is ``None`` for a decoder that has presented nothing since it was
        opened (it stands at the start of the stream). A seek is needed to go back; going
        forward it pays off when a key frame lies between the position and the target
        and decoding can start there, skipping at least ``min_skip`` frames (with every
        frame's pts known); otherwise decoding forward is cheaper.
        """
        key = self.key_at_or_before(target)
        if position is None:
            first = self.first_pts
            if first is None:
                return True  # nothing known: go to the target, as a plain reader would
            if key is None or key <= first:
                return False
        elif target <= position:
            return True
        elif key is None or key <= position:
            return False
        if self.pts is None:
            return True
        after = 0 if position is None else int(np.searchsorted(self.pts, position, "right"))
        return int(np.searchsorted(self.pts, key)) - after >= min_skip

    def plan(
        self, targets: Sequence[int], position: int | None = None, min_skip: int = 1
    ) -> tuple[int, int] | None:
        """``(frames decoded, seeks)`` to present sorted ``targets`` from ``position``.

        ``None`` when the index holds only the key frames (the frames in between are
        not counted).
        """
        if self.pts is None:
            return None
        frames = seeks = 0
        for target in targets:
            if target == position:
                continue  # the reader still holds that frame
            at = int(np.searchsorted(self.pts, target, side="right"))
            if self.needs_seek(position, target, min_skip):
                key = self.key_at_or_before(target)
                start = int(np.searchsorted(self.pts, target if key is None else key))
                seeks += 1
            elif position is None:
                start = 0
            else:
                start = int(np.searchsorted(self.pts, position, side="right"))
            frames += max(0, at - start)
            position = target
        return frames, seeks

    def threads_for(self, targets: Sequence[int], budget: int) -> int:
        """Decoder threads for a request: 1 for isolated frames, ``budget`` for long runs.

        A request is a long run when it asks for several frames and a frame-threaded
        decoder would decode at least :data:`LONG_RUN_FRAMES` frames per seek (a clip, a
        sequential scan); without every frame's pts, when it asks for several frames. A
        single frame always decodes on one thread, however far from its key frame: the
        same video's next single frame then reuses the same decoder.
        """
        wanted = sorted(set(int(p) for p in targets))
        if budget <= 1 or len(wanted) < 2:
            return 1
        planned = self.plan(wanted, None, min_forward_skip(budget))
        if planned is None:
            return budget
        frames, seeks = planned
        return budget if frames >= LONG_RUN_FRAMES * max(1, seeks) else 1


def min_forward_skip(threads: int) -> int:
    """Frames a forward seek must skip to pay off on a decoder with ``threads`` threads.

    One thread: any frame (a seek in an indexed MP4 costs less than decoding one).
    Frame threads: a seek drains and refills the threads, so it must skip more.
    """
    return 1 if threads <= 1 else 2 * threads


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
        container = _open(self.source, self.what, packets_only=not probe_decode)
        try:
            stream = _video_stream(container, self.what)
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
        try:
            try:
                found = self._collect(wanted, size)
            except _OutOfOrder:
                if self._probed:
                    raise DecodeError(
                        f"{self.what}: the decoder presents frames out of order; the "
                        "video is damaged (re-run the export; if it persists, the "
                        "recording itself is damaged)"
                    ) from None
                log.info("%s: frames out of order without the probe; reopening", self.what)
                self._open(probe_decode=True)
                found = self._collect(wanted, size)
        except av.error.FFmpegError as exc:
            raise DecodeError(f"{self.what}: decoding failed ({_reason(exc)})") from exc
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
                found[target] = _rgb(self._reformatter, frame, size)
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


def _rgb(
    reformatter: VideoReformatter, frame: Any, size: tuple[int, int] | None
) -> npt.NDArray[np.uint8]:
    # One reformatter per stream: frame.to_ndarray(format=...) builds a converter per frame.
    width, height = size if size else (frame.width, frame.height)
    rgb = reformatter.reformat(
        frame, width=width, height=height, format="rgb24", interpolation=Interpolation.AREA
    )
    return np.asarray(rgb.to_ndarray(), dtype=np.uint8)


def _stream_params(stream: Any, what: str) -> tuple[Fraction, int, int]:
    if stream.time_base is None:
        raise DecodeError(f"{what}: the video stream has no time base")
    ctx = stream.codec_context
    base = Fraction(stream.time_base.numerator, stream.time_base.denominator)
    return base, int(ctx.width), int(ctx.height)


def stream_params(source: VideoSource, what: str = "video") -> tuple[Fraction, int, int]:
    """The video stream's time base, width and height, read from its headers."""
    try:
        with _open(source, what, packets_only=True) as container:
            return _stream_params(_video_stream(container, what), what)
    except av.error.FFmpegError as exc:
        raise DecodeError(f"{what}: the video cannot be read ({_reason(exc)})") from exc


def decode_frames(
    source: VideoSource,
    *,
    size: tuple[int, int] | None = None,
    keep: set[int] | None = None,
    threads: int = 0,
    what: str = "video",
) -> Iterator[tuple[int, npt.NDArray[np.uint8]]]:
    """Decode a whole video in presentation order as ``(pts, rgb_array)``, streaming.

    Memory stays flat: one frame at a time. Frames whose pts is not in ``keep`` are
    decoded (they are needed as references) but not converted to RGB.

    Args:
        source: a path or a seekable binary file object.
        size: ``(width, height)`` to resize to.
        keep: only yield these pts (``None``: every frame).
        threads: decoder threads; 0 lets FFmpeg choose (best for one video at a time),
            1 suits one decoder per core when recordings run in parallel.
        what: names the recording in error messages.
    """
    try:
        with _open(source, what) as container:
            stream = _video_stream(container, what)
            if threads == 1:
                stream.codec_context.thread_count = 1
            else:
                stream.thread_type = "AUTO"
                stream.codec_context.thread_count = threads
            reformatter = VideoReformatter()
            for frame in container.decode(stream):
                if frame.pts is None or (keep is not None and frame.pts not in keep):
                    continue
                yield int(frame.pts), _rgb(reformatter, frame, size)
    except av.error.FFmpegError as exc:
        raise DecodeError(f"{what}: decoding failed ({_reason(exc)})") from exc


def scan_windows(
    source: VideoSource,
    windows: Sequence[tuple[int, int]],
    visit: Callable[[int, int, npt.NDArray[np.uint8]], bool],
    *,
    size: tuple[int, int],
    what: str = "video",
) -> int:
    """Decode short stretches of a video at low resolution, stopping each when told.

    For each window ``(first_pts, last_pts)``, seeks to the key frame at or before
    ``first_pts`` and decodes forward; every frame with ``first_pts <= pts <=
    last_pts`` is converted to RGB at ``size`` and handed to ``visit(window, pts,
    rgb)`` in presentation order, until ``visit`` returns True (the window is decided)
    or the window ends. Frames before ``first_pts`` are decoded (they are references)
    but not converted. Quality control uses it to look for a visual response after each
    prompt without decoding the whole recording.

    Args:
        source: a path or a seekable binary file object.
        windows: pts ranges in the stream's time base, each ``first <= last``.
        visit: called per frame of a window; True stops that window.
        size: ``(width, height)`` of the pictures handed to ``visit``.
        what: names the recording in error messages.

    Returns:
        How many frames were decoded in all (the cost).

    Raises:
        DecodeError: the video cannot be read.
    """
    decoded = 0
    if not windows:
        return 0
    try:
        with _open(source, what) as container:
            stream = _video_stream(container, what)
            # One decoder per core when recordings run in parallel (design.md).
            stream.codec_context.thread_count = 1
            reformatter = VideoReformatter()
            for number, (first, last) in enumerate(windows):
                container.seek(first, stream=stream, backward=True, any_frame=False)
                for frame in container.decode(stream):
                    decoded += 1
                    if frame.pts is None or frame.pts < first:
                        continue
                    if frame.pts > last:
                        break
                    if visit(number, int(frame.pts), _rgb(reformatter, frame, size)):
                        break
    except av.error.FFmpegError as exc:
        raise DecodeError(f"{what}: decoding failed ({_reason(exc)})") from exc
    return decoded


def _h264_stream(
    out: Any, fps: int, width: int, height: int, time_base: Fraction, options: dict[str, str]
) -> Any:
    """An x264 yuv420p stream (preset veryfast plus ``options``) added to ``out``."""
    stream = out.add_stream("libx264", rate=fps)
    stream.width, stream.height = width, height
    stream.pix_fmt = "yuv420p"
    stream.time_base = time_base
    stream.codec_context.time_base = time_base
    # Frame threads, not slices: x264 otherwise slices every frame, unlike recordings.
    stream.thread_type = "FRAME"
    stream.options = {"preset": "veryfast", **options}
    return stream


def encode_video(
    target: VideoSource,
    frames: Iterable[tuple[npt.NDArray[np.uint8], int]],
    *,
    width: int,
    height: int,
    time_base: Fraction = Fraction(1, 90000),
    fps: int = 30,
    gop: int = 30,
    bframes: int = 2,
    faststart: bool = True,
    bitrate: int | None = None,
) -> None:
    """Encode RGB frames with explicit pts into an H.264 MP4 (demo and test videos).

    Args:
        target: a path or a writable binary file object.
        frames: ``(rgb_array, pts)`` pairs in presentation order; pts in ``time_base``
            units, strictly increasing, may start above zero and be irregular (VFR).
        width: frame width (even).
        height: frame height (even).
        time_base: the stream's time base.
        fps: nominal rate, used for rate control only.
        gop: key frame interval in frames.
        bframes: B-frames between references (decode order differs from presentation).
        faststart: put the MP4 index first, as streamed recordings usually have it.
        bitrate: target bits per second, or ``None`` for x264's quality default.
    """
    options = {"movflags": "+faststart"} if faststart else {}
    with av.open(
        target if not isinstance(target, Path) else str(target), "w", format="mp4", options=options
    ) as out:
        stream = _h264_stream(
            out, fps, width, height, time_base, {"bf": str(bframes), "g": str(gop)}
        )
        if bitrate:
            stream.bit_rate = bitrate
        for rgb, pts in frames:
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = pts
            frame.time_base = time_base
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def resample_video(
    source: VideoSource,
    target: str | Path,
    source_pts: npt.NDArray[np.int64],
    *,
    fps: int,
    size: tuple[int, int],
    gop: int = 2,
    crf: int = 23,
    on_sample: Callable[[int, npt.NDArray[np.uint8]], None] | None = None,
    sample_rows: Container[int] = (),
    sample_size: tuple[int, int] | None = None,
    what: str = "video",
) -> None:
    """Re-encode a video at a constant rate: output frame ``k`` shows ``source_pts[k]``.

    One decode pass, streaming: each source frame that some output frame shows is
    scaled once and encoded once per output frame showing it (a repeat when the source
    rate is below ``fps``; frames no output shows are decoded and dropped). The output is
    H.264 (yuv420p, no B-frames, a key frame every ``gop`` frames) in an MP4 whose frame
    ``k`` has pts ``k`` in time base ``1/fps``.

    Args:
        source: a path or a seekable binary file object.
        target: the MP4 to write.
        source_pts: per output frame, the pts of the source frame it shows
            (non-decreasing).
        fps: the output rate.
        size: ``(width, height)`` of the output (even).
        gop: key frame interval: short for random access by time.
        crf: x264's constant rate factor (quality; lower is better and bigger).
        on_sample: called with ``(k, rgb)`` for each output frame ``k`` in
            ``sample_rows`` (statistics of the picture).
        sample_rows: the output frames passed to ``on_sample``.
        sample_size: ``(width, height)`` of those pictures (default: the output size).
        what: names the recording in error messages.

    Raises:
        DecodeError: the video cannot be read, or does not present a wanted pts.
    """
    wanted = np.asarray(source_pts, dtype=np.int64)
    count = int(wanted.shape[0])
    width, height = size
    base = Fraction(1, fps)
    row = 0
    try:
        with (
            _open(source, what) as container,
            av.open(str(target), "w", format="mp4", options={"movflags": "+faststart"}) as out,
        ):
            stream = _video_stream(container, what)
            stream.thread_type = "AUTO"
            encoder = _h264_stream(
                out, fps, width, height, base, {"bf": "0", "g": str(gop), "crf": str(crf)}
            )
            reformatter = VideoReformatter()
            for frame in container.decode(stream):
                if row >= count:
                    break
                if frame.pts is None or frame.pts < wanted[row]:
                    continue
                if frame.pts > wanted[row]:
                    break  # the wanted frame was not presented: reported below
                shown = int(frame.pts)
                # At the source's own size and format the reformatter hands back the
                # decoded frame itself, so setting scaled.pts below changes frame.pts.
                scaled = reformatter.reformat(
                    frame,
                    width=width,
                    height=height,
                    format="yuv420p",
                    interpolation=Interpolation.AREA,
                )
                while row < count and wanted[row] == shown:
                    if on_sample is not None and row in sample_rows:
                        small_w, small_h = sample_size or size
                        rgb = reformatter.reformat(
                            scaled, width=small_w, height=small_h, format="rgb24"
                        ).to_ndarray()
                        on_sample(row, np.asarray(rgb, dtype=np.uint8))
                    scaled.pts = row
                    scaled.time_base = base
                    for packet in encoder.encode(scaled):
                        out.mux(packet)
                    row += 1
            if row < count:
                raise DecodeError(
                    f"{what}: no frame was presented at pts {int(wanted[row])}; the frames "
                    "table and the video disagree (re-export this recording or run "
                    "'odyssey-data verify')"
                )
            for packet in encoder.encode():
                out.mux(packet)
    except av.error.FFmpegError as exc:
        raise DecodeError(f"{what}: re-encoding failed ({_reason(exc)})") from exc


def iter_decoded(
    source: VideoSource, *, what: str = "video"
) -> Iterator[tuple[int, npt.NDArray[np.uint8]]]:
    """Decode every frame in presentation order as ``(pts, rgb_array)`` (tests, tools)."""
    try:
        with _open(source, what) as container:
            stream = _video_stream(container, what)
            stream.thread_type = "AUTO"
            for frame in container.decode(stream):
                if frame.pts is not None:
                    yield int(frame.pts), frame.to_ndarray(format="rgb24")
    except av.error.FFmpegError as exc:
        raise DecodeError(f"{what}: decoding failed ({exc})") from exc


def encode_jpeg(rgb: npt.NDArray[np.uint8]) -> bytes:
    """Encode one RGB frame (height x width x 3, even sizes) as a JPEG with FFmpeg's mjpeg.

    Used for the demo server's thumbnails: no Pillow needed.
    """
    height, width = int(rgb.shape[0]), int(rgb.shape[1])
    codec: Any = av.CodecContext.create("mjpeg", "w")
    codec.width, codec.height = width, height
    codec.pix_fmt = "yuvj420p"
    codec.time_base = Fraction(1, 25)
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuvj420p")
    frame.pts = 0
    packets = [*codec.encode(frame), *codec.encode(None)]
    return b"".join(bytes(packet) for packet in packets)


def media_problem(path: str, kind: str, what: str) -> str | None:
    """Why the file beside a video is not what it claims to be, or ``None`` when it is.

    ``kind`` ``"thumbnail"``: a JPEG whose one picture decodes; ``"preview"``: a video
    whose frames can be read (as :func:`probe_frames` reads them). An HTML error page,
    another file type or a damaged file served in its place is never stored as one.
    """
    try:
        with open(path, "rb") as handle:
            head = handle.read(3)
        if kind == "thumbnail":
            if head != b"\xff\xd8\xff":
                return f"{what} thumbnail: not a JPEG file; not stored"
            with _open(path, what) as container:
                stream = _video_stream(container, what)
                if stream.codec_context.name != "mjpeg":
                    return f"{what} thumbnail: not a JPEG picture; not stored"
                if next(iter(container.decode(stream)), None) is None:
                    return f"{what} thumbnail: the JPEG holds no picture; not stored"
            return None
        probe_frames(path, what=f"{what} preview", mode="demux")
    except DecodeError as exc:
        return f"{exc}; not stored"
    except (av.error.FFmpegError, OSError) as exc:
        return f"{what} {kind}: cannot be read ({_reason(exc)}); not stored"
    return None
