"""The unit of work: one recording, fetched, timed, parsed, aligned, tabled, stored.

:func:`process_recording` is the function every executor runs. Its steps, in order:

1. fetch (:mod:`odyssey_data.fetch`): video, events log and media to a temp folder;
2. timing: frame pts with PyAV (:func:`~odyssey_data.video.probe_frames`);
3. events: the events log parsed (:func:`~odyssey_data.events.parse_events`), and a
   simulation job's script, which is the ground truth when there is one;
4. align, and the tables: pure, in :mod:`odyssey_data.tables` (no file, no network);
5. quality control (:mod:`odyssey_data.measure`) and its gate, before anything is
   stored, so a recording the gate fails leaves nothing;
6. images, when materialised (:mod:`odyssey_data.materialise`);
7. store: the video (moved into place on a local dataset) and media into the dataset.

It never raises for bad data in one recording; it returns a failed result with the
reason. Only the dataset's storage failing (:data:`~odyssey_data.task.STOPS_THE_RUN`)
goes up and stops the run.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from collections.abc import Mapping
from dataclasses import replace

import pyarrow as pa

from odyssey_data.align import build_segments
from odyssey_data.errors import OdysseyDataError, printable
from odyssey_data.events import parse_events
from odyssey_data.fetch import fetching
from odyssey_data.growing import Growth
from odyssey_data.materialise import encode_as_it_arrives, materialise
from odyssey_data.measure import check, measure
from odyssey_data.models import Recording, ScriptEntry
from odyssey_data.progress import LIVE
from odyssey_data.schema import EVENTS_SCHEMA
from odyssey_data.storage import FileEntry, safe_name
from odyssey_data.tables import (
    align_recording,
    check_frame_count,
    recording_table,
    select_frames,
    stretched_warning,
)
from odyssey_data.task import (
    STOPS_THE_RUN,
    Fetched,
    RecordingResult,
    RecordingStats,
    RecordingTask,
)
from odyssey_data.video import media_problem, probe_frames

__all__ = ["fetch_ahead", "lost", "process_recording", "release_fetched", "unexpected"]

log = logging.getLogger(__name__)


def process_recording(task: RecordingTask) -> RecordingResult:
    """Export one recording: fetch, probe, parse, align, copy the video.

    Never raises for anything in this recording's answer, files or events: the result
    then has ``status="failed"`` and the reason. Bad data the package knows to check
    fails with its own message; anything else that goes wrong in this one recording
    (a case no check foresaw) fails it too, named by its exception, with the traceback
    in the debug log: one bad recording never stops the others. Either way ``stats``
    (a :class:`~odyssey_data.task.RecordingStats`) counts the download ``attempts``,
    the ``retries`` (repeated downloads and API calls) and the ``url_refreshes``
    (expired presigned URLs replaced) once the files were fetched.

    A task whose files the driver already fetched (``task.prefetched``, the local
    executor's download-ahead) skips the fetch; its folder is removed here either way.
    """
    try:
        return _process(task)
    except STOPS_THE_RUN:
        raise  # the dataset's storage (full, refused, gone): no recording can be written
    except Exception as exc:  # the last line of "one bad recording stays one failure"
        return unexpected(task, exc)


def lost(task: RecordingTask, reason: str) -> RecordingResult:
    """The failed result of a recording whose worker process died running it alone."""
    return RecordingResult(
        task.info.stream_id, "failed", f"recording {task.info.stream_id!r}: {reason}"
    )


def unexpected(task: RecordingTask, exc: Exception) -> RecordingResult:
    """The failed result of a recording whose export raised what no check foresaw."""
    log.debug("recording %r failed unexpectedly", task.info.stream_id, exc_info=True)
    reason = (
        f"recording {task.info.stream_id!r}: unexpected {type(exc).__name__} while "
        f"exporting it ({printable(str(exc))[:200]}); the others are not affected "
        "(run with --debug for the traceback, and please report it)"
    )
    return RecordingResult(task.info.stream_id, "failed", reason)


def fetch_ahead(task: RecordingTask) -> RecordingTask:
    """``task`` with its files fetched (``prefetched``): the first half of the unit of work.

    Run by the local executor's download-ahead threads (see
    :meth:`~odyssey_data.executors.LocalExecutor.ahead`); :func:`process_recording`
    then does the rest, and removes the folder. Fails the recording alone, as
    :func:`process_recording` does, for anything but the dataset's storage failing.
    """
    folder = task.store.make_scratch_folder()
    try:
        fetched = fetching(task, folder)
    except STOPS_THE_RUN:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    except Exception as exc:  # as in process_recording: this recording fails alone
        fetched = Fetched(folder, result=unexpected(task, exc))
    return replace(task, prefetched=fetched)


def release_fetched(task: RecordingTask) -> None:
    """Remove the folder of a task fetched ahead (whether it was processed or not)."""
    if task.prefetched is not None:
        shutil.rmtree(task.prefetched.folder, ignore_errors=True)


def _process(task: RecordingTask) -> RecordingResult:
    if task.prefetched is not None:
        try:
            return _finish(task, task.prefetched)
        finally:
            shutil.rmtree(task.prefetched.folder, ignore_errors=True)
    # Removed on every path, success or failure (the with block). On a local dataset
    # it lives on the dataset's disk, so the video is moved into place rather than
    # copied; an interrupted run's folder is a leftover (.tmp-).
    with task.store.scratch_folder() as tmp:
        if task.frame_options.streams():
            return _stream(task, tmp)
        return _finish(task, fetching(task, tmp))


def _stream(task: RecordingTask, folder: str) -> RecordingResult:
    """Fetch in a thread while this one decodes and encodes the frames as they arrive.

    The images are kept by pts in a file; once the download is whole, the usual steps
    (probe, align, checks) build the rows and take their images from that file. When
    decoding the growing file fails (the download started over or failed, a decoder
    error) the images come from the finished file instead, as without streaming.
    """
    growth = Growth()
    box: dict[str, Fetched] = {}

    def download() -> None:
        try:
            box["fetched"] = fetching(task, folder, video_growth=growth)
        except Exception:
            if not growth.abandoned:
                raise
        finally:
            growth.finish()

    thread = threading.Thread(target=download, name="odyssey-stream-fetch", daemon=True)
    thread.start()
    try:
        encoded = encode_as_it_arrives(task, folder, growth)
    except Exception:
        thread.join()
        raise
    except BaseException:
        # Interrupted (Ctrl-C): not waiting for the download (a daemon thread); it
        # stops at its next write, quietly.
        growth.abandon()
        raise
    thread.join()
    if "fetched" not in box:  # the fetch thread died of a programming error
        raise RuntimeError(f"recording {task.info.stream_id!r}: the download thread failed")
    result = _finish(task, box["fetched"], encoded=encoded)
    result.streamed = encoded is not None
    return result


def _finish(task: RecordingTask, fetched: Fetched, encoded: str | None = None) -> RecordingResult:
    """:func:`_finish_fetched`, counted as ``processing`` by the live progress."""
    with LIVE.phase("processing"):
        return _finish_fetched(task, fetched, encoded)


def _finish_fetched(
    task: RecordingTask, fetched: Fetched, encoded: str | None = None
) -> RecordingResult:
    """The unit of work after :func:`fetch`: build the result from the fetched files.

    ``encoded``: the frames' images already made while the video downloaded (a file
    of pts and image, see :func:`_stream`).
    """
    started = time.perf_counter()
    result = fetched.result
    built = RecordingStats()
    if result is None:
        assert fetched.recording is not None
        try:
            result = _build(
                task,
                fetched.recording,
                os.path.join(fetched.folder, "video.mp4"),
                fetched.events_file,
                fetched.script,
                fetched.media,
                video_sha256=fetched.video_sha256,
                encoded=encoded,
            )
            built = RecordingStats(video_bytes=fetched.video_bytes, download_s=fetched.download_s)
        except STOPS_THE_RUN:
            raise  # writing the dataset failed: not this recording's fault, the run stops
        except OdysseyDataError as exc:
            result = RecordingResult(task.info.stream_id, "failed", str(exc))
    total_s = round(fetched.download_s + time.perf_counter() - started, 4)
    result.stats = result.stats + built + fetched.stats + RecordingStats(total_s=total_s)
    return result


def _build(
    task: RecordingTask,
    recording: Recording,
    video_file: str,
    events_file: str | None,
    script: tuple[ScriptEntry, ...] | None = None,
    media: Mapping[str, tuple[str, str | None]] | None = None,
    *,
    video_sha256: str | None = None,
    encoded: str | None = None,
) -> RecordingResult:
    """Timing, events, align, tables, quality control; then store the video and media.

    ``video_file`` and the media files are consumed (moved into place on a local
    dataset); ``video_sha256`` and each media file's hash, when known from the
    download, spare reading them again.
    """
    info = task.info
    sid = info.stream_id
    what = f"recording {sid!r}"
    timing = probe_frames(video_file, what=what, mode=task.shape.probe)
    more_frames = check_frame_count(timing.frame_count, recording.frame_count, what, sid)
    events, bad_lines, warnings = _logged_events(task, events_file, script is not None)
    video_rel = f"videos/{safe_name(sid)}.mp4"
    aligned = align_recording(
        sid, timing, events, video_path=video_rel, script=script, logged=events_file is not None
    )
    api_duration = (
        info.duration_seconds if info.duration_seconds is not None else recording.duration_seconds
    )
    # Before the video goes into the dataset: a recording the gate fails leaves nothing.
    qc = measure(
        task.qc,
        stream_id=sid,
        video_file=video_file,
        timing=timing,
        timestamps_s=aligned.timestamps_s,
        timeline=aligned.timeline,
        events=aligned.events,
        video_duration_s=aligned.video_end_s,
        api_duration_s=api_duration,
        prompt_lags_s=aligned.lags,
        what=what,
    )
    check(task.qc, qc, what, sid)
    warnings = (*warnings, *more_frames)
    options = task.frame_options
    stretched = stretched_warning(options, timing.width, timing.height)
    if stretched is not None:
        warnings = (*warnings, f"{what}: {stretched}")
    frames = select_frames(aligned, options.fps)
    spilled = None
    if options.materialised:
        frames, spilled = materialise(
            frames, timing, video_file, options, what, task.spill_dir, encoded
        )
    segments = build_segments(
        sid,
        aligned.timestamps_s,
        aligned.timeline,
        aligned.video_end_s,
        aligned.lags,
        qc.latencies,
    )

    video = task.store.put_file(video_rel, video_file, kind="video", sha256=video_sha256)
    extra_files: list[FileEntry] = []
    for name, (local, digest) in (media or {}).items():
        # Checked to be what it claims (an error page is not a thumbnail).
        problem = media_problem(local, name.partition(".")[0], what)
        if problem is not None:
            warnings = (*warnings, problem)
            continue
        extra_files.append(
            task.store.put_file(
                f"videos/{safe_name(sid)}.{name}",
                local,
                kind=name.partition(".")[0],
                sha256=digest,
            )
        )
    return RecordingResult(
        stream_id=sid,
        status="exported",
        frames=None if spilled is not None else frames,
        spilled=spilled,
        events=aligned.events,
        segments=segments,
        recording=recording_table(
            info,
            timing,
            aligned,
            video=video,
            api_duration_s=api_duration,
            bad_event_lines=bad_lines,
            extra_files=tuple(extra_files),
            options_json=task.options_json,
        ),
        qc=qc.table(),
        video=video,
        extra_files=tuple(extra_files),
        stats=RecordingStats(
            exported=1, bad_event_lines=bad_lines, qc_decoded_frames=qc.decoded_frames
        ),
        warnings=warnings,
        probe=timing.method,
        stretched=stretched,
    )


def _logged_events(
    task: RecordingTask, events_file: str | None, scripted: bool
) -> tuple[pa.Table, int, tuple[str, ...]]:
    """The events log's rows, its bad lines and warnings (read from ``events_file``)."""
    sid = task.info.stream_id
    what = f"recording {sid!r}"
    if events_file is None:
        # A job's script stands in for a missing log; a stream without one has no prompts.
        no_log = () if scripted else (f"{what}: the API gives no events log; prompts are null",)
        return EVENTS_SCHEMA.empty_table(), 0, no_log
    with open(events_file, "rb") as lines:
        parsed = parse_events(
            lines,
            stream_id=sid,
            started_at=task.info.started_at,
            offset_s=task.shape.event_offset_ms / 1000.0,
        )
    warnings = parsed.warnings
    if parsed.bad_lines:
        warnings = (f"{what}: {parsed.bad_lines} bad events log lines skipped", *warnings)
    return parsed.table, parsed.bad_lines, warnings
