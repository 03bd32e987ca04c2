"""Encoding H.264 MP4s and JPEGs: demo and test videos, LeRobot's resampled episodes.

:func:`encode_video` writes RGB frames with explicit pts (the demo server's recordings and
the tests' videos), :func:`resample_video` re-encodes a recording at a constant rate
(LeRobot conversion), :func:`encode_jpeg` makes the demo's thumbnails.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Iterable
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import numpy.typing as npt
from av.video.frame import PictureType
from av.video.reformatter import Interpolation, VideoReformatter

from odyssey_data.errors import DecodeError
from odyssey_data.video.container import VideoSource, open_video, video_stream
from odyssey_data.video.errors import translated

__all__ = ["encode_jpeg", "encode_video", "resample_video"]


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
    what: str = "video",
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
        what: names the video in error messages.

    Raises:
        DecodeError: FFmpeg cannot encode or write the video.
        StorageFullError: the disk written to is full.
    """
    options = {"movflags": "+faststart"} if faststart else {}
    target = target if not isinstance(target, Path) else str(target)
    with (
        translated(what, "encoding failed"),
        av.open(target, "w", format="mp4", options=options) as out,
    ):
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
        StorageFullError: the disk ``target`` is on is full.
    """
    wanted = np.asarray(source_pts, dtype=np.int64)
    count = int(wanted.shape[0])
    width, height = size
    base = Fraction(1, fps)
    row = 0
    with (
        translated(what, "re-encoding failed"),
        open_video(source, what) as container,
        av.open(str(target), "w", format="mp4", options={"movflags": "+faststart"}) as out,
    ):
        stream = video_stream(container, what)
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
                # A decoded frame keeps its picture type, which x264 obeys: the key frames
                # would fall at the source's key frames as well as every gop.
                scaled.pict_type = PictureType.NONE
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


def encode_jpeg(rgb: npt.NDArray[np.uint8], *, what: str = "picture") -> bytes:
    """Encode one RGB frame (height x width x 3, even sizes) as a JPEG with FFmpeg's mjpeg.

    Used for the demo server's thumbnails: no Pillow needed. ``what`` names the picture
    in the :class:`~odyssey_data.errors.DecodeError` raised when FFmpeg cannot encode it.
    """
    with translated(what, "JPEG encoding failed"):
        return _jpeg(rgb)


def _jpeg(rgb: npt.NDArray[np.uint8]) -> bytes:
    height, width = int(rgb.shape[0]), int(rgb.shape[1])
    codec: Any = av.CodecContext.create("mjpeg", "w")
    codec.width, codec.height = width, height
    codec.pix_fmt = "yuvj420p"
    codec.time_base = Fraction(1, 25)
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuvj420p")
    frame.pts = 0
    packets = [*codec.encode(frame), *codec.encode(None)]
    return b"".join(bytes(packet) for packet in packets)
