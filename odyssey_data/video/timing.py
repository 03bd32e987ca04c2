"""Frame timing: the presentation timestamp of every frame, read by demuxing.

Frame timing comes from demuxing, not decoding (tens of thousands of frames per second
instead of hundreds): packets whose ``pts`` is ``None`` or that the demuxer marks as
discard (edit lists) are dropped and the rest sorted by ``pts``, which equals the decoded
frames' presentation order on H.264 with B-frames. ``stream.index_entries`` holds decode
timestamps, so timing never comes from it (a
:class:`~odyssey_data.video.reader.VideoReader` only aims its seeks with it). Where the
two could differ (a packet without pts; a stream that does not start plainly, with a key
frame shown first, and whose first decoded frame then is not the first demuxed pts),
:func:`probe_frames` falls back to decoding the whole recording.

The same pass checks that the file is whole (:func:`_check_complete`) and that its
decode timestamps run forward (:func:`_check_order`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from odyssey_data.errors import DecodeError
from odyssey_data.video.container import (
    VideoSource,
    header_params,
    open_video,
    video_stream,
)
from odyssey_data.video.errors import FFMPEG_ERRORS, RETRY, translated

__all__ = ["FrameTiming", "ProbeMode", "probe_frames", "ticks_to_seconds"]

log = logging.getLogger(__name__)

#: How :func:`probe_frames` reads the timing (see there).
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
        except FFMPEG_ERRORS:
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
            f"recording was cut short ({RETRY})"
        )


def _first_decoded_pts(source: VideoSource, what: str) -> int | None:
    if not isinstance(source, str | Path):
        source.seek(0)
    with open_video(source, what) as container:
        stream = video_stream(container, what)
        for frame in container.decode(stream):
            return None if frame.pts is None else int(frame.pts)
    return None


def probe_frames(
    source: VideoSource, *, what: str = "video", mode: ProbeMode = "auto"
) -> FrameTiming:
    """Read the presentation timing of every frame of the video stream (the only one,
    or the default track: see :func:`~odyssey_data.video.container.video_stream`).

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
    with translated(what, "the video cannot be read", f"it may be damaged ({RETRY})"):
        with open_video(source, what, packets_only=mode != "decode") as container:
            stream = video_stream(container, what)
            time_base, width, height = header_params(stream, what)
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
            with open_video(source, what) as container:
                ctx = video_stream(container, what).codec_context
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
            with open_video(source, what) as container:
                pts, keys, _ = _decode_timing(container, video_stream(container, what))
            method = "decode"
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
