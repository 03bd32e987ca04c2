"""Decoding whole videos, or stretches of them, in presentation order (the export's side).

:func:`decode_frames` streams every frame (materialised images, quality control),
:func:`scan_windows` decodes short stretches after a seek (quality control's look for a
visual response), :func:`iter_decoded` is the plain reference decode (tests, tools).
Memory stays flat: one frame at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np
import numpy.typing as npt
from av.video.reformatter import VideoReformatter

from odyssey_data.video.container import VideoSource, open_video, to_rgb, video_stream
from odyssey_data.video.errors import translated

__all__ = ["decode_frames", "iter_decoded", "scan_windows"]


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
    with translated(what, "decoding failed"), open_video(source, what) as container:
        stream = video_stream(container, what)
        if threads == 1:
            stream.codec_context.thread_count = 1
        else:
            stream.thread_type = "AUTO"
            stream.codec_context.thread_count = threads
        reformatter = VideoReformatter()
        for frame in container.decode(stream):
            if frame.pts is None or (keep is not None and frame.pts not in keep):
                continue
            yield int(frame.pts), to_rgb(reformatter, frame, size)


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
    with translated(what, "decoding failed"), open_video(source, what) as container:
        stream = video_stream(container, what)
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
                if visit(number, int(frame.pts), to_rgb(reformatter, frame, size)):
                    break
    return decoded


def iter_decoded(
    source: VideoSource, *, what: str = "video"
) -> Iterator[tuple[int, npt.NDArray[np.uint8]]]:
    """Decode every frame in presentation order as ``(pts, rgb_array)`` (tests, tools)."""
    with translated(what, "decoding failed"), open_video(source, what) as container:
        stream = video_stream(container, what)
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            if frame.pts is not None:
                yield int(frame.pts), frame.to_ndarray(format="rgb24")
