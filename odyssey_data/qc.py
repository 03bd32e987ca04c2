"""Quality control of one recording: timing, prompts and pictures (pure: no I/O).

Values in, values out: numpy arrays of frame times and small decoded pictures, Arrow
tables, numbers. The export (:mod:`odyssey_data.measure`) feeds these functions while it
has the recording at hand and writes one row per exported recording into the ``qc``
table (:data:`~odyssey_data.schema.QC_SCHEMA`); :func:`broken_rules` is the gate.

What each column means (times in seconds on the video clock):

* ``frames``, ``span_s``: frames presented and the last one's ``timestamp_s``.
* ``interval_p50_s``, ``interval_p99_s``, ``interval_max_s``: of the intervals between
  consecutive presented frames (null with fewer than two frames); percentiles are
  the nearest rank, so always an interval that occurred. ``gaps`` counts the
  intervals longer than :data:`GAP_FACTOR` × ``interval_p50_s`` (dropped frames).
* ``frames_before_first_prompt``: frames with no prompt in force yet.
* ``api_duration_delta_s``: the video's duration (``recordings.video_duration_s``: last
  frame plus the median interval) minus the API's ``duration_seconds``; negative when
  the video is shorter than the API says.
* ``events_span_delta_s``: the last event's time minus the video's duration; positive
  when the events log runs on after the video ends.
* ``prompts``, ``prompts_per_minute``: prompts in the timeline (start included), per
  minute of video.
* ``prompt_lag_max_s``: the largest ``segments.prompt_lag_s`` (simulation outputs whose
  events log can be compared with the job's script; else null).
* ``response_latency_p50_s``, ``response_latency_max_s`` (``qc_mode`` ``response`` or
  ``decode``): of each interaction's visual response latency
  (:func:`response_latency`), also stored per segment as
  ``segments.response_latency_s``; ``unresponsive_prompts`` counts the interactions
  whose picture did not change within :data:`RESPONSE_WINDOW_S`.
* ``frozen_frames``, ``longest_frozen_s`` (``qc_mode = "decode"`` only): frames whose
  picture does not change from the frame before, and the longest time one picture
  stayed on screen in such a run (:func:`frozen_stretches`).

Pictures are compared at low resolution (:data:`PICTURE_WIDTH` pixels wide) by
:func:`changed_share`: the share of pixels where some colour channel moved by more than
:data:`PIXEL_DELTA` (of 255). A response is a share of at least
:data:`RESPONSE_SHARE` against the frame before the prompt; a frozen frame one of at most
:data:`FROZEN_SHARE` against its predecessor.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from odyssey_data.align import TIME_TOLERANCE_S
from odyssey_data.errors import ConfigError
from odyssey_data.options import QC_MODES
from odyssey_data.schema import QC_SCHEMA

__all__ = [
    "FROZEN_SHARE",
    "GAP_FACTOR",
    "PICTURE_WIDTH",
    "PIXEL_DELTA",
    "QC_MODES",
    "RESPONSE_SHARE",
    "RESPONSE_WINDOW_S",
    "QCRule",
    "ResponseWindow",
    "broken_rules",
    "changed_share",
    "frozen_stretches",
    "parse_rule",
    "response_latency",
    "response_windows",
    "summarise_latencies",
    "timing_row",
]

#: In order of what they measure. ``off``: no QC row; ``reference``: the columns
#: measured from frame and prompt times, no pixel decoded; ``response``: also each
#: interaction's visual response latency (decodes a short window after it);
#: ``decode``: also frozen stretches (decodes every frame at low resolution).
#: (Declared with the export options: :data:`odyssey_data.options.QC_MODES`.)

#: An interval longer than this many times the median one is a gap (dropped frames).
GAP_FACTOR: Final = 1.5
#: Pictures are compared at this width (height keeps the aspect ratio).
PICTURE_WIDTH: Final = 64
#: A pixel changed when one of its channels moved by more than this (of 255).
PIXEL_DELTA: Final = 16
#: A visual response: at least this share of the picture changed against the frame
#: before the prompt (a moving object alone changes a few per cent).
RESPONSE_SHARE: Final = 0.25
#: A frozen frame: at most this share of the picture changed against the frame before.
FROZEN_SHARE: Final = 0.001
#: How long after an interaction its visual response is looked for.
RESPONSE_WINDOW_S: Final = 3.0

#: Columns a rule may test: the numeric ones of the qc table.
RULE_COLUMNS: Final = tuple(
    f.name for f in QC_SCHEMA if pa.types.is_integer(f.type) or pa.types.is_floating(f.type)
)
#: The columns that need more than ``reference`` QC, and the mode that measures them.
COLUMN_MODES: Final = {
    "response_latency_p50_s": "response",
    "response_latency_max_s": "response",
    "unresponsive_prompts": "response",
    "frozen_frames": "decode",
    "longest_frozen_s": "decode",
}


def measures(mode: str, column: str) -> bool:
    """True when QC in ``mode`` measures ``column``."""
    needed = COLUMN_MODES.get(column, "reference")
    return QC_MODES.index(mode) >= QC_MODES.index(needed)


def _percentile(values: npt.NDArray[np.float64], q: float) -> float:
    # "nearest": a percentile is always a value that occurred (an interval the video
    # really has), not an interpolation between two.
    return float(np.percentile(values, q, method="nearest"))


def timing_row(
    timestamps_s: npt.NDArray[np.float64],
    *,
    prompt_times_s: npt.NDArray[np.float64],
    video_duration_s: float,
    api_duration_s: float | None,
    last_event_s: float | None,
    prompt_lags_s: npt.ArrayLike | None = None,
) -> dict[str, Any]:
    """The columns measured from frame and prompt times alone (no pixels).

    Args:
        timestamps_s: every presented frame's time, sorted.
        prompt_times_s: the prompt timeline's times (start prompt first), sorted.
        video_duration_s: the video's duration (last frame plus the median interval).
        api_duration_s: the API's ``duration_seconds``, when it gives one.
        last_event_s: the time of the events table's last row, when there are events.
        prompt_lags_s: ``segments.prompt_lag_s`` (NaN or null where unknown).

    Returns:
        ``frames``, ``span_s``, the interval columns, ``gaps``,
        ``frames_before_first_prompt``, the two deltas, ``prompts``,
        ``prompts_per_minute`` and ``prompt_lag_max_s``.
    """
    ts = np.asarray(timestamps_s, dtype=np.float64)
    n = int(ts.shape[0])
    row: dict[str, Any] = {
        "frames": n,
        "span_s": float(ts[-1]) if n else 0.0,
        "interval_p50_s": None,
        "interval_p99_s": None,
        "interval_max_s": None,
        "gaps": 0,
    }
    if n > 1:
        intervals = np.diff(ts)
        p50 = _percentile(intervals, 50)
        row["interval_p50_s"] = p50
        row["interval_p99_s"] = _percentile(intervals, 99)
        row["interval_max_s"] = float(intervals.max())
        row["gaps"] = int(np.count_nonzero(intervals > GAP_FACTOR * p50))
    times = np.asarray(prompt_times_s, dtype=np.float64)
    before = (
        n
        if times.shape[0] == 0
        else int(np.searchsorted(ts, float(times[0]) - TIME_TOLERANCE_S, side="left"))
    )
    row["frames_before_first_prompt"] = before
    row["api_duration_delta_s"] = (
        None if api_duration_s is None else float(video_duration_s) - float(api_duration_s)
    )
    row["events_span_delta_s"] = (
        None if last_event_s is None else float(last_event_s) - float(video_duration_s)
    )
    row["prompts"] = int(times.shape[0])
    row["prompts_per_minute"] = (
        times.shape[0] / (video_duration_s / 60.0) if video_duration_s > 0 else None
    )
    lags = (
        np.zeros(0)
        if prompt_lags_s is None
        else np.asarray(prompt_lags_s, dtype=np.float64).ravel()
    )
    lags = lags[np.isfinite(lags)]
    row["prompt_lag_max_s"] = float(lags.max()) if lags.size else None
    return row


def last_event_time(events: pa.Table) -> float | None:
    """The latest ``time_s`` of an events table, or ``None`` when it is empty."""
    if events.num_rows == 0:
        return None
    latest = pc.max(events["time_s"]).as_py()
    return None if latest is None else float(latest)


def changed_share(
    a: npt.NDArray[np.uint8], b: npt.NDArray[np.uint8], pixel_delta: int = PIXEL_DELTA
) -> float:
    """The share of pixels (0..1) where some channel differs by more than ``pixel_delta``.

    Args:
        a: an ``H×W×C`` (or ``H×W``) uint8 picture.
        b: another of the same shape.
        pixel_delta: the change (of 255) a pixel must exceed to count.
    """
    if a.shape != b.shape:
        raise ConfigError(f"pictures of different shapes cannot be compared: {a.shape}, {b.shape}")
    if a.size == 0:
        return 0.0
    diff = np.abs(a.astype(np.int16) - b.astype(np.int16))
    if diff.ndim == 3:
        diff = diff.max(axis=2)
    return float(np.count_nonzero(diff > pixel_delta)) / float(diff.size)


@dataclass(frozen=True, slots=True)
class ResponseWindow:
    """The frames to look at for one interaction's visual response.

    Attributes:
        prompt_index: the interaction's ``prompt_index`` (1, 2 …).
        prompt_time_s: when it was issued.
        reference: the position of the last frame before it (the picture to compare to).
        first: the first frame at or after it.
        last: the last frame within the window.
    """

    prompt_index: int
    prompt_time_s: float
    reference: int
    first: int
    last: int


def response_windows(
    timestamps_s: npt.NDArray[np.float64],
    prompt_times_s: npt.NDArray[np.float64],
    window_s: float = RESPONSE_WINDOW_S,
) -> list[ResponseWindow]:
    """Per interaction (every prompt after the first), the frames that can show its response.

    An interaction with no frame before it, or none within ``window_s`` after it (a
    prompt after the video's end), gets no window: its latency cannot be measured.
    """
    ts = np.asarray(timestamps_s, dtype=np.float64)
    out: list[ResponseWindow] = []
    for index in range(1, int(np.asarray(prompt_times_s).shape[0])):
        time_s = float(prompt_times_s[index])
        first = int(np.searchsorted(ts, time_s - TIME_TOLERANCE_S, side="left"))
        last = int(np.searchsorted(ts, time_s + window_s + TIME_TOLERANCE_S, side="right")) - 1
        if first == 0 or first >= ts.shape[0] or last < first:
            continue
        out.append(ResponseWindow(index, time_s, first - 1, first, last))
    return out


def response_latency(
    window: ResponseWindow,
    timestamps_s: npt.NDArray[np.float64],
    position: int,
    share: float,
    threshold: float = RESPONSE_SHARE,
) -> float | None:
    """The latency when the frame at ``position`` is the response, else ``None``.

    Args:
        window: the interaction's window.
        timestamps_s: every frame's time.
        position: a frame of the window, visited in order.
        share: its :func:`changed_share` against the window's reference frame.
        threshold: the share that counts as a response.

    Returns:
        Seconds from the prompt to this frame (never below 0), when ``share`` reaches
        ``threshold``.
    """
    if share < threshold:
        return None
    return max(0.0, float(timestamps_s[position]) - window.prompt_time_s)


def summarise_latencies(latencies: Sequence[float | None]) -> dict[str, Any]:
    """The qc columns of the response latencies of the interactions that had a window.

    Args:
        latencies: one per interaction with a window; ``None`` where no response came.
    """
    found = np.asarray([v for v in latencies if v is not None], dtype=np.float64)
    return {
        "response_latency_p50_s": _percentile(found, 50) if found.size else None,
        "response_latency_max_s": float(found.max()) if found.size else None,
        "unresponsive_prompts": len(latencies) - int(found.size),
    }


def frozen_stretches(
    frozen: npt.NDArray[np.bool_],
    timestamps_s: npt.NDArray[np.float64],
    video_duration_s: float,
) -> dict[str, Any]:
    """``frozen_frames`` and ``longest_frozen_s`` of a recording.

    Args:
        frozen: per frame, whether its picture is unchanged from the frame before (the
            first frame is never frozen).
        timestamps_s: every frame's time.
        video_duration_s: the end of the video (a run that lasts to the end ends there).

    Returns:
        The number of frozen frames, and the longest time one picture stayed on
        screen through a run of them: from the frame before the run to the first frame
        after it (0.0 when nothing froze).
    """
    flags = np.asarray(frozen, dtype=bool)
    ts = np.asarray(timestamps_s, dtype=np.float64)
    if flags.shape != ts.shape:
        raise ConfigError(f"{flags.shape[0]} frozen flags for {ts.shape[0]} frames")
    count = int(np.count_nonzero(flags))
    longest = 0.0
    if count:
        edges = np.diff(np.concatenate(([0], flags.astype(np.int8), [0])))
        starts = np.flatnonzero(edges == 1)
        ends = np.flatnonzero(edges == -1)  # one past each run's last frame
        held_from = ts[np.maximum(starts - 1, 0)]
        n = ts.shape[0]
        until = np.where(ends < n, ts[np.minimum(ends, n - 1)], float(video_duration_s))
        longest = float((until - held_from).max())
    return {"frozen_frames": count, "longest_frozen_s": longest}


_OPERATORS: Final[dict[str, Callable[[Any, Any], bool]]] = {
    ">=": operator.ge,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
    ">": operator.gt,
    "<": operator.lt,
}
_RULE = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*(>=|<=|==|!=|>|<)\s*(\S+)\s*\Z")


@dataclass(frozen=True, slots=True)
class QCRule:
    """One gate rule: a recording whose ``column`` compares true with ``value`` fails.

    Attributes:
        column: a numeric column of the qc table.
        op: ``>``, ``>=``, ``<``, ``<=``, ``==`` or ``!=``.
        value: the number compared with.
    """

    column: str
    op: str
    value: float

    def __str__(self) -> str:
        value = int(self.value) if self.value.is_integer() else self.value
        return f"{self.column}{self.op}{value}"

    def broken_by(self, row: Mapping[str, Any]) -> bool:
        """True when ``row``'s value breaks the rule (a value not measured never does)."""
        measured = row.get(self.column)
        if measured is None or (isinstance(measured, float) and math.isnan(measured)):
            return False
        return bool(_OPERATORS[self.op](measured, self.value))


def parse_rule(text: str) -> QCRule:
    """Parse ``"gaps>0"``, ``"response_latency_max_s > 1.5"`` …

    Raises:
        ConfigError: not ``COLUMN OP NUMBER``, or not a numeric qc column.
    """
    match = _RULE.match(text)
    if match is None:
        raise ConfigError(
            f"QC rule {text!r} is not COLUMN OP NUMBER (e.g. 'gaps>0'); OP is one of "
            + " ".join(_OPERATORS)
        )
    column, op, raw = match.groups()
    if column not in RULE_COLUMNS:
        raise ConfigError(
            f"QC rule {text!r}: {column!r} is not a numeric qc column; choose one of "
            + ", ".join(RULE_COLUMNS)
        )
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise ConfigError(f"QC rule {text!r}: {raw!r} is not a finite number")
    return QCRule(column, op, value)


def _show(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6f}".rstrip("0").rstrip(".") if value == value else "nan"
    return str(value)


def broken_rules(rules: Sequence[QCRule], row: Mapping[str, Any]) -> list[str]:
    """The rules ``row`` breaks, each with its measured value (``"gaps>0: gaps = 3"``)."""
    return [
        f"{rule}: {rule.column} = {_show(row[rule.column])}"
        for rule in rules
        if rule.broken_by(row)
    ]


def empty_row(stream_id: str, mode: str) -> dict[str, Any]:
    """A qc row with every measured column null (filled in by the export)."""
    row: dict[str, Any] = dict.fromkeys(QC_SCHEMA.names)
    row.update(stream_id=stream_id, qc_mode=mode)
    return row
