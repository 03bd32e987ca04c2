"""Opening a video: the container, its video stream, its header parameters, RGB pictures.

Every other module of :mod:`odyssey_data.video` opens a video through :func:`open_video`
and picks the recording's stream with :func:`video_stream`, so which stream counts as
the recording and how a file that is no video is reported are decided here once.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import IO, Any

import av
import numpy as np
import numpy.typing as npt
from av.video.reformatter import Interpolation, VideoReformatter

from odyssey_data.errors import DecodeError
from odyssey_data.video.errors import OPEN_ERRORS, RETRY, translated

__all__ = [
    "VideoSource",
    "header_params",
    "open_video",
    "stream_params",
    "to_rgb",
    "video_stream",
]

#: A video to read: a path or a seekable binary file object.
VideoSource = str | Path | IO[bytes]

#: Options of a container whose probe need not decode a frame: FFmpeg then skips decoding
#: one while it probes the streams (~10 ms of CPU per full-size recording; the parameters
#: read come from the container and codec headers). The stream's own decoder is made
#: afresh from those parameters, so frames decoded later are the same.
_NO_PROBE_DECODE = {"skip_frame": "all"}

_UNREADABLE = f"not a video, or cut short ({RETRY})"


def open_video(source: VideoSource, what: str, *, packets_only: bool = False) -> Any:
    """Open ``source`` for reading; ``packets_only`` skips FFmpeg's probe decode.

    Meant for reading packets and stream parameters; a
    :class:`~odyssey_data.video.reader.VideoReader` also opens this way, as its decoder
    is made from the parameters and not from the probe's.
    """
    with translated(what, "not a readable video file", _UNREADABLE, catch=OPEN_ERRORS):
        # PyAV's stubs type stream_options as list[str]; it takes one dict per stream.
        return av.open(  # type: ignore[call-overload]
            source if not isinstance(source, Path) else str(source),
            "r",
            stream_options=[_NO_PROBE_DECODE] if packets_only else None,
        )


def video_stream(container: Any, what: str) -> Any:
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


def to_rgb(
    reformatter: VideoReformatter, frame: Any, size: tuple[int, int] | None
) -> npt.NDArray[np.uint8]:
    """A decoded frame as an ``H×W×3`` uint8 RGB array, resized to ``size`` if given."""
    # One reformatter per stream: frame.to_ndarray(format=...) builds a converter per frame.
    width, height = size if size else (frame.width, frame.height)
    rgb = reformatter.reformat(
        frame, width=width, height=height, format="rgb24", interpolation=Interpolation.AREA
    )
    return np.asarray(rgb.to_ndarray(), dtype=np.uint8)


def header_params(stream: Any, what: str) -> tuple[Fraction, int, int]:
    """An open stream's time base, width and height (from its headers)."""
    if stream.time_base is None:
        raise DecodeError(f"{what}: the video stream has no time base")
    ctx = stream.codec_context
    base = Fraction(stream.time_base.numerator, stream.time_base.denominator)
    return base, int(ctx.width), int(ctx.height)


def stream_params(source: VideoSource, what: str = "video") -> tuple[Fraction, int, int]:
    """The video stream's time base, width and height, read from its headers."""
    with (
        translated(what, "the video cannot be read"),
        open_video(source, what, packets_only=True) as container,
    ):
        return header_params(video_stream(container, what), what)
