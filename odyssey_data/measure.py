"""Quality control during the export: the pure measures of :mod:`odyssey_data.qc` fed
with this recording's frame times, prompts and (for pictures) the video module's decoder.

``reference`` QC (the default) reads no pixel: frame and prompt times only. ``response``
QC also decodes a short window after each interaction, at
:data:`~odyssey_data.qc.PICTURE_WIDTH` pixels wide: from the key frame at or before the
frame preceding the prompt, up to the first frame whose picture changed (at most
:data:`~odyssey_data.qc.RESPONSE_WINDOW_S` later). ``decode`` QC also decodes every
frame once at that size for frozen stretches. :class:`QCOptions` is the export's
choice; :func:`check` applies its gate.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from odyssey_data.align import PromptTimeline
from odyssey_data.errors import ConfigError, RecordingError
from odyssey_data.images import target_size
from odyssey_data.qc import (
    COLUMN_MODES,
    FROZEN_SHARE,
    PICTURE_WIDTH,
    QC_MODES,
    QCRule,
    broken_rules,
    changed_share,
    empty_row,
    frozen_stretches,
    last_event_time,
    measures,
    parse_rule,
    response_latency,
    response_windows,
    summarise_latencies,
    timing_row,
)
from odyssey_data.schema import QC_SCHEMA
from odyssey_data.video import FrameTiming, decode_frames, scan_windows

__all__ = ["QCOptions", "QCResult", "check", "measure"]


@dataclass(frozen=True)
class QCOptions:
    """What quality control the export runs, and its gate.

    Attributes:
        mode: ``"reference"`` (default: timing and prompts, no pixel decoded),
            ``"response"`` (also the interactions' visual response latency),
            ``"decode"`` (also frozen stretches) or ``"off"`` (no qc row).
        fail_on: rules such as ``"gaps>0"``: a recording that breaks one fails.
    """

    mode: str = "reference"
    fail_on: tuple[str, ...] = ()
    rules: tuple[QCRule, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.mode not in QC_MODES:
            raise ConfigError(f"qc must be one of {', '.join(QC_MODES)}, not {self.mode!r}")
        rules = tuple(parse_rule(text) for text in self.fail_on)
        if rules and self.mode == "off":
            raise ConfigError("QC rules (qc_fail_on) need quality control: not qc='off'")
        for rule in rules:
            if not measures(self.mode, rule.column):
                needed = COLUMN_MODES[rule.column]
                modes = "'response' or 'decode'" if needed == "response" else "'decode'"
                raise ConfigError(
                    f"QC rule '{rule}': {rule.column} is not measured with qc='{self.mode}'; "
                    f"it needs qc={modes} (--qc {needed}, or [qc] mode in a pipeline file)"
                )
        object.__setattr__(self, "rules", rules)


@dataclass
class QCResult:
    """One recording's QC.

    Attributes:
        row: the qc table row (``None`` when QC is off).
        latencies: per prompt of the timeline, the response latency (NaN where none:
            the start prompt, no window, no response); ``None`` when not measured.
        decoded_frames: frames decoded for QC (its cost).
    """

    row: dict[str, Any] | None = None
    latencies: npt.NDArray[np.float64] | None = None
    decoded_frames: int = 0

    def table(self) -> pa.Table | None:
        """The one-row qc table, or ``None`` when QC is off."""
        return None if self.row is None else pa.Table.from_pylist([self.row], schema=QC_SCHEMA)


def measure(
    options: QCOptions,
    *,
    stream_id: str,
    video_file: str,
    timing: FrameTiming,
    timestamps_s: npt.NDArray[np.float64],
    timeline: PromptTimeline,
    events: pa.Table,
    video_duration_s: float,
    api_duration_s: float | None,
    prompt_lags_s: npt.ArrayLike | None,
    what: str,
) -> QCResult:
    """Measure one recording's QC (see :mod:`odyssey_data.qc` for the columns).

    Raises:
        DecodeError: the video cannot be decoded where QC looks at its pictures.
    """
    if options.mode == "off":
        return QCResult()
    row = empty_row(stream_id, options.mode)
    row.update(
        timing_row(
            timestamps_s,
            prompt_times_s=timeline.times_s,
            video_duration_s=video_duration_s,
            api_duration_s=api_duration_s,
            last_event_s=last_event_time(events),
            prompt_lags_s=prompt_lags_s,
        )
    )
    if options.mode == "reference":
        return QCResult(row=row)
    size = picture_size(timing.width, timing.height)
    windows = response_windows(timestamps_s, timeline.times_s)
    latencies, decoded = _latencies(video_file, timing, timestamps_s, timeline, size, what)
    measured = [latencies[w.prompt_index] for w in windows]
    row.update(summarise_latencies([None if np.isnan(v) else float(v) for v in measured]))
    if options.mode == "decode":
        frozen, more = _frozen_flags(video_file, timing, size, what)
        decoded += more
        row.update(frozen_stretches(frozen, timestamps_s, video_duration_s))
    return QCResult(row=row, latencies=latencies, decoded_frames=decoded)


def picture_size(width: int, height: int) -> tuple[int, int]:
    """The size QC compares pictures at: :data:`~odyssey_data.qc.PICTURE_WIDTH` wide,
    aspect kept (a narrower video keeps its size)."""
    if width <= PICTURE_WIDTH:
        return width, height
    return target_size((PICTURE_WIDTH, None), width, height)


def _latencies(
    video_file: str,
    timing: FrameTiming,
    timestamps_s: npt.NDArray[np.float64],
    timeline: PromptTimeline,
    size: tuple[int, int],
    what: str,
) -> tuple[npt.NDArray[np.float64], int]:
    """Per prompt, the visual response latency (NaN where none), and frames decoded."""
    out = np.full(len(timeline), np.nan, dtype=np.float64)
    windows = response_windows(timestamps_s, timeline.times_s)
    if not windows:
        return out, 0
    pts = timing.pts
    reference: dict[int, npt.NDArray[np.uint8]] = {}

    def visit(number: int, frame_pts: int, picture: npt.NDArray[np.uint8]) -> bool:
        window = windows[number]
        position = int(np.searchsorted(pts, frame_pts))
        if position >= pts.shape[0] or int(pts[position]) != frame_pts:
            return False  # not a frame of the timing (cannot happen with a sound file)
        if position == window.reference:
            reference[number] = picture
            return False
        if number not in reference:
            return True  # the reference frame was not presented: leave it unmeasured
        latency = response_latency(
            window, timestamps_s, position, changed_share(reference[number], picture)
        )
        if latency is None:
            return False
        out[window.prompt_index] = latency
        return True

    spans = [(int(pts[w.reference]), int(pts[w.last])) for w in windows]
    decoded = scan_windows(video_file, spans, visit, size=size, what=what)
    return out, decoded


def _frozen_flags(
    video_file: str, timing: FrameTiming, size: tuple[int, int], what: str
) -> tuple[npt.NDArray[np.bool_], int]:
    """Per frame, whether its picture is unchanged from the frame before; frames decoded."""
    pts = timing.pts
    frozen = np.zeros(pts.shape[0], dtype=bool)
    previous: npt.NDArray[np.uint8] | None = None
    decoded = 0
    for frame_pts, picture in decode_frames(video_file, size=size, threads=1, what=what):
        decoded += 1
        position = int(np.searchsorted(pts, frame_pts))
        if position < pts.shape[0] and int(pts[position]) == frame_pts and previous is not None:
            frozen[position] = changed_share(previous, picture) <= FROZEN_SHARE
        previous = picture
    return frozen, decoded


def check(options: QCOptions, result: QCResult, what: str, stream_id: str) -> None:
    """Apply the gate: raise when the recording breaks a rule.

    Raises:
        RecordingError: a rule is broken; the message names each rule and the value.
    """
    if result.row is None or not options.rules:
        return
    broken = broken_rules(options.rules, result.row)
    if broken:
        raise RecordingError(
            f"{what}: quality control: {'; '.join(broken)} (--qc-fail-on); it is not "
            "exported, and a re-run checks it again",
            stream_id=stream_id,
        )
