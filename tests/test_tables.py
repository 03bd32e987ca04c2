"""Tests of odyssey_data.tables: a recording's tables from values, without any video.

The timing is made by hand (as PyAV would read it: B-frame-free, non-zero first pts),
the events from log lines, so each test says exactly which frame gets which prompt.
"""

from __future__ import annotations

import json
from fractions import Fraction

import numpy as np
import pyarrow as pa
import pytest

from odyssey_data.errors import RecordingError
from odyssey_data.events import parse_events
from odyssey_data.models import RecordingInfo, ScriptEntry
from odyssey_data.schema import FRAMES_SCHEMA, RECORDINGS_SCHEMA
from odyssey_data.storage import FileEntry
from odyssey_data.tables import (
    align_recording,
    check_frame_count,
    recording_table,
    select_frames,
)
from odyssey_data.video import FrameTiming


def timing(n: int = 10, fps: int = 10, first_pts: int = 900) -> FrameTiming:
    """``n`` frames at ``fps`` on a 1/90000 clock, starting at ``first_pts``."""
    step = 90_000 // fps
    return FrameTiming(
        pts=np.arange(n, dtype=np.int64) * step + first_pts,
        is_keyframe=np.arange(n) % 5 == 0,
        time_base=Fraction(1, 90_000),
        width=64,
        height=36,
        codec="h264",
        method="demux",
    )


def log(*events: tuple[str, int, str]) -> bytes:
    return b"".join(
        json.dumps({"type": kind, "timestamp_ms": ms, "prompt": prompt}).encode() + b"\n"
        for kind, ms, prompt in events
    )


def events_of(data: bytes) -> pa.Table:
    return parse_events(data.splitlines(keepends=True), stream_id="s1").table


def test_frames_align_to_the_prompt_in_force() -> None:
    events = events_of(log(("start", 0, "a cat"), ("interact", 450, "the cat jumps")))
    aligned = align_recording("s1", timing(), events, video_path="videos/s1.mp4")
    frames = aligned.frames
    assert frames.schema == FRAMES_SCHEMA
    assert frames["frame_index"].to_pylist() == list(range(10))
    assert frames["timestamp_s"].to_pylist() == pytest.approx([i / 10 for i in range(10)])
    assert frames["pts"].to_pylist()[0] == 900
    # 0.0-0.4 s: the start prompt; from 0.5 s (after 450 ms): the interaction.
    assert frames["prompt"].to_pylist() == ["a cat"] * 5 + ["the cat jumps"] * 5
    assert set(frames["video_path"].to_pylist()) == {"videos/s1.mp4"}
    assert aligned.video_end_s == pytest.approx(1.0)  # last frame + one interval
    assert aligned.lags is None
    assert len(aligned.timeline) == 2


def test_frames_before_the_first_prompt_have_none() -> None:
    events = events_of(log(("start", 250, "late")))
    aligned = align_recording("s1", timing(), events, video_path="v")
    assert aligned.frames["prompt"].to_pylist() == [None] * 3 + ["late"] * 7


def test_a_script_is_the_ground_truth_and_the_log_gives_the_lag() -> None:
    script = (
        ScriptEntry.from_json({"timestamp_ms": 0, "start": {"prompt": "one"}}, what="s"),
        ScriptEntry.from_json({"timestamp_ms": 300, "interact": {"prompt": "two"}}, what="s"),
    )
    # The log says the second prompt was issued 100 ms late.
    events = events_of(log(("start", 0, "one"), ("interact", 400, "two")))
    aligned = align_recording(
        "s1",
        timing(),
        events,
        video_path="v",
        script=script,
    )
    assert aligned.frames["prompt"].to_pylist() == ["one"] * 3 + ["two"] * 7
    assert aligned.lags is not None
    assert aligned.lags.tolist() == pytest.approx([0.0, 0.1])
    assert sorted(set(aligned.events["origin"].to_pylist())) == ["log", "script"]
    assert aligned.events["event_index"].to_pylist() == list(range(4))


def test_fps_keeps_the_frames_it_asks_for() -> None:
    aligned = align_recording("s1", timing(n=30, fps=30), events_of(b""), video_path="v")
    kept = select_frames(aligned, 10.0)
    assert kept["frame_index"].to_pylist() == [0, 3, 6, 9, 12, 15, 18, 21, 24, 27]
    assert select_frames(aligned, None) is aligned.frames


def test_frame_count_checks() -> None:
    assert check_frame_count(10, None, "recording 's1'", "s1") == ()
    assert check_frame_count(10, 10, "recording 's1'", "s1") == ()
    (warning,) = check_frame_count(11, 10, "recording 's1'", "s1")
    assert "holds 11 frames, the API announces 10" in warning
    with pytest.raises(RecordingError, match="incomplete"):
        check_frame_count(9, 10, "recording 's1'", "s1")


def test_the_recordings_row() -> None:
    t = timing()
    aligned = align_recording(
        "s1", t, events_of(log(("start", 0, "a"))), video_path="videos/s1.mp4"
    )
    video = FileEntry("videos/s1.mp4", "video", None, 1234, "ab" * 32)
    thumb = FileEntry("videos/s1.thumbnail.jpg", "thumbnail", None, 10, "cd" * 32)
    table = recording_table(
        RecordingInfo(stream_id="s1", duration_seconds=None),
        t,
        aligned,
        video=video,
        api_duration_s=1.0,
        bad_event_lines=2,
        extra_files=(thumb,),
        options_json='{"frames":"reference"}',
    )
    assert table.schema == RECORDINGS_SCHEMA
    (row,) = table.to_pylist()
    assert row["frame_count"] == 10
    assert (row["width"], row["height"]) == (64, 36)  # the video's, the API gave none
    assert (row["video_path"], row["video_bytes"]) == ("videos/s1.mp4", 1234)
    assert row["time_base"] == "1/90000"
    assert (row["first_pts"], row["bad_event_lines"], row["prompts_count"]) == (900, 2, 1)
    assert row["thumbnail_path"] == "videos/s1.thumbnail.jpg"
    assert row["preview_path"] is None
    assert row["export_options"] == '{"frames":"reference"}'
