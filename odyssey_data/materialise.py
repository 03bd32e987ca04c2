"""Materialised frames: the ``image`` column, encoded from the decoded video.

Two ways to the same images: :func:`encode_as_it_arrives` decodes the video while it
downloads (a file of pts and image), :func:`materialise` adds the column to the rows,
taking the images from that file when they match the rows, else decoding the whole
video once. Rows are finished in batches of :data:`IMAGE_BATCH` and, with a spill
folder, written to an Arrow IPC file as they are made, so memory stays flat.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING, Any, cast

import numpy as np
import pyarrow as pa

from odyssey_data.align import TickSelector
from odyssey_data.errors import DecodeError, OdysseyDataError
from odyssey_data.growing import GrowingReader, Growth, StartedOver
from odyssey_data.images import image_encoder, target_size
from odyssey_data.schema import IMAGE_FIELD
from odyssey_data.task import RecordingTask, SpilledFrames
from odyssey_data.video import FrameTiming, decode_frames, stream_params, ticks_to_seconds

if TYPE_CHECKING:
    from odyssey_data.options import FrameOptions

__all__ = ["IMAGE_BATCH", "encode_as_it_arrives", "materialise"]

log = logging.getLogger(__name__)


def encode_as_it_arrives(task: RecordingTask, folder: str, growth: Growth) -> str | None:
    """Decode the growing video, encode the frames kept; the file of (pts, image) or None.

    Every frame is kept, or with ``fps`` the ones :class:`TickSelector` picks as their
    times arrive (the rows pick the same from the whole video; materialise checks).
    """
    options = task.frame_options
    what = f"recording {task.info.stream_id!r}"
    growth.started.wait()
    if growth.failed or (growth.finished and not growth.written):
        return None  # no video to read (the fetch failed or never got to it)
    video = os.path.join(folder, "video.mp4")
    encode = image_encoder(options.mode, options.quality)
    path = os.path.join(folder, "images.arrow")
    schema = pa.schema([pa.field("pts", pa.int64()), IMAGE_FIELD])
    pts: list[int] = []
    images: list[bytes] = []
    try:
        with GrowingReader(video, growth) as head:
            time_base, width, height = stream_params(cast("IO[bytes]", head), what)
        with GrowingReader(video, growth) as reader, pa.ipc.new_file(path, schema) as sink:

            def emit(frame_pts: int, rgb: np.ndarray) -> None:
                pts.append(frame_pts)
                images.append(encode(rgb))
                if len(images) == IMAGE_BATCH:
                    flush()

            def flush() -> None:
                sink.write_batch(pa.record_batch([pa.array(pts, pa.int64()), images], schema))
                pts.clear()
                images.clear()

            selector = TickSelector(options.fps) if options.fps is not None else None
            held: tuple[int, np.ndarray] | None = None  # the last frame, maybe kept later
            first: int | None = None
            position = 0
            frames = decode_frames(
                cast("IO[bytes]", reader),
                size=target_size(options.resize, width, height),
                threads=1,
                what=what,
            )
            for frame_pts, rgb in frames:
                if selector is None:
                    emit(frame_pts, rgb)
                    continue
                first = frame_pts if first is None else first
                # Computed as the rows' times are (FrameTiming.timestamps_s).
                time_s = ticks_to_seconds(float(frame_pts - first), time_base)
                for kept in selector.feed(time_s):
                    if kept < position:
                        assert held is not None
                        emit(*held)
                    else:
                        emit(frame_pts, rgb)
                held, position = (frame_pts, rgb), position + 1
            if selector is not None and held is not None and selector.finish():
                emit(*held)
            if images:
                flush()
    except (StartedOver, OdysseyDataError, OSError) as exc:
        log.info("%s: decoding while downloading stopped (%s); decoding the whole file", what, exc)
        with contextlib.suppress(OSError):
            os.unlink(path)
        return None
    return path


def materialise(
    frames: pa.Table,
    timing: FrameTiming,
    video_file: str,
    options: FrameOptions,
    what: str,
    spill_dir: str | None = None,
    encoded: str | None = None,
) -> tuple[pa.Table, SpilledFrames | None]:
    """Add the ``image`` column: decode the video once, encode the kept frames.

    With ``encoded`` (a file of pts and image made while the video downloaded) the
    images come from there instead, checked pts by pts against the rows.

    Frames stream through one at a time and rows are finished in batches of
    ``IMAGE_BATCH``. With ``spill_dir`` each batch goes to an Arrow IPC file there as it
    is made, so memory stays flat however long the recording (the result then carries
    the file, not the table); without it the batches are kept and returned as a table.
    """
    encode = image_encoder(options.mode, options.quality)
    size = target_size(options.resize, timing.width, timing.height)
    keep = frames.column("pts").to_numpy()
    n = frames.num_rows
    wanted = set(int(p) for p in keep)
    if encoded is not None and not np.array_equal(_encoded_pts(encoded), keep):
        # Made from the growing file, they are not the frames the rows want (a stream
        # whose first decoded frame is not its first packet, say): decode the file.
        log.info("%s: the images made while downloading do not match; decoding again", what)
        encoded = None
    kept: list[pa.Table] = []
    sink: Any = None
    path = None
    if spill_dir is not None:
        fd, path = tempfile.mkstemp(suffix=".arrow", dir=spill_dir)
        os.close(fd)
    images: list[bytes] = []
    done = 0

    def finish() -> None:
        nonlocal sink, done, images
        count = len(images)
        # width/height stay the decoded frame's size (what a reference decodes to); the
        # image's own size gets columns of its own.
        part = (
            frames.slice(done, count)
            .append_column(IMAGE_FIELD, pa.array(images, pa.binary()))
            .append_column("image_width", pa.array(np.full(count, size[0], dtype=np.int32)))
            .append_column("image_height", pa.array(np.full(count, size[1], dtype=np.int32)))
        )
        if path is not None:
            if sink is None:
                sink = pa.ipc.new_file(path, part.schema)
            sink.write_table(part)
        else:
            kept.append(part)
        done += count
        images = []

    try:
        # Recordings run one per core in parallel, so each decoder keeps to one thread.
        # Frames come in presentation order, as the rows are (sorted by pts).
        made = (
            _encoded_images(encoded, wanted)
            if encoded is not None
            else (
                (pts, encode(rgb))
                for pts, rgb in decode_frames(
                    video_file, size=size, keep=wanted, threads=1, what=what
                )
            )
        )
        for pts, image in made:
            if done + len(images) >= n or pts != keep[done + len(images)]:
                break
            images.append(image)
            if len(images) == IMAGE_BATCH:
                finish()
        missing = n - done - len(images)
        if missing:
            raise DecodeError(f"{what}: {missing} frames could not be decoded for their images")
        if images or not done:
            finish()
        if sink is not None:
            sink.close()
            sink = None
    except BaseException:
        if sink is not None:
            sink.close()
        if path is not None:
            os.unlink(path)
        raise
    if path is not None:
        return frames.slice(0, 0), SpilledFrames(path, n, os.path.getsize(path))
    return pa.concat_tables(kept), None


def _encoded_pts(path: str) -> np.ndarray:
    """The pts column of a file made by :func:`_stream` (memory-mapped: the images'
    pages are never touched)."""
    with pa.memory_map(path, "r") as source:
        reader = pa.ipc.open_file(source)
        parts = [reader.get_batch(i).column(0).to_numpy() for i in range(reader.num_record_batches)]
        # Copied out before the map closes.
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def _encoded_images(path: str, wanted: set[int]) -> Iterator[tuple[int, bytes]]:
    """(pts, image) of the wanted frames from a file made by :func:`_stream`."""
    with pa.OSFile(path, "rb") as source:
        reader = pa.ipc.open_file(source)
        for i in range(reader.num_record_batches):
            batch = reader.get_batch(i)
            for pts, image in zip(
                batch.column(0).to_pylist(), batch.column(1).to_pylist(), strict=True
            ):
                if pts in wanted:
                    yield pts, image


#: Materialised rows finished (and spilled) at a time.
IMAGE_BATCH = 256
