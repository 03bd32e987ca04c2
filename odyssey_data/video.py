"""The video boundary: frame timing and frame decoding with PyAV.

PyAV is imported here and by its two neighbours, :mod:`odyssey_data.video_reader`
(frames read back by pts) and :mod:`odyssey_data.video_encode` (videos written); PyAV
errors become :class:`~odyssey_data.errors.DecodeError` in these three.

Frame timing comes from demuxing, not decoding (tens of thousands of frames per second
instead of hundreds): packets whose ``pts`` is ``None`` or that the demuxer marks as
discard (edit lists) are dropped and the rest sorted by ``pts``, which equals the decoded
frames' presentation order on H.264 with B-frames. ``stream.index_entries`` holds decode
timestamps, so timing never comes from it (a ``VideoReader`` only aims its seeks with
it). Where the two could differ (a packet without pts; a
stream that does not start plainly, with a key frame shown first, and whose first
decoded frame then is not the first demuxed pts), :func:`probe_frames` falls back to
decoding the whole recording.

Frames are read back by pts through a :class:`~odyssey_data.video_reader.VideoReader`
(see :mod:`odyssey_data.video_reader`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Sequence
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
    "FrameTiming",
    "available_cores",
    "decode_frames",
    "iter_decoded",
    "media_problem",
    "probe_frames",
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
