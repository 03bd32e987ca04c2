"""PyAV's exceptions, translated in one place.

Every FFmpeg failure met in :mod:`odyssey_data.video` (a file that is no video, a stream
that stops decoding, an encoder or muxer that cannot write) leaves the package through
:func:`video_error`, usually by way of ``with translated(what, failed):``. The result is
one of :mod:`odyssey_data.errors`' classes with a one-line message: the recording (or
file) named by ``what``, what failed, FFmpeg's reason without the file's name (here a
temp file the reader cannot do anything with), and what to do::

    rec-1 video: decoding failed (Invalid data found when processing input)

A disk that fills up while a video is written is no fault of the recording: it becomes a
:class:`~odyssey_data.errors.StorageFullError`, which stops a run instead of failing one
recording after another. Everything else is a :class:`~odyssey_data.errors.DecodeError`.
"""

from __future__ import annotations

import errno
from types import TracebackType

import av.error

from odyssey_data.errors import DecodeError, OdysseyDataError, StorageFullError, printable

__all__ = [
    "FFMPEG_ERRORS",
    "OPEN_ERRORS",
    "RETRY",
    "reason",
    "translated",
    "video_error",
]

#: What PyAV raises when FFmpeg fails to demux, decode, encode or mux.
FFMPEG_ERRORS: tuple[type[BaseException], ...] = (av.error.FFmpegError,)

#: What opening a video raises besides: a path the system cannot open (``OSError``), a
#: file object PyAV cannot use (``ValueError``, e.g. a closed one).
OPEN_ERRORS: tuple[type[BaseException], ...] = (av.error.FFmpegError, OSError, ValueError)

#: What to do about a video that is damaged or cut short.
RETRY = "re-run the export; if it persists, the recording itself is damaged"

#: Error numbers of a disk (or quota) with no space left.
_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})

#: The longest reason quoted from an exception.
_REASON_CHARS = 200


def reason(exc: BaseException) -> str:
    """FFmpeg's (or the system's) reason for ``exc`` on one line, without a file name.

    ``strerror`` when the exception has one (every FFmpeg and OS error: "Invalid data
    found when processing input"), else the first line of its message, else its class.
    """
    strerror = getattr(exc, "strerror", None)
    if strerror:
        text = str(strerror)
    else:
        lines = str(exc).strip().splitlines()
        text = lines[0].strip() if lines else ""
    text = text or type(exc).__name__
    if len(text) > _REASON_CHARS:
        text = text[: _REASON_CHARS - 1] + "…"
    return printable(text)


def video_error(
    exc: BaseException, what: str, failed: str, advice: str = ""
) -> DecodeError | StorageFullError:
    """The package's error for ``exc``, raised while doing something to a video.

    Args:
        exc: what PyAV (or the system) raised.
        what: names the recording or file, e.g. ``"recording 'abc' video"``.
        failed: what failed, e.g. ``"decoding failed"``.
        advice: what to do, appended after ``"; "``.

    Returns:
        A :class:`~odyssey_data.errors.StorageFullError` when the disk being written to
        is full, else a :class:`~odyssey_data.errors.DecodeError`.
    """
    if getattr(exc, "errno", None) in _FULL:
        filename = getattr(exc, "filename", None)
        where = f" holding {printable(str(filename))}" if filename else ""
        return StorageFullError(
            f"{what}: {failed}: no space left on the device{where} "
            "(free some space, then run again)"
        )
    message = f"{what}: {failed} ({reason(exc)})"
    return DecodeError(f"{message}; {advice}" if advice else message)


class translated:  # lower case: used as a statement, ``with translated(...):``
    """A context in which FFmpeg's failures become :func:`video_error`'s errors.

    ``with translated(what, "decoding failed"):`` raises
    ``video_error(exc, what, "decoding failed")`` from any exception in ``catch``
    (default :data:`FFMPEG_ERRORS`); the package's own errors pass through unchanged.

    Args:
        what: names the recording or file.
        failed: what failed.
        advice: what to do.
        catch: the exceptions translated.
    """

    __slots__ = ("advice", "catch", "failed", "what")

    def __init__(
        self,
        what: str,
        failed: str,
        advice: str = "",
        catch: tuple[type[BaseException], ...] = FFMPEG_ERRORS,
    ) -> None:
        self.what, self.failed, self.advice, self.catch = what, failed, advice, catch

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if (
            exc is not None
            and isinstance(exc, self.catch)
            and not isinstance(exc, OdysseyDataError)
        ):
            raise video_error(exc, self.what, self.failed, self.advice) from exc
