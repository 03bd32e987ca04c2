"""Checks of the files fetched beside a video: is a thumbnail a JPEG, a preview a video."""

from __future__ import annotations

from odyssey_data.errors import DecodeError
from odyssey_data.video.container import open_video, video_stream
from odyssey_data.video.errors import FFMPEG_ERRORS, translated
from odyssey_data.video.timing import probe_frames

__all__ = ["media_problem"]


def media_problem(path: str, kind: str, what: str) -> str | None:
    """Why the file beside a video is not what it claims to be, or ``None`` when it is.

    ``kind`` ``"thumbnail"``: a JPEG whose one picture decodes; ``"preview"``: a video
    whose frames can be read (as :func:`probe_frames` reads them). An HTML error page,
    another file type or a damaged file served in its place is never stored as one.
    """
    try:
        with translated(f"{what} {kind}", "cannot be read", catch=(*FFMPEG_ERRORS, OSError)):
            with open(path, "rb") as handle:
                head = handle.read(3)
            if kind == "thumbnail":
                return _thumbnail_problem(path, head, what)
            probe_frames(path, what=f"{what} preview", mode="demux")
    except DecodeError as exc:
        return f"{exc}; not stored"
    return None


def _thumbnail_problem(path: str, head: bytes, what: str) -> str | None:
    if head != b"\xff\xd8\xff":
        return f"{what} thumbnail: not a JPEG file; not stored"
    with open_video(path, what) as container:
        stream = video_stream(container, what)
        if stream.codec_context.name != "mjpeg":
            return f"{what} thumbnail: not a JPEG picture; not stored"
        if next(iter(container.decode(stream)), None) is None:
            return f"{what} thumbnail: the JPEG holds no picture; not stored"
    return None
