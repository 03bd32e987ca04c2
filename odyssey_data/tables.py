"""The tables of one recording, built from values: pure, no file and no network.

The middle of the unit of work (:mod:`odyssey_data.work`): given a video's frame
timing (:class:`~odyssey_data.video.FrameTiming`, read by PyAV beforehand) and its
events, :func:`align_recording` aligns frames to the prompts in force and builds the
reference frames rows; :func:`select_frames` keeps the ones ``fps`` asks for;
:func:`recording_table` builds the one-row recordings table once the video is stored.
Everything here can be tested with a hand-made timing and events table, no video.

When a simulation job's script is known it is the ground truth: its entries are kept in
the events table (``origin = "script"``; the events log's lines stay too, ``origin =
"log"``), frames align to the script's prompt times (the video is rendered from the
script; the log only records when each prompt was issued), and each prompt's lag is the
logged time minus the script's, matched by prompt order (none without a log). An events
log in the script shape, without a script, is aligned to as is.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from odyssey_data._version import __version__
from odyssey_data.align import (
    PromptTimeline,
    align_frames,
    prompt_lags,
    prompt_timeline,
    resample_positions,
)
from odyssey_data.errors import RecordingError
from odyssey_data.events import parse_events
from odyssey_data.models import RecordingInfo, ScriptEntry
from odyssey_data.schema import EVENTS_SCHEMA, FRAMES_SCHEMA, RECORDINGS_SCHEMA

if TYPE_CHECKING:
    from odyssey_data.manifest import FileEntry
    from odyssey_data.options import FrameOptions
    from odyssey_data.video import FrameTiming

__all__ = [
    "Aligned",
    "align_recording",
    "check_frame_count",
    "merge_events",
    "recording_table",
    "script_events_table",
    "select_frames",
    "stretched_warning",
]


@dataclass(frozen=True)
class Aligned:
    """A recording's frames aligned to its prompts (see :func:`align_recording`).

    Attributes:
        timestamps_s: every frame's time, seconds since the first (float64).
        frames: the reference frames rows (``FRAMES_SCHEMA``), every frame.
        events: the events rows (the script's and the log's, when there is a script).
        timeline: the prompts the frames align to (the script's, when there is one).
        lags: per prompt of the timeline, logged time minus the script's (or ``None``).
        video_end_s: the end of the video: the last frame's time plus one interval.
    """

    timestamps_s: npt.NDArray[np.float64]
    frames: pa.Table
    events: pa.Table
    timeline: PromptTimeline
    lags: npt.NDArray[np.float64] | None
    video_end_s: float


def check_frame_count(n: int, expected: int | None, what: str, sid: str) -> tuple[str, ...]:
    """The warnings of a video with ``n`` frames where the API announces ``expected``.

    Raises:
        RecordingError: fewer frames than announced: a complete-looking file that is
            not, never to be exported as a shorter recording.
    """
    if expected is None or n == expected:
        return ()
    if n < expected:
        raise RecordingError(
            f"{what}: the video holds {n} frames but the API announces {expected}; the file "
            "is incomplete (re-run the export; if it persists, the recording is damaged)",
            stream_id=sid,
        )
    return (f"{what}: the video holds {n} frames, the API announces {expected}",)


def align_recording(
    sid: str,
    timing: FrameTiming,
    events: pa.Table,
    *,
    video_path: str,
    script: tuple[ScriptEntry, ...] | None = None,
    logged: bool = True,
) -> Aligned:
    """Align every frame of ``timing`` to the prompt in force; the reference rows.

    Args:
        sid: the recording's stream id.
        timing: its video's frame timing.
        events: the events log's rows (empty without a log).
        video_path: the dataset path of the video the rows point into.
        script: a simulation job's script: then the ground truth the frames align to
            (the log's rows stay in the events table, and each prompt's lag is kept).
        logged: whether there was an events log (no lags to compare without one).
    """
    ts = timing.timestamps_s()
    n = timing.frame_count
    timeline = prompt_timeline(events)
    lags = None
    if script is not None:
        # The script is the ground truth: frames align to it, the log's lag is kept.
        from_script = script_events_table(script, sid)
        logged_timeline, timeline = timeline, prompt_timeline(from_script)
        lags = prompt_lags(timeline, logged_timeline) if logged else None
        events = merge_events(from_script, events)
    prompt, prompt_index, prompt_time = align_frames(ts, timeline)
    frames = pa.Table.from_arrays(
        [
            repeat(sid, n),
            pa.array(np.arange(n, dtype=np.int32)),
            pa.array(timing.pts),
            pa.array(ts),
            pa.array(timing.is_keyframe),
            repeat(video_path, n),
            pa.array(np.full(n, timing.width, dtype=np.int32)),
            pa.array(np.full(n, timing.height, dtype=np.int32)),
            prompt,
            prompt_index,
            prompt_time,
        ],
        schema=FRAMES_SCHEMA,
    )
    interval = float(np.median(np.diff(ts))) if n > 1 else 0.0
    return Aligned(ts, frames, events, timeline, lags, float(ts[-1]) + interval)


def select_frames(aligned: Aligned, fps: float | None) -> pa.Table:
    """The frames rows ``fps`` keeps (every row without ``fps``)."""
    if fps is None:
        return aligned.frames
    keep = resample_positions(aligned.timestamps_s, fps, unique=True)
    return aligned.frames.take(pa.array(keep))


def recording_table(
    info: RecordingInfo,
    timing: FrameTiming,
    aligned: Aligned,
    *,
    video: FileEntry,
    api_duration_s: float | None,
    bad_event_lines: int,
    extra_files: tuple[FileEntry, ...] = (),
    options_json: str = "{}",
) -> pa.Table:
    """The one-row recordings table of a recording whose video is stored as ``video``."""
    stored = {entry.kind: entry.path for entry in extra_files}
    row = {
        "stream_id": info.stream_id,
        "width": info.width if info.width is not None else timing.width,
        "height": info.height if info.height is not None else timing.height,
        "started_at": info.started_at,
        "ended_at": info.ended_at,
        "duration_seconds": api_duration_s,
        "frame_count": timing.frame_count,
        "video_path": video.path,
        "video_bytes": video.bytes,
        "video_sha256": video.sha256,
        "codec": timing.codec,
        "time_base": f"{timing.time_base.numerator}/{timing.time_base.denominator}",
        "events_count": aligned.events.num_rows,
        "bad_event_lines": bad_event_lines,
        "prompts_count": len(aligned.timeline),
        "first_pts": timing.first_pts,
        "video_duration_s": aligned.video_end_s,
        "source": info.source,
        "exported_at": datetime.now(UTC),
        "job_id": info.job_id,
        "script_index": info.script_index,
        "thumbnail_path": stored.get("thumbnail"),
        "preview_path": stored.get("preview"),
        "exporter_version": __version__,
        "export_options": options_json,
    }
    return pa.Table.from_pylist([row], schema=RECORDINGS_SCHEMA)


def repeat(value: str, n: int) -> pa.Array:
    """``value`` ``n`` times, as a string array (one allocation, no Python list)."""
    return pa.array([value], pa.string()).take(pa.array(np.zeros(n, dtype=np.int32)))


def stretched_warning(options: FrameOptions, width: int, height: int) -> str | None:
    """Why ``--resize WxH`` distorts frames of ``width``×``height``, or ``None``."""
    if not options.materialised or options.resize is None or options.resize[1] is None:
        return None
    new_w, new_h = options.resize[0], options.resize[1]
    if not width or not height or abs(new_w / new_h - width / height) <= 0.01 * width / height:
        return None
    return (
        f"--resize {new_w}x{new_h} changes the aspect ratio of its {width}x{height} frames "
        f"(stretched); give the width alone (--resize {new_w}) to keep the aspect ratio"
    )


def script_events_table(script: tuple[ScriptEntry, ...], sid: str) -> pa.Table:
    """The job's script as events rows (``origin`` = ``"script"``), on the video clock."""
    lines = [entry.raw.encode("utf-8") for entry in script]
    return parse_events(lines, stream_id=sid, event_origin="script").table


def merge_events(script_events: pa.Table, logged: pa.Table) -> pa.Table:
    """Script and log rows in one events table, sorted by time (script first on ties)."""
    merged = pa.concat_tables([script_events, logged])
    order = np.argsort(merged["time_s"].to_numpy(), kind="stable")
    merged = merged.take(pa.array(order))
    index = merged.schema.get_field_index("event_index")
    numbers = pa.array(np.arange(merged.num_rows, dtype=np.int32))
    return merged.set_column(index, EVENTS_SCHEMA.field("event_index"), numbers)
