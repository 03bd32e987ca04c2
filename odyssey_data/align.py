"""Align video frames with the prompts in force (pure: no I/O).

The prompts that condition the video are the ``start`` prompt and each ``interact``
prompt of the events table. A frame's prompt is the *last* one issued at or before the
frame's time: an as-of join done with :func:`numpy.searchsorted`, vectorised over all
frames. Frames before the first prompt get null.

Both clocks are in seconds since the first presented frame: frames from
``(pts - first_pts) * time_base``, events from ``timestamp_ms / 1000`` (plus the user's
offset). The two roundings differ by float noise, so a prompt issued at ``t`` applies to
a frame at ``timestamp_s >= t - TIME_TOLERANCE_S``. When several prompts share a time,
the last one in the timeline wins (it is the one in force once they have all been
issued); the earlier ones get segments of zero length and zero frames.

``prompt_index`` is the prompt's position in the timeline (0 = the starting prompt, 1, 2
… each interaction), so it is deterministic for a given events table. :func:`align_frames`
and :func:`build_segments` share one index computation, so the frames whose
``prompt_index`` is ``i`` are exactly segment ``i``'s ``first_frame..last_frame``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from odyssey_data.errors import ConfigError
from odyssey_data.schema import SEGMENTS_SCHEMA

__all__ = [
    "PROMPT_KINDS",
    "TIME_TOLERANCE_S",
    "PromptTimeline",
    "TickSelector",
    "align_frames",
    "build_segments",
    "prompt_lags",
    "prompt_timeline",
    "resample_positions",
]

#: Event kinds whose prompt conditions the video.
PROMPT_KINDS: Final = ("start", "interact")

#: A prompt issued at ``t`` applies to frames at ``timestamp_s >= t - TIME_TOLERANCE_S``.
TIME_TOLERANCE_S: Final = 1e-6


def _float_vector(values: object, what: str) -> npt.NDArray[np.float64]:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ConfigError(f"{what} must be one-dimensional, not of shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ConfigError(f"{what} must be finite (found NaN or infinity)")
    return array


def _is_sorted(array: npt.NDArray[np.float64]) -> bool:
    return bool(np.all(array[1:] >= array[:-1]))


@dataclass(frozen=True, slots=True, eq=False)
class PromptTimeline:
    """The prompts that condition a video, in the order they were issued.

    Attributes:
        times_s: when each prompt was issued, seconds on the video clock, non-decreasing
            (a read-only float64 array).
        prompts: the prompt texts; ``prompts[i]`` has ``prompt_index`` ``i``.

    Raises:
        ConfigError: the lengths differ, or a time is not finite, or times decrease.
    """

    times_s: npt.NDArray[np.float64]
    prompts: tuple[str, ...]

    def __post_init__(self) -> None:
        times = np.array(_float_vector(self.times_s, "prompt times"), dtype=np.float64)
        prompts = tuple(self.prompts)
        if len(times) != len(prompts):
            raise ConfigError(f"{len(times)} prompt times for {len(prompts)} prompts")
        if not _is_sorted(times):
            raise ConfigError("prompt times must be sorted (non-decreasing)")
        times.setflags(write=False)
        object.__setattr__(self, "times_s", times)
        object.__setattr__(self, "prompts", prompts)

    def __len__(self) -> int:
        """The number of prompts."""
        return len(self.prompts)


def prompt_timeline(events: pa.Table) -> PromptTimeline:
    """Extract the prompts in force from an events table.

    Keeps the rows whose ``kind`` is ``start`` or ``interact`` and whose ``prompt`` is not
    null, in table order. The table of :func:`~odyssey_data.events.parse_events` is
    already sorted by time; any other table is sorted here, stably, so the order of
    prompts sharing a time is the table's.

    Args:
        events: a table with at least the ``kind``, ``prompt`` and ``time_s`` columns of
            :data:`~odyssey_data.schema.EVENTS_SCHEMA`.

    Returns:
        The timeline; ``prompt_index`` ``i`` is its ``i``-th entry.

    Raises:
        ConfigError: a prompt's time is null or not finite.
    """
    keep = pc.and_(
        pc.fill_null(pc.is_in(events["kind"], value_set=pa.array(PROMPT_KINDS)), False),
        pc.is_valid(events["prompt"]),
    )
    rows = events.select(["time_s", "prompt"]).filter(keep)
    if rows["time_s"].null_count:
        raise ConfigError("an event with a prompt has no time")
    times = _float_vector(rows["time_s"].to_numpy(), "prompt times")
    prompts: list[str] = rows["prompt"].to_pylist()
    order = np.argsort(times, kind="stable")
    return PromptTimeline(times[order], tuple(prompts[i] for i in order.tolist()))


def _frame_prompt_indices(
    timestamps_s: npt.NDArray[np.float64], timeline: PromptTimeline
) -> npt.NDArray[np.intp]:
    """Index of the prompt in force for each frame, -1 before the first prompt.

    ``side="right"`` counts the prompts issued at or before each frame (within the
    tolerance), so among prompts sharing a time the last one wins.
    """
    return np.searchsorted(timeline.times_s, timestamps_s + TIME_TOLERANCE_S, side="right") - 1


def align_frames(
    timestamps_s: npt.NDArray[np.float64], timeline: PromptTimeline
) -> tuple[pa.Array, pa.Array, pa.Array]:
    """The prompt in force at each frame.

    Args:
        timestamps_s: each frame's time, seconds since the first presented frame (need
            not be sorted here).
        timeline: the prompts, from :func:`prompt_timeline`.

    Returns:
        ``(prompt, prompt_index, prompt_time_s)`` as ``string``, ``int32`` and
        ``float64`` arrays with one value per frame, null where no prompt is in force
        yet (before the first prompt, or every frame when the timeline is empty).

    Raises:
        ConfigError: ``timestamps_s`` is not one-dimensional or not finite.
    """
    timestamps = _float_vector(timestamps_s, "frame timestamps")
    count = len(timestamps)
    if len(timeline) == 0:
        return (
            pa.nulls(count, pa.string()),
            pa.nulls(count, pa.int32()),
            pa.nulls(count, pa.float64()),
        )
    indices = _frame_prompt_indices(timestamps, timeline)
    missing = indices < 0
    safe = np.where(missing, 0, indices)
    prompt_index = pa.array(safe.astype(np.int32), mask=missing)
    prompt_time = pa.array(timeline.times_s[safe], mask=missing)
    prompt = pa.array(timeline.prompts, pa.string()).take(prompt_index)
    return prompt, prompt_index, prompt_time


def build_segments(
    stream_id: str,
    timestamps_s: npt.NDArray[np.float64],
    timeline: PromptTimeline,
    video_end_s: float,
    prompt_lag_s: npt.ArrayLike | None = None,
    response_latency_s: npt.ArrayLike | None = None,
) -> pa.Table:
    """One row per prompt: when it was in force and which frames it conditions.

    ``start_s`` is the prompt's time; ``end_s`` the next prompt's time, or
    ``max(video_end_s, start_s)`` for the last one. ``first_frame``/``last_frame`` are the
    first and last frame indices :func:`align_frames` gives this prompt (null when none)
    and ``frame_count`` how many (0 when none, e.g. a prompt after the video's end or one
    that shares its time with the next).

    Args:
        stream_id: the recording, written in every row.
        timestamps_s: the frames' times, sorted ascending (frame index = position).
        timeline: the prompts, from :func:`prompt_timeline`.
        video_end_s: the end of the video on the same clock.
        prompt_lag_s: per prompt, the logged minus the intended (script) time, NaN
            where there is nothing to compare; ``None`` gives an all-null column.
        response_latency_s: per prompt, the visual response latency measured by
            quality control (:mod:`odyssey_data.qc`), NaN where none; ``None`` gives an
            all-null column.

    Returns:
        A table of exactly :data:`~odyssey_data.schema.SEGMENTS_SCHEMA`.

    Raises:
        ConfigError: the timestamps are not sorted or not finite, or ``video_end_s`` is
            not finite.
    """
    timestamps = _float_vector(timestamps_s, "frame timestamps")
    if not _is_sorted(timestamps):
        raise ConfigError("frame timestamps must be sorted in presentation order")
    if not np.isfinite(video_end_s):
        raise ConfigError(f"video_end_s must be finite, not {video_end_s!r}")
    size = len(timeline)
    starts = timeline.times_s
    ends = np.empty(size, dtype=np.float64)
    ends[:-1] = starts[1:]
    if size:
        ends[-1] = max(float(video_end_s), float(starts[-1]))

    # Sorted frames give non-decreasing indices, so each prompt's frames are contiguous.
    indices = _frame_prompt_indices(timestamps, timeline)
    prompt_ids = np.arange(size)
    first = np.searchsorted(indices, prompt_ids, side="left")
    after_last = np.searchsorted(indices, prompt_ids, side="right")
    counts = after_last - first
    empty = counts == 0
    return pa.Table.from_arrays(
        [
            pa.array([stream_id] * size, pa.string()),
            pa.array(prompt_ids.astype(np.int32)),
            pa.array(timeline.prompts, pa.string()),
            pa.array(starts, pa.float64()),
            pa.array(ends),
            pa.array(first.astype(np.int32), mask=empty),
            pa.array((after_last - 1).astype(np.int32), mask=empty),
            pa.array(counts.astype(np.int32)),
            _per_prompt(prompt_lag_s, size, "prompt lags"),
            _per_prompt(response_latency_s, size, "response latencies"),
        ],
        schema=SEGMENTS_SCHEMA,
    )


def _per_prompt(values: npt.ArrayLike | None, size: int, what: str) -> pa.Array:
    """One float64 per prompt, null where NaN (all null for ``None``)."""
    if values is None:
        return pa.nulls(size, pa.float64())
    array = np.asarray(values, dtype=np.float64)
    if array.shape != (size,):
        raise ConfigError(f"{array.shape[0] if array.ndim else 0} {what} for {size} prompts")
    return pa.array(array, mask=~np.isfinite(array))


def prompt_lags(script: PromptTimeline, logged: PromptTimeline) -> npt.NDArray[np.float64]:
    """Per script prompt, the logged time minus the script's, matched by prompt order.

    Prompt ``i`` of the script is matched with prompt ``i`` of the events log (the
    ``start`` prompt with the logged start, the first interaction with the first logged
    interaction …). A script prompt with no logged counterpart gets NaN (written as null).

    Args:
        script: the intended timeline (the job's script).
        logged: the timeline of the events log.

    Returns:
        One float64 per script prompt: seconds, positive when the log is late.
    """
    lags = np.full(len(script), np.nan, dtype=np.float64)
    common = min(len(script), len(logged))
    lags[:common] = logged.times_s[:common] - script.times_s[:common]
    return lags


def resample_positions(
    timestamps_s: npt.NDArray[np.float64], fps: float, *, unique: bool = False
) -> npt.NDArray[np.int64]:
    """Positions of the frames nearest to each tick ``k / fps`` of a fixed-rate clock.

    Ticks run from the first frame (time 0) to the last. Where the video is slower than
    ``fps`` one frame serves several ticks (a fixed-rate clip keeps its timing); with
    ``unique=True`` each frame is kept once (an export that thins frames out).

    Args:
        timestamps_s: sorted frame times, seconds since the first frame.
        fps: ticks per second (> 0).
        unique: drop repeated positions.
    """
    if not fps > 0:
        raise ConfigError(f"fps must be positive, not {fps}")
    n = timestamps_s.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    start = float(timestamps_s[0])
    count = int(np.floor((float(timestamps_s[-1]) - start) * fps + 1e-9)) + 1
    ticks = start + np.arange(count, dtype=np.float64) / fps
    right = np.clip(np.searchsorted(timestamps_s, ticks), 0, n - 1)
    left = np.clip(right - 1, 0, n - 1)
    # Nearest neighbour; a tie goes to the earlier frame (the one on screen at the tick).
    pick_left = np.abs(ticks - timestamps_s[left]) <= np.abs(timestamps_s[right] - ticks)
    positions = np.where(pick_left, left, right).astype(np.int64)
    if unique:
        positions = np.unique(positions)
    return positions


class TickSelector:
    """:func:`resample_positions` with ``unique=True``, one frame at a time.

    Feed the frames' times in order (seconds since the first frame, so the first is 0);
    each call returns the positions that became kept, each once, in order: the previous
    frame or this one (a later tick can no longer pick an earlier frame). :meth:`finish`
    returns what the end of the video decides. The positions are those
    ``resample_positions(times, fps, unique=True)`` gives on the whole array, so frames
    can be selected while a video is still being decoded.
    """

    def __init__(self, fps: float) -> None:
        if not fps > 0:
            raise ConfigError(f"fps must be positive, not {fps}")
        self.fps = fps
        self._tick = 0  # the next tick not yet decided
        self._count = 0  # frames fed
        self._start = 0.0  # the first frame's time (the first tick)
        self._previous = 0.0
        self._kept = -1  # the last position kept

    def _keep(self, position: int, out: list[int]) -> None:
        if position != self._kept:
            self._kept = position
            out.append(position)

    def feed(self, time_s: float) -> list[int]:
        """The positions kept once the frame at ``time_s`` is known."""
        out: list[int] = []
        position = self._count
        if position == 0:
            self._start = time_s
        while True:
            tick = self._start + float(self._tick) / self.fps
            if tick > time_s:
                break
            if position == 0:
                self._keep(0, out)
            else:
                # Nearest neighbour; a tie goes to the earlier frame (as resample_positions).
                left = abs(tick - self._previous) <= abs(time_s - tick)
                self._keep(position - 1 if left else position, out)
            self._tick += 1
        self._previous = time_s
        self._count += 1
        return out

    def finish(self) -> list[int]:
        """The positions the end of the video keeps (ticks just past the last frame)."""
        if self._count == 0:
            return []
        count = int(np.floor((self._previous - self._start) * self.fps + 1e-9)) + 1
        out: list[int] = []
        if self._tick < count:
            self._keep(self._count - 1, out)
        return out
