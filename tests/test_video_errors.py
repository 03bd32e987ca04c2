"""PyAV's failures leave the video package through one translation (video/errors.py).

Damaged media are made with PyAV here (random bytes, a file cut short, an MP4 header in
front of garbage, frames overwritten in the middle); every entry point of
``odyssey_data.video`` must turn what FFmpeg raises on them into the package's error,
with a one-line message naming the recording, FFmpeg's reason and no file name.
"""

from __future__ import annotations

import errno
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import av.error
import numpy as np
import pytest
from bad_media import audio_only, mp4

import odyssey_data
from odyssey_data.errors import DecodeError, StorageFullError
from odyssey_data.video import (
    VideoReader,
    decode_frames,
    encode_jpeg,
    encode_video,
    iter_decoded,
    media_problem,
    probe_frames,
    read_frames,
    resample_video,
    scan_windows,
    stream_params,
)
from odyssey_data.video.errors import RETRY, reason, translated, video_error

WHAT = "recording 'rec-7' video"
INVALID = "Invalid data found when processing input"


def noise(size: int, seed: int) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8).tobytes()


def garbage() -> bytes:
    return noise(5000, 1)


def truncated() -> bytes:
    whole = mp4(faststart=False)  # the index at the end: cut, the file has none
    return whole[: len(whole) * 6 // 10]


def mp4_header_then_garbage() -> bytes:
    """The start of an MP4 (its ``ftyp`` box) in front of bytes that are no MP4."""
    return mp4()[:32] + noise(5000, 2)


def frames_overwritten() -> bytes:
    """A whole fast-start MP4 whose middle (frame data) is overwritten: it demuxes,
    and its index is whole, but the decoder meets invalid data."""
    data = bytearray(mp4())
    middle = len(data) // 2
    data[middle : middle + 2000] = noise(2000, 3)
    return bytes(data)


#: Damaged files that FFmpeg cannot even open.
UNOPENABLE = {
    "garbage": garbage,
    "truncated": truncated,
    "mp4-header-then-garbage": mp4_header_then_garbage,
}


@pytest.fixture
def good(tmp_path: Path) -> Path:
    path = tmp_path / "good.mp4"
    path.write_bytes(mp4())
    return path


def readers(tmp_path: Path, good: Path) -> dict[str, Callable[[Any], object]]:
    """Each entry point of the package, reading a whole video as ``WHAT``.

    The frames asked for are ``good``'s, the undamaged video the others derive from.
    """
    pts = [int(p) for p in probe_frames(good).pts]
    span = [(pts[0], pts[-1])]
    return {
        "probe_frames(demux)": lambda src: probe_frames(src, what=WHAT, mode="demux"),
        "probe_frames(decode)": lambda src: probe_frames(src, what=WHAT, mode="decode"),
        "stream_params": lambda src: stream_params(src, WHAT),
        "decode_frames": lambda src: list(decode_frames(src, threads=1, what=WHAT)),
        "iter_decoded": lambda src: list(iter_decoded(src, what=WHAT)),
        "scan_windows": lambda src: scan_windows(
            src, span, lambda *_: False, size=(32, 32), what=WHAT
        ),
        "read_frames": lambda src: read_frames(src, pts, threads=1, what=WHAT),
        "resample_video": lambda src: resample_video(
            src, tmp_path / "out.mp4", np.asarray(pts), fps=10, size=(64, 64), what=WHAT
        ),
    }


def assert_translated(exc: BaseException, tmp_path: Path, *fragments: str) -> None:
    message = str(exc)
    assert type(exc) is DecodeError
    assert message.startswith(f"{WHAT}: ")
    assert "\n" not in message
    assert str(tmp_path) not in message  # FFmpeg's text names the file: not kept
    assert "[Errno" not in message
    for fragment in fragments:
        assert fragment in message


@pytest.mark.parametrize("damage", sorted(UNOPENABLE))
@pytest.mark.parametrize(
    "entry",
    [
        "probe_frames(demux)",
        "probe_frames(decode)",
        "stream_params",
        "decode_frames",
        "iter_decoded",
        "scan_windows",
        "read_frames",
        "resample_video",
    ],
)
def test_a_file_ffmpeg_cannot_open_is_a_decode_error(
    damage: str, entry: str, tmp_path: Path, good: Path
) -> None:
    path = tmp_path / f"{damage}.mp4"
    path.write_bytes(UNOPENABLE[damage]())
    with pytest.raises(DecodeError) as caught:
        readers(tmp_path, good)[entry](path)
    assert_translated(
        caught.value,
        tmp_path,
        f"not a readable video file ({INVALID}); not a video, or cut short ({RETRY})",
    )
    assert isinstance(caught.value.__cause__, av.error.InvalidDataError)


@pytest.mark.parametrize(
    ("entry", "failed"),
    [
        ("probe_frames(decode)", "the video cannot be read"),
        ("decode_frames", "decoding failed"),
        ("iter_decoded", "decoding failed"),
        ("scan_windows", "decoding failed"),
        ("read_frames", "decoding failed"),
        ("resample_video", "re-encoding failed"),
    ],
)
def test_frames_that_do_not_decode_are_a_decode_error(
    entry: str, failed: str, tmp_path: Path, good: Path
) -> None:
    path = tmp_path / "overwritten.mp4"
    path.write_bytes(frames_overwritten())
    with pytest.raises(DecodeError) as caught:
        readers(tmp_path, good)[entry](path)
    assert_translated(caught.value, tmp_path, f"{failed} ({INVALID})")
    assert isinstance(caught.value.__cause__, av.error.FFmpegError)


def test_frames_that_do_not_decode_still_have_their_timing_demuxed(
    tmp_path: Path, good: Path
) -> None:
    # Demuxing reads no frame data: the damage shows only when decoding (above).
    path = tmp_path / "overwritten.mp4"
    path.write_bytes(frames_overwritten())
    assert probe_frames(path, mode="demux").pts.tolist() == probe_frames(good).pts.tolist()


def test_a_container_without_video_is_a_decode_error_on_every_entry(
    tmp_path: Path, good: Path
) -> None:
    path = tmp_path / "audio.mp4"
    path.write_bytes(audio_only())
    for read in readers(tmp_path, good).values():
        with pytest.raises(DecodeError) as caught:
            read(path)
        assert_translated(caught.value, tmp_path, "the file has no video stream")


def test_a_reader_of_a_file_object_reports_the_same(tmp_path: Path) -> None:
    with pytest.raises(DecodeError) as caught:
        VideoReader(io.BytesIO(garbage()), what=WHAT)
    assert_translated(caught.value, tmp_path, f"not a readable video file ({INVALID})")


def test_a_closed_file_object_is_a_decode_error(tmp_path: Path) -> None:
    handle = io.BytesIO(mp4())
    handle.close()
    with pytest.raises(DecodeError) as caught:
        probe_frames(handle, what=WHAT)
    assert_translated(caught.value, tmp_path, "not a readable video file (")
    assert isinstance(caught.value.__cause__, ValueError)


def test_a_missing_file_is_a_decode_error(tmp_path: Path) -> None:
    with pytest.raises(DecodeError) as caught:
        probe_frames(tmp_path / "gone.mp4", what=WHAT)
    assert_translated(caught.value, tmp_path, "not a readable video file (No such file")


@pytest.mark.parametrize("damage", sorted(UNOPENABLE))
def test_a_damaged_preview_is_reported_not_raised(damage: str, tmp_path: Path) -> None:
    path = tmp_path / "preview.mp4"
    path.write_bytes(UNOPENABLE[damage]())
    problem = media_problem(str(path), "preview", "rec-7")
    assert problem == (
        f"rec-7 preview: not a readable video file ({INVALID}); not a video, or cut short "
        f"({RETRY}); not stored"
    )


def test_a_damaged_thumbnail_is_reported_not_raised(tmp_path: Path) -> None:
    picture = encode_jpeg(np.full((32, 48, 3), 90, dtype=np.uint8))
    path = tmp_path / "thumbnail.jpg"
    path.write_bytes(picture[:3] + noise(len(picture), 4))  # a JPEG's magic, then garbage
    problem = media_problem(str(path), "thumbnail", "rec-7")
    assert problem == f"rec-7 thumbnail: cannot be read ({INVALID}); not stored"
    path.write_bytes(picture)
    assert media_problem(str(path), "thumbnail", "rec-7") is None


def test_a_full_disk_while_encoding_stops_the_run(tmp_path: Path) -> None:
    # /dev/full takes the header and refuses every write after with ENOSPC: no fault of
    # the recording, so a storage error (which stops a run) and not a failed recording.
    pictures = np.frombuffer(noise(30 * 64 * 64 * 3, 5), dtype=np.uint8).reshape(30, 64, 64, 3)
    frames = ((picture, i * 3000) for i, picture in enumerate(pictures))  # incompressible
    with pytest.raises(StorageFullError, match="no space left on the device") as caught:
        encode_video("/dev/full", frames, width=64, height=64, what=WHAT)
    assert str(caught.value).startswith(f"{WHAT}: encoding failed: ")
    assert "\n" not in str(caught.value)


# -- the mapping itself ------------------------------------------------------------------------


def test_the_reason_is_ffmpegs_without_the_file_name() -> None:
    exc = av.error.InvalidDataError(-1094995529, INVALID, "/tmp/secret-temp/video.mp4")
    assert reason(exc) == INVALID
    error = video_error(exc, WHAT, "decoding failed", "try again")
    assert isinstance(error, DecodeError)
    assert str(error) == f"{WHAT}: decoding failed ({INVALID}); try again"


def test_a_reason_without_strerror_is_the_first_line_of_the_message() -> None:
    assert reason(ValueError("seek of closed file\nand a traceback")) == "seek of closed file"
    assert reason(ValueError("")) == "ValueError"
    assert reason(RuntimeError("x" * 500)) == "x" * 199 + "…"
    assert reason(ValueError("bad \x1b[2J input")) == "bad \\x1b[2J input"


def test_no_space_left_is_a_storage_error_naming_the_file() -> None:
    exc = av.error.OSError(errno.ENOSPC, "No space left on device", "/data/out/episode.mp4")
    error = video_error(exc, WHAT, "re-encoding failed")
    assert isinstance(error, StorageFullError)
    assert str(error) == (
        f"{WHAT}: re-encoding failed: no space left on the device holding "
        "/data/out/episode.mp4 (free some space, then run again)"
    )
    quota = video_error(OSError(errno.EDQUOT, "Disk quota exceeded"), WHAT, "encoding failed")
    assert isinstance(quota, StorageFullError)
    other = video_error(OSError(errno.EIO, "Input/output error"), WHAT, "decoding failed")
    assert type(other) is DecodeError


def test_translated_passes_the_packages_own_errors_and_others_through() -> None:
    own = DecodeError("rec: the file has no video stream")
    with pytest.raises(DecodeError) as caught, translated(WHAT, "decoding failed"):
        raise own
    assert caught.value is own
    with pytest.raises(KeyError), translated(WHAT, "decoding failed"):
        raise KeyError("a bug, not a damaged video")
    with pytest.raises(DecodeError, match=f"^{WHAT}: decoding failed \\(End of file\\)$"):
        with translated(WHAT, "decoding failed"):
            raise av.error.EOFError(-541478725, "End of file")
    with translated(WHAT, "decoding failed"):
        pass  # nothing raised: nothing to translate


def test_pyav_errors_are_caught_only_in_the_translation_module() -> None:
    """Every other module of the package goes through video/errors.py."""
    package = Path(odyssey_data.__file__).parent / "video"
    named = sorted(
        path.name
        for path in package.glob("*.py")
        if "av.error" in path.read_text() and path.name != "errors.py"
    )
    assert named == []
    assert "av.error" in (package / "errors.py").read_text()  # the check can fail
