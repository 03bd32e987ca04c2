"""Tests of odyssey_data.align: the as-of join of frames and prompts, and segments."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from odyssey_data.align import (
    TIME_TOLERANCE_S,
    PromptTimeline,
    TickSelector,
    align_frames,
    build_segments,
    prompt_timeline,
    resample_positions,
)
from odyssey_data.errors import ConfigError
from odyssey_data.events import parse_events
from odyssey_data.schema import EVENTS_SCHEMA, SEGMENTS_SCHEMA


def timeline(*pairs: tuple[float, str]) -> PromptTimeline:
    return PromptTimeline(
        np.array([t for t, _ in pairs], dtype=np.float64), tuple(p for _, p in pairs)
    )


def frames(*times: float) -> npt.NDArray[np.float64]:
    return np.array(times, dtype=np.float64)


def aligned(ts: npt.NDArray[np.float64], tl: PromptTimeline) -> list[tuple[Any, Any, Any]]:
    prompt, index, when = align_frames(ts, tl)
    assert prompt.type == pa.string()
    assert index.type == pa.int32()
    assert when.type == pa.float64()
    assert len(prompt) == len(index) == len(when) == len(ts)
    return list(zip(prompt.to_pylist(), index.to_pylist(), when.to_pylist(), strict=True))


def segments(ts: npt.NDArray[np.float64], tl: PromptTimeline, end: float) -> list[dict[str, Any]]:
    table = build_segments("s1", ts, tl, end)
    assert table.schema.equals(SEGMENTS_SCHEMA)
    rows: list[dict[str, Any]] = table.to_pylist()
    # prompt_lag_s (issue 9) is null without a script to compare with, and
    # response_latency_s (issue 17) without quality control's measure.
    assert all(row.pop("prompt_lag_s") is None for row in rows)
    assert all(row.pop("response_latency_s") is None for row in rows)
    return rows


def assert_consistent(ts: npt.NDArray[np.float64], tl: PromptTimeline, end: float) -> None:
    """Segment i covers exactly the frames whose prompt_index is i."""
    _, index, _ = align_frames(ts, tl)
    ids = index.to_pylist()
    rows = segments(ts, tl, end)
    assert [row["prompt_index"] for row in rows] == list(range(len(tl)))
    for i, row in enumerate(rows):
        mine = [f for f, p in enumerate(ids) if p == i]
        assert row["frame_count"] == len(mine)
        if mine:
            assert (row["first_frame"], row["last_frame"]) == (mine[0], mine[-1])
            assert mine == list(range(mine[0], mine[-1] + 1))
        else:
            assert row["first_frame"] is None
            assert row["last_frame"] is None
    assert sum(row["frame_count"] for row in rows) == sum(p is not None for p in ids)


# -- prompt_timeline -------------------------------------------------------------------


def events_table(*objects: dict[str, Any]) -> pa.Table:
    lines = [json.dumps(obj).encode() for obj in objects]
    return parse_events(lines, stream_id="s1").table


def test_timeline_keeps_start_and_interact_prompts_in_order() -> None:
    table = events_table(
        {"type": "stream_started", "timestamp_ms": 0, "prompt": "a"},
        {"type": "interact", "timestamp_ms": 5230, "prompt": "b"},
        {"type": "interact_acknowledged", "timestamp_ms": 5410, "prompt": "b"},
        {"type": "interact", "timestamp_ms": 6000},
        {"type": "custom", "timestamp_ms": 6500, "prompt": "not a prompt"},
        {"timestamp_ms": 7000, "interact": {"prompt": "c"}},
        {"type": "stream_ended", "timestamp_ms": 9000, "prompt": "ignored"},
    )
    tl = prompt_timeline(table)
    assert len(tl) == 3
    assert tl.prompts == ("a", "b", "c")
    assert tl.times_s.tolist() == [0.0, 5.23, 7.0]
    assert not tl.times_s.flags.writeable


def test_timeline_of_an_empty_table() -> None:
    tl = prompt_timeline(EVENTS_SCHEMA.empty_table())
    assert len(tl) == 0
    assert tl.times_s.dtype == np.float64


def test_timeline_sorts_an_unsorted_table_stably() -> None:
    table = pa.table(
        {
            "time_s": [3.0, 1.0, 1.0, 2.0],
            "kind": ["interact", "interact", "start", None],
            "prompt": ["c", "b1", "b2", "x"],
        }
    )
    tl = prompt_timeline(table)
    assert tl.prompts == ("b1", "b2", "c")
    assert tl.times_s.tolist() == [1.0, 1.0, 3.0]


def test_timeline_validation() -> None:
    with pytest.raises(ConfigError, match="sorted"):
        timeline((2.0, "a"), (1.0, "b"))
    with pytest.raises(ConfigError, match="finite"):
        timeline((float("nan"), "a"))
    with pytest.raises(ConfigError, match="2 prompt times for 1"):
        PromptTimeline(np.array([0.0, 1.0]), ("a",))


# -- align_frames ----------------------------------------------------------------------


def test_frames_at_just_before_and_just_after_an_interaction() -> None:
    tl = timeline((0.0, "a"), (5.23, "b"))
    ts = frames(0.0, 5.229, 5.23, 5.231, 6.0)
    assert aligned(ts, tl) == [
        ("a", 0, 0.0),
        ("a", 0, 0.0),
        ("b", 1, 5.23),
        ("b", 1, 5.23),
        ("b", 1, 5.23),
    ]


def test_float_noise_between_clocks_is_tolerated() -> None:
    # A frame at pts 470700 in a 1/90000 time base vs an event at 5230 ms.
    tl = timeline((0.0, "a"), (5230 / 1000, "b"))
    ts = frames(470700 * (1 / 90000), 5.23 - TIME_TOLERANCE_S / 2, 5.23 - 10 * TIME_TOLERANCE_S)
    assert [row[1] for row in aligned(ts, tl)] == [1, 1, 0]


def test_frames_before_the_first_prompt_are_null() -> None:
    tl = timeline((1.0, "a"), (2.0, "b"))
    assert aligned(frames(0.0, 0.5, 0.999, 1.0, 2.5), tl) == [
        (None, None, None),
        (None, None, None),
        (None, None, None),
        ("a", 0, 1.0),
        ("b", 1, 2.0),
    ]


def test_empty_timeline_and_no_frames() -> None:
    empty = timeline()
    assert aligned(frames(0.0, 1.0), empty) == [(None, None, None)] * 2
    assert aligned(frames(), timeline((0.0, "a"))) == []
    assert aligned(frames(), empty) == []
    assert segments(frames(0.0, 1.0), empty, 2.0) == []


def test_equal_prompt_times_the_last_one_wins() -> None:
    tl = timeline((0.0, "a"), (2.0, "b1"), (2.0, "b2"), (2.0, "b3"), (3.0, "c"))
    ts = frames(0.0, 1.0, 2.0, 2.5, 3.0)
    assert [row[0] for row in aligned(ts, tl)] == ["a", "a", "b3", "b3", "c"]
    rows = segments(ts, tl, 4.0)
    assert [(r["start_s"], r["end_s"], r["frame_count"]) for r in rows] == [
        (0.0, 2.0, 2),
        (2.0, 2.0, 0),
        (2.0, 2.0, 0),
        (2.0, 3.0, 2),
        (3.0, 4.0, 1),
    ]
    assert_consistent(ts, tl, 4.0)


def test_vfr_timestamps() -> None:
    rng = np.random.default_rng(7)
    ts = np.cumsum(rng.uniform(0.005, 0.2, size=500)) - 0.005
    tl = timeline((0.0, "a"), (float(ts[100]), "b"), (float(ts[100] + 1e-4), "c"), (20.0, "d"))
    rows = aligned(ts, tl)
    assert rows[99][1] == 0
    assert rows[100][1] == 1
    assert rows[101][1] == 2
    assert_consistent(ts, tl, float(ts[-1]) + 0.05)


def test_many_frames_are_aligned_without_a_loop() -> None:
    ts = np.arange(300_000, dtype=np.float64) / 30.0
    tl = timeline(*((float(t), f"p{t}") for t in range(0, 10_000, 7)))
    prompt, index, when = align_frames(ts, tl)
    assert index.null_count == 0
    assert index[-1].as_py() == len(tl) - 1
    assert prompt[30 * 7].as_py() == "p7"
    assert when[30 * 7 - 1].as_py() == 0.0
    table = build_segments("s1", ts, tl, 10_000.0)
    assert sum(table["frame_count"].to_pylist()) == len(ts)


def test_align_validation() -> None:
    with pytest.raises(ConfigError, match="finite"):
        align_frames(frames(0.0, float("nan")), timeline((0.0, "a")))
    with pytest.raises(ConfigError, match="one-dimensional"):
        align_frames(np.zeros((2, 2)), timeline((0.0, "a")))


# -- build_segments --------------------------------------------------------------------


def test_segments() -> None:
    tl = timeline((0.0, "a"), (2.0, "b"), (4.0, "c"))
    ts = np.arange(0, 6, 0.5)
    rows = segments(ts, tl, 6.0)
    assert rows == [
        {
            "stream_id": "s1",
            "prompt_index": 0,
            "prompt": "a",
            "start_s": 0.0,
            "end_s": 2.0,
            "first_frame": 0,
            "last_frame": 3,
            "frame_count": 4,
        },
        {
            "stream_id": "s1",
            "prompt_index": 1,
            "prompt": "b",
            "start_s": 2.0,
            "end_s": 4.0,
            "first_frame": 4,
            "last_frame": 7,
            "frame_count": 4,
        },
        {
            "stream_id": "s1",
            "prompt_index": 2,
            "prompt": "c",
            "start_s": 4.0,
            "end_s": 6.0,
            "first_frame": 8,
            "last_frame": 11,
            "frame_count": 4,
        },
    ]


def test_prompt_after_the_end_of_the_video() -> None:
    tl = timeline((0.0, "a"), (10.0, "late"))
    ts = frames(0.0, 1.0, 2.0)
    rows = segments(ts, tl, 3.0)
    assert rows[0]["end_s"] == 10.0
    assert rows[0]["frame_count"] == 3
    late = rows[1]
    assert (late["start_s"], late["end_s"]) == (10.0, 10.0)
    assert (late["first_frame"], late["last_frame"], late["frame_count"]) == (None, None, 0)
    assert_consistent(ts, tl, 3.0)


def test_segments_validation() -> None:
    tl = timeline((0.0, "a"))
    with pytest.raises(ConfigError, match="sorted"):
        build_segments("s1", frames(1.0, 0.0), tl, 2.0)
    with pytest.raises(ConfigError, match="video_end_s"):
        build_segments("s1", frames(0.0), tl, float("inf"))


# -- property --------------------------------------------------------------------------

_times = st.floats(min_value=-5.0, max_value=50.0, allow_nan=False)
# Coarse grids make exact ties between frames and prompts likely.
_grid_times = st.integers(min_value=-20, max_value=200).map(lambda n: n / 4)


@settings(max_examples=300, deadline=None)
@given(
    frame_times=hnp.arrays(np.float64, st.integers(0, 60), elements=st.one_of(_times, _grid_times)),
    prompt_times=st.lists(st.one_of(_times, _grid_times), max_size=12),
    end=_times,
)
def test_alignment_property(
    frame_times: npt.NDArray[np.float64], prompt_times: list[float], end: float
) -> None:
    ts = np.sort(frame_times)
    tl = timeline(*((t, f"p{i}") for i, t in enumerate(sorted(prompt_times))))
    got = aligned(ts, tl)
    for frame, (prompt, index, when) in zip(ts.tolist(), got, strict=True):
        applicable = [i for i, t in enumerate(tl.times_s.tolist()) if t <= frame + TIME_TOLERANCE_S]
        expected = applicable[-1] if applicable else None
        assert index == expected
        if expected is None:
            assert (prompt, when) == (None, None)
        else:
            assert (prompt, when) == (tl.prompts[expected], tl.times_s[expected])
    assert_consistent(ts, tl, end)
    rows = segments(ts, tl, end)
    for i, row in enumerate(rows):
        assert row["start_s"] == tl.times_s[i]
        last = i == len(rows) - 1
        assert row["end_s"] == (max(end, row["start_s"]) if last else tl.times_s[i + 1])
        assert row["end_s"] >= row["start_s"]


@pytest.mark.parametrize("seed", range(40))
def test_tick_selector_keeps_what_resample_positions_keeps(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 300))
    kind = seed % 4
    if kind == 0:  # constant rate, fps a divisor or not
        times = np.arange(n) / 30.0
    elif kind == 1:  # variable rate
        times = np.concatenate(([0.0], np.cumsum(rng.uniform(0.01, 0.08, n - 1))))
    elif kind == 2:  # ties: frames exactly between ticks
        times = np.arange(n) * 0.05
    else:  # 90 kHz pts, as exported
        pts = np.concatenate(([0], np.cumsum(rng.integers(1500, 4500, n - 1))))
        times = pts.astype(np.float64) * 1 / 90000
    fps = float(rng.choice([1.0, 2.5, 10.0, 15.0, 20.0, 29.97, 30.0, 60.0, 240.0]))
    selector = TickSelector(fps)
    kept: list[int] = []
    for t in times:
        kept.extend(selector.feed(float(t)))
    kept.extend(selector.finish())
    assert kept == resample_positions(times, fps, unique=True).tolist()
