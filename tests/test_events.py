"""Tests of odyssey_data.events: the three log shapes, normalisation, bad lines."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from odyssey_data.errors import ConfigError
from odyssey_data.events import MAX_WARNINGS, ParsedEvents, normalize_kind, parse_events
from odyssey_data.schema import EVENTS_SCHEMA

T0 = datetime(2026, 11, 20, 10, 0, 0, tzinfo=UTC)


def lines_of(*objects: Any) -> list[bytes]:
    """JSONL lines, each ending with a newline."""
    return [json.dumps(obj).encode() + b"\n" for obj in objects]


def iso(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


def parse(lines: list[bytes], **kwargs: Any) -> ParsedEvents:
    return parse_events(lines, stream_id=kwargs.pop("stream_id", "s1"), **kwargs)


def column(parsed: ParsedEvents, name: str) -> list[Any]:
    return list(parsed.table[name].to_pylist())


# -- the three shapes ------------------------------------------------------------------


def test_flat_shape() -> None:
    parsed = parse(
        lines_of(
            {"type": "stream_started", "timestamp_ms": 0, "prompt": "A cat"},
            {"type": "interact", "timestamp_ms": 5230, "prompt": "The cat yawns"},
            {"type": "interact_acknowledged", "timestamp_ms": 5410, "prompt": "The cat yawns"},
            {"type": "stream_ended", "timestamp_ms": 12000},
        )
    )
    assert parsed.table.schema.equals(EVENTS_SCHEMA)
    assert parsed.count == 4
    assert parsed.bad_lines == 0
    assert parsed.warnings == ()
    assert column(parsed, "stream_id") == ["s1"] * 4
    assert column(parsed, "event_index") == [0, 1, 2, 3]
    assert column(parsed, "time_s") == [0.0, 5.23, 5.41, 12.0]
    assert column(parsed, "kind") == ["start", "interact", "interact_acknowledged", "end"]
    assert column(parsed, "prompt") == ["A cat", "The cat yawns", "The cat yawns", None]


def test_wall_clock_shape_with_stream_started_origin() -> None:
    parsed = parse(
        lines_of(
            {"event": "stream_started", "timestamp": iso(0), "data": {"prompt": "A cat"}},
            {"event": "interact", "timestamp": iso(5.23), "data": {"prompt": "yawn"}},
            {"event": "stream_ended", "timestamp": iso(12), "data": {}},
        ),
        # started_at is a second earlier: the stream_started event wins.
        started_at=T0 - timedelta(seconds=1),
    )
    assert column(parsed, "time_s") == [0.0, 5.23, 12.0]
    assert column(parsed, "kind") == ["start", "interact", "end"]
    assert column(parsed, "prompt") == ["A cat", "yawn", None]
    assert parsed.warnings == ()


def test_wall_clock_origin_is_the_earliest_start_event() -> None:
    parsed = parse(
        lines_of(
            {"event": "interact", "timestamp": iso(5), "data": {"prompt": "b"}},
            {"event": "stream_started", "timestamp": iso(2), "data": {"prompt": "late start"}},
            {"event": "stream_started", "timestamp": iso(1), "data": {"prompt": "a"}},
        )
    )
    assert column(parsed, "time_s") == [0.0, 1.0, 4.0]
    assert column(parsed, "prompt") == ["a", "late start", "b"]


def test_wall_clock_origin_from_started_at() -> None:
    parsed = parse(
        lines_of({"event": "interact", "timestamp": iso(5.5), "data": {"prompt": "p"}}),
        started_at=T0,
    )
    assert column(parsed, "time_s") == [5.5]
    assert parsed.warnings == ()


def test_naive_started_at_is_utc_and_offsets_are_honoured() -> None:
    paris = timezone(timedelta(hours=1))
    stamp = (T0 + timedelta(seconds=3)).astimezone(paris).isoformat()
    assert stamp.endswith("+01:00")
    parsed = parse(
        lines_of({"event": "interact", "timestamp": stamp}),
        started_at=T0.replace(tzinfo=None),
    )
    assert column(parsed, "time_s") == [3.0]


def test_wall_clock_origin_fallback_warns() -> None:
    parsed = parse(
        lines_of(
            {"event": "interact", "timestamp": iso(7), "data": {"prompt": "b"}},
            {"event": "interact", "timestamp": iso(4), "data": {"prompt": "a"}},
        )
    )
    assert column(parsed, "time_s") == [0.0, 3.0]
    assert parsed.bad_lines == 0
    assert len(parsed.warnings) == 1
    assert "earliest" in parsed.warnings[0]


def test_script_shape() -> None:
    parsed = parse(
        lines_of(
            {"timestamp_ms": 0, "start": {"prompt": "A forest"}},
            {"timestamp_ms": 5000, "interact": {"prompt": "Rain falls"}},
            {"timestamp_ms": 10000, "end": {}},
        )
    )
    assert column(parsed, "kind") == ["start", "interact", "end"]
    assert column(parsed, "prompt") == ["A forest", "Rain falls", None]
    assert column(parsed, "time_s") == [0.0, 5.0, 10.0]


def test_mixed_shapes_in_one_log() -> None:
    parsed = parse(
        lines_of(
            {"type": "stream_started", "timestamp_ms": 0, "prompt": "a"},
            {"event": "interact", "timestamp": iso(2), "data": {"prompt": "b"}},
            {"timestamp_ms": 3000, "interact": {"prompt": "c"}},
            {"kind": "interact_acknowledged", "time_ms": 3100},
            {"timestamp_ms": 4000, "end": {}},
        ),
        started_at=T0,
    )
    assert column(parsed, "kind") == [
        "start",
        "interact",
        "interact",
        "interact_acknowledged",
        "end",
    ]
    assert column(parsed, "prompt") == ["a", "b", "c", None, None]
    assert column(parsed, "time_s") == [0.0, 2.0, 3.0, 3.1, 4.0]


def test_reads_a_binary_file_with_crlf_bom_and_no_final_newline() -> None:
    data = (
        b'\xef\xbb\xbf{"type": "start", "timestamp_ms": 0, "prompt": "a"}\r\n'
        b"\r\n"
        b'{"type": "interact", "timestamp_ms": 1500, "prompt": "b"}'
    )
    parsed = parse(list(io.BytesIO(data)))
    assert parsed.bad_lines == 0
    assert column(parsed, "prompt") == ["a", "b"]
    assert column(parsed, "raw")[0] == '{"type": "start", "timestamp_ms": 0, "prompt": "a"}'


# -- fields ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("stream_started", "start"),
        ("start", "start"),
        ("started", "start"),
        ("Stream_Started", "start"),
        ("interact", "interact"),
        ("interact_acknowledged", "interact_acknowledged"),
        ("stream_ended", "end"),
        ("end", "end"),
        ("ended", "end"),
        ("frame_dropped", "frame_dropped"),
        ("Custom Thing", "Custom Thing"),
    ],
)
def test_kind_normalisation(name: str, kind: str) -> None:
    assert normalize_kind(name) == kind
    parsed = parse(lines_of({"type": name, "timestamp_ms": 1}))
    assert column(parsed, "kind") == [kind]


def test_unknown_kinds_are_kept_and_missing_kind_is_unknown() -> None:
    parsed = parse(
        lines_of(
            {"type": "stream_paused", "timestamp_ms": 1},
            {"timestamp_ms": 2, "note": "no kind at all"},
            {"type": "", "timestamp_ms": 3},
            {"timestamp_ms": 4, "interact": "a string, not an object"},
        )
    )
    assert parsed.bad_lines == 0
    assert column(parsed, "kind") == ["stream_paused", "unknown", "unknown", "unknown"]


def test_kind_and_prompt_precedence() -> None:
    parsed = parse(
        lines_of(
            {"type": "interact", "event": "end", "kind": "start", "timestamp_ms": 1},
            {"event": "end", "kind": "start", "timestamp_ms": 2},
            {"kind": "start", "interact": {}, "timestamp_ms": 3},
            {"type": None, "interact": {"prompt": "p"}, "timestamp_ms": 4},
            {
                "type": "interact",
                "prompt": "top",
                "data": {"prompt": "data"},
                "interact": {"prompt": "payload"},
                "timestamp_ms": 5,
            },
            {"type": "interact", "data": {"prompt": "data"}, "interact": {"prompt": "x"}},
            {"type": "interact", "prompt": None, "interact": {"prompt": "payload"}},
        )
    )
    # The last two lines have no time: bad.
    assert parsed.bad_lines == 2
    assert column(parsed, "kind") == ["interact", "end", "start", "interact", "interact"]
    assert column(parsed, "prompt") == [None, None, None, "p", "top"]


def test_time_fields() -> None:
    parsed = parse(
        lines_of(
            {"type": "a", "time_ms": 1500},
            {"type": "b", "timestamp_ms": 250.5, "time_ms": 99999},
            {"type": "c", "timestamp_ms": 3000, "timestamp": iso(100)},
            {"type": "d", "timestamp_ms": None, "time_ms": 4000},
        )
    )
    assert parsed.bad_lines == 0
    assert column(parsed, "kind") == ["b", "a", "c", "d"]
    assert column(parsed, "time_s") == [0.2505, 1.5, 3.0, 4.0]


def test_unix_times_are_wall_clock_times() -> None:
    epoch_s = T0.timestamp()
    parsed = parse(
        lines_of(
            {"type": "stream_started", "timestamp_ms": int(epoch_s * 1000) + 500, "prompt": "a"},
            {"type": "interact", "timestamp": epoch_s + 2.5, "prompt": "b"},
            {"type": "interact", "timestamp": int(epoch_s * 1000) + 4000, "prompt": "c"},
            {"type": "interact", "timestamp": iso(5.5), "prompt": "d"},
            {"type": "interact_acknowledged", "timestamp_ms": 6000},
        ),
        started_at=T0,
    )
    assert parsed.bad_lines == 0
    # The origin is the stream_started event, half a second after started_at.
    assert column(parsed, "time_s") == [0.0, 2.0, 3.5, 5.0, 6.0]
    assert column(parsed, "prompt") == ["a", "b", "c", "d", None]


def test_empty_prompt_is_a_string() -> None:
    parsed = parse(lines_of({"type": "interact", "timestamp_ms": 1, "prompt": ""}))
    assert column(parsed, "prompt") == [""]


def test_out_of_order_and_equal_times_sort_stably() -> None:
    objects = [
        {"type": "interact", "timestamp_ms": 3000, "prompt": "c"},
        {"type": "start", "timestamp_ms": 0, "prompt": "a"},
        {"type": "interact", "timestamp_ms": 1000, "prompt": "b1"},
        {"type": "interact", "timestamp_ms": 1000, "prompt": "b2"},
        {"type": "interact_acknowledged", "timestamp_ms": 1000, "prompt": "b1"},
        {"type": "interact", "timestamp_ms": 1000, "prompt": "b3"},
    ]
    parsed = parse(lines_of(*objects))
    assert column(parsed, "event_index") == list(range(6))
    assert column(parsed, "time_s") == [0.0, 1.0, 1.0, 1.0, 1.0, 3.0]
    assert column(parsed, "prompt") == ["a", "b1", "b2", "b1", "b3", "c"]
    assert column(parsed, "kind")[3] == "interact_acknowledged"


def test_offset_is_added_to_every_time() -> None:
    objects = [
        {"type": "start", "timestamp_ms": 0, "prompt": "a"},
        {"event": "interact", "timestamp": iso(2), "data": {"prompt": "b"}},
    ]
    parsed = parse(lines_of(*objects), started_at=T0, offset_s=-0.25)
    assert column(parsed, "time_s") == [-0.25, 1.75]
    parsed = parse(lines_of(*objects), started_at=T0, offset_s=1.5)
    assert column(parsed, "time_s") == [1.5, 3.5]


@pytest.mark.parametrize("offset", [float("nan"), float("inf")])
def test_non_finite_offset_is_a_config_error(offset: float) -> None:
    with pytest.raises(ConfigError):
        parse([], offset_s=offset)


def test_raw_round_trips() -> None:
    objects = [
        {"type": "interact", "timestamp_ms": 2, "prompt": "é ü 猫 🐈", "extra": [1, {"x": None}]},
        {"event": "stream_started", "timestamp": iso(0), "data": {"prompt": "a\nb"}},
        {"timestamp_ms": 1, "interact": {"prompt": "p", "strength": 0.5}},
    ]
    data = [json.dumps(obj, ensure_ascii=False).encode() + b"  \n" for obj in objects]
    parsed = parse(data)
    raws = column(parsed, "raw")
    assert [json.loads(raw) for raw in raws] == [objects[1], objects[2], objects[0]]
    assert all(raw == raw.rstrip() for raw in raws)


# -- bad lines -------------------------------------------------------------------------


def test_empty_log() -> None:
    for lines in ([], [b""], [b"\n", b"   \n", b"\r\n"]):
        parsed = parse(lines)
        assert parsed.count == 0
        assert parsed.bad_lines == 0
        assert parsed.warnings == ()
        assert parsed.table.schema.equals(EVENTS_SCHEMA)


GOOD = b'{"type": "interact", "timestamp_ms": 1000, "prompt": "ok"}\n'


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"not json at all\n", "not JSON"),
        (b'{"type": "interact", "timestamp_ms": 20', "not JSON"),
        (b'{"type": "interact", "timestamp_ms": 1, "prompt": "caf\xe9"}\n', "invalid UTF-8"),
        (b"\xff\xfe\xfa\n", "invalid UTF-8"),
        (b"[1, 2, 3]\n", "not a JSON object"),
        (b'"a string"\n', "not a JSON object"),
        (b"42\n", "not a JSON object"),
        (b"null\n", "not a JSON object"),
        (b'{"type": "interact", "prompt": "no time"}\n', "no time"),
        (b'{"type": "interact", "timestamp_ms": "1000"}\n', "not a number"),
        (b'{"type": "interact", "timestamp_ms": true}\n', "not a number"),
        (b'{"type": "interact", "time_ms": [1]}\n', "not a number"),
        (b'{"type": "interact", "timestamp_ms": NaN}\n', "not JSON"),
        (b'{"type": "interact", "timestamp_ms": -Infinity}\n', "not JSON"),
        (b'{"type": "interact", "timestamp_ms": 1e400}\n', "not a finite number"),
        (b'{"type": "interact", "timestamp": 5230}\n', "ambiguous"),
        (b'{"type": "interact", "timestamp": 5.23}\n', "ambiguous"),
        (b'{"type": "interact", "timestamp": 170000000000}\n', "ambiguous"),
        (b'{"type": "interact", "timestamp": 1e300}\n', "ambiguous"),
        (b'{"type": "interact", "timestamp_ms": 1e300}\n', "out of range"),
        (b'{"type": "interact", "timestamp_ms": 1' + b"0" * 400 + b"}\n", "not a finite"),
        (b'{"type": "interact", "timestamp": "yesterday"}\n', "not ISO 8601"),
        (b'{"type": "interact", "timestamp": {"s": 1}}\n', "not a string"),
        (b'{"type": "interact", "timestamp_ms": 1, "prompt": 5}\n', "'prompt' is int"),
        (b'{"type": "interact", "timestamp_ms": 1, "prompt": ["a"]}\n', "'prompt' is list"),
        (b'{"event": "interact", "timestamp_ms": 1, "data": {"prompt": {}}}\n', "data.prompt"),
        (b'{"timestamp_ms": 1, "interact": {"prompt": false}}\n', "interact.prompt"),
        (b'{"type": 7, "timestamp_ms": 1}\n', "'type' is int"),
        (b'{"timestamp_ms": 1, "start": {}, "end": {}}\n', "ambiguous kind"),
        (b'{"type": "interact", "timestamp_ms": 1, "prompt": "\\ud800"}\n', "lone surrogate"),
        (b"[" * 100_000 + b"\n", "not JSON"),
    ],
)
def test_bad_line_is_counted_and_good_lines_kept(line: bytes, reason: str) -> None:
    parsed = parse([GOOD, line, GOOD])
    assert parsed.count == 2
    assert parsed.bad_lines == 1
    assert len(parsed.warnings) == 1
    assert parsed.warnings[0].startswith("events line 2: ")
    assert reason in parsed.warnings[0]
    assert column(parsed, "prompt") == ["ok", "ok"]


def test_cut_final_line_is_just_a_bad_line() -> None:
    data = GOOD + GOOD + b'{"type": "interact", "timestamp_ms": 3000, "pro'
    parsed = parse(list(io.BytesIO(data)))
    assert (parsed.count, parsed.bad_lines) == (2, 1)
    assert parsed.warnings[0].startswith("events line 3: not JSON")


def test_huge_line_is_not_parsed() -> None:
    huge = json.dumps({"type": "interact", "timestamp_ms": 5, "prompt": "x" * 5000}).encode()
    parsed = parse([GOOD, huge + b"\n", GOOD], max_line_bytes=1000)
    assert (parsed.count, parsed.bad_lines) == (2, 1)
    assert "longer than 1000 bytes" in parsed.warnings[0]
    # The limit counts the line without its line break.
    exact = b'{"type": "a", "timestamp_ms": 1}'
    parsed = parse([exact + b"\r\n"], max_line_bytes=len(exact))
    assert (parsed.count, parsed.bad_lines) == (1, 0)


def test_huge_line_at_the_default_limit() -> None:
    line = b'{"type": "a", "timestamp_ms": 1, "prompt": "' + b"x" * 1_048_576 + b'"}\n'
    parsed = parse([line, GOOD])
    assert (parsed.count, parsed.bad_lines) == (1, 1)


def test_warnings_are_bounded_and_short() -> None:
    lines = [GOOD] + [b"x" * 10_000 + b"\n"] * 100 + [GOOD]
    parsed = parse(lines)
    assert (parsed.count, parsed.bad_lines) == (2, 100)
    assert len(parsed.warnings) == MAX_WARNINGS + 1
    assert [w.split(":")[0] for w in parsed.warnings[:3]] == [
        "events line 2",
        "events line 3",
        "events line 4",
    ]
    assert "80 more bad lines" in parsed.warnings[-1]
    assert all(len(w) < 160 for w in parsed.warnings)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.binary(max_size=60),
            st.builds(
                lambda obj: json.dumps(obj).encode(),
                st.dictionaries(
                    st.sampled_from(
                        ["type", "event", "timestamp_ms", "time_ms", "timestamp", "prompt", "data"]
                    ),
                    st.one_of(
                        st.none(),
                        st.booleans(),
                        st.integers(),
                        st.floats(allow_nan=False),
                        st.text(max_size=10),
                        st.just({"prompt": "p"}),
                        st.just("2026-11-20T10:00:00Z"),
                    ),
                ),
            ),
        ),
        max_size=15,
    )
)
def test_never_raises_and_accounts_for_every_line(lines: list[bytes]) -> None:
    parsed = parse(lines, max_line_bytes=50)
    blank = sum(1 for line in lines if not line.strip())
    assert parsed.count + parsed.bad_lines == len(lines) - blank
    assert parsed.table.schema.equals(EVENTS_SCHEMA)
    times = column(parsed, "time_s")
    assert times == sorted(times)
    for raw in column(parsed, "raw"):
        assert isinstance(json.loads(raw), dict)
