"""An episode's rows: exact constant-rate resampling, tasks, LeRobot's language columns. Pure.

Row ``k`` stands for ``t = k / fps`` and shows the last source frame presented at or
before ``t`` (:func:`resample_indices`, integer arithmetic on the source pts); its task
is the prompt in force at ``t`` (the frames table's as-of rule, on the export's own
prompt timeline: its segments).
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl
import pyarrow as pa

from odyssey_data.align import TIME_TOLERANCE_S, PromptTimeline, align_frames
from odyssey_data.errors import ConfigError
from odyssey_data.lerobot.layout import language_types


def resample_indices(pts: npt.ArrayLike, time_base: Fraction, fps: int) -> npt.NDArray[np.int64]:
    """For each row ``k`` at ``t = k / fps``: the last source frame presented at or before ``t``.

    Exact: frame ``i`` is at ``(pts[i] - pts[0]) * time_base`` and the comparison
    ``(pts[i] - pts[0]) * num * fps <= k * den`` is done on integers. Rows run from
    ``k = 0`` while ``k / fps`` is at most the last frame's time.

    Args:
        pts: the source frames' pts in presentation order (strictly increasing).
        time_base: seconds per pts tick.
        fps: the row rate.

    Returns:
        Per row, the index of the source frame it shows (non-decreasing, starts at 0).

    Raises:
        ConfigError: no frames, pts not increasing, or values too large for int64.
    """
    ticks = np.asarray(pts, dtype=np.int64)
    if ticks.size == 0:
        raise ConfigError("a recording without frames cannot be resampled")
    if ticks.size > 1 and not bool(np.all(np.diff(ticks) > 0)):
        raise ConfigError("frame pts must be strictly increasing")
    rel = ticks - ticks[0]
    num, den = time_base.numerator, time_base.denominator
    span = int(rel[-1]) * num * fps
    rows = span // den + 1
    if span >= 1 << 62 or rows * den >= 1 << 62:
        raise ConfigError("the recording is too long for its time base and this fps")
    scaled = rel * np.int64(num * fps)
    times = np.arange(rows, dtype=np.int64) * np.int64(den)
    return (np.searchsorted(scaled, times, side="right") - 1).astype(np.int64)


class Tasks:
    """Task strings to indices, in order of first use."""

    def __init__(self) -> None:
        self.index: dict[str, int] = {}

    def get(self, task: str) -> int:
        return self.index.setdefault(task, len(self.index))


def episode_rows(
    frames: pl.DataFrame,
    segments: pl.DataFrame,
    *,
    episode: int,
    first_index: int,
    fps: int,
    time_base: Fraction,
    tasks: Tasks,
    language: bool,
) -> tuple[pa.Table, npt.NDArray[np.int64], list[str], int]:
    """The episode's data table, the source pts per row, its tasks and repeat count.

    ``frames`` has the recording's ``frame_index`` and ``pts`` in frame order,
    ``segments`` its ``prompt_index``, ``prompt`` and ``start_s``.
    """
    pts = frames["pts"].to_numpy().astype(np.int64)
    source = resample_indices(pts, time_base, fps)
    rows = int(source.shape[0])
    k = np.arange(rows, dtype=np.int64)
    times = k.astype(np.float64) / fps
    ordered = segments.sort("prompt_index")
    timeline = PromptTimeline(
        ordered["start_s"].to_numpy().astype(np.float64), tuple(ordered["prompt"].to_list())
    )
    prompt, prompt_index, _ = align_frames(times, timeline)
    prompts: list[str | None] = prompt.to_pylist()
    task_names = [p if p is not None else "" for p in prompts]
    task_index = np.array([tasks.get(t) for t in task_names], dtype=np.int64)
    repeat = np.zeros(rows, dtype=np.bool_)
    repeat[1:] = source[1:] == source[:-1]
    columns: dict[str, pa.Array] = {
        "timestamp": pa.array(times.astype(np.float32)),
        "frame_index": pa.array(k),
        "episode_index": pa.array(np.full(rows, episode, dtype=np.int64)),
        "index": pa.array(k + first_index),
        "task_index": pa.array(task_index),
        "prompt_index": pa.array(prompt_index.fill_null(-1).to_numpy(zero_copy_only=False)),
        "odyssey.source_frame_index": pa.array(
            frames["frame_index"].to_numpy()[source].astype(np.int32)
        ),
        "odyssey.source_pts": pa.array(pts[source]),
        "odyssey.is_repeat": pa.array(repeat),
    }
    columns["prompt_index"] = columns["prompt_index"].cast(pa.int32())
    if language:
        persistent, events = _language_columns(timeline, times)
        columns["language_persistent"] = persistent
        columns["language_events"] = events
    table = pa.table(columns)
    used = list(dict.fromkeys(task_names))
    return table, pts[source], used, int(repeat.sum())


def _language_columns(
    timeline: PromptTimeline, times: npt.NDArray[np.float64]
) -> tuple[pa.Array, pa.Array]:
    """``language_persistent`` (every prompt with its time, style ``subtask``, on each row)
    and ``language_events`` (each ``interact`` prompt on the first row at or after it,
    style ``interjection``)."""
    rows = int(times.shape[0])
    persistent_type, events_type = language_types()
    persistent_storage, events_storage = language_types(pa.string())
    said = [
        {
            "role": "user",
            "content": text,
            "style": "subtask",
            "timestamp": float(np.float32(at)),
            "camera": None,
            "tool_calls": None,
        }
        for at, text in zip(timeline.times_s.tolist(), timeline.prompts, strict=True)
    ]
    persistent = pa.array([said] * rows, type=persistent_storage).cast(persistent_type)
    events: list[list[dict[str, Any]]] = [[] for _ in range(rows)]
    for number, (at, text) in enumerate(
        zip(timeline.times_s.tolist(), timeline.prompts, strict=True)
    ):
        if number == 0:
            continue  # the starting prompt is not an interaction
        row = int(np.searchsorted(times, at - TIME_TOLERANCE_S, side="left"))
        if row < rows:
            events[row].append(
                {
                    "role": "user",
                    "content": text,
                    "style": "interjection",
                    "camera": None,
                    "tool_calls": None,
                }
            )
    return persistent, pa.array(events, type=events_storage).cast(events_type)
