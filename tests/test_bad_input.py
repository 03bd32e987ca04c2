"""Bad videos and events logs, served by the demo server: each fails or is counted alone.

One export over a catalog of one good recording and one recording per kind of bad input
(the bytes served are overridden); every test checks one recording's outcome.
"""

from __future__ import annotations

import dataclasses
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from bad_media import BASE, bad_videos, lines
from conftest import export_config

from odyssey_data.demo import DemoCatalog, DemoRecording, DemoServer
from odyssey_data.errors import DecodeError
from odyssey_data.events import DEFAULT_MAX_LINE_BYTES
from odyssey_data.pipeline import ExportReport, export
from odyssey_data.video import probe_frames


def good_events() -> list[dict[str, Any]]:
    return BASE.events()


@dataclass(frozen=True)
class Case:
    """One bad input and what must come of it."""

    video: bytes | None = None  # None: the good video
    events: bytes | None = None  # None: the good events log
    failed: str | None = None  # the reason's telling part, when the recording must fail
    bad_lines: int = 0
    events_count: int | None = None
    prompts: int | None = None


def cases() -> dict[str, Case]:
    events = good_events()
    n = len(events)
    prompts = len(BASE.prompts)
    late = {"type": "interact", "timestamp_ms": 60_000, "prompt": "Long after the end"}
    huge = {"type": "interact", "timestamp_ms": 10, "prompt": "x" * (DEFAULT_MAX_LINE_BYTES + 10)}
    made = {
        name: Case(video=video, failed=reason) for name, (video, reason) in bad_videos().items()
    }
    return (
        made
        | {
            "events-empty": Case(events=b"", events_count=0, prompts=0),
            "events-not-json": Case(
                events=b"<html>\n<body>Bad Gateway</body>\n</html>\n",
                bad_lines=3,
                events_count=0,
                prompts=0,
            ),
            "events-cut-last-line": Case(
                events=lines(*events)[:-12], bad_lines=1, events_count=n - 1, prompts=prompts
            ),
            "events-invalid-utf8": Case(
                events=lines(*events[:2])
                + b'{"type": "interact", "timestamp_ms": 100, "prompt": "caf\xe9"}\n'
                + lines(*events[2:]),
                bad_lines=1,
                events_count=n,
                prompts=prompts,
            ),
            "events-wrong-types": Case(
                events=lines(
                    *events,
                    {"type": "interact", "timestamp_ms": 120, "prompt": 5},
                    {"type": "interact", "timestamp_ms": "soon", "prompt": "p"},
                    {"type": ["interact"], "timestamp_ms": 130},
                ),
                bad_lines=3,
                events_count=n,
                prompts=prompts,
            ),
            "events-out-of-order-and-duplicated": Case(
                events=lines(*reversed(events), events[1], events[0]),
                events_count=n + 2,
                prompts=prompts + 2,  # the start and first interact prompts, twice each
            ),
            "events-beyond-the-end": Case(
                events=lines(*events, late), events_count=n + 1, prompts=prompts + 1
            ),
            "events-without-prompts": Case(
                events=lines(
                    {"type": "stream_started", "timestamp_ms": 0},
                    {"type": "heartbeat", "timestamp_ms": 500},
                    {"type": "stream_ended", "timestamp_ms": 1000},
                ),
                events_count=3,
                prompts=0,
            ),
            "events-huge-line": Case(
                events=lines(events[0], huge, *events[1:]),
                bad_lines=1,
                events_count=n,
                prompts=prompts,
            ),
        }
    )


@dataclass
class Outcome:
    report: ExportReport
    manifest: dict[str, Any]
    recordings: pa.Table
    frames: pa.Table
    events: pa.Table
    segments: pa.Table
    cases: dict[str, Case]
    server: DemoServer


def read(output: Path, table: str) -> pa.Table:
    return pa.concat_tables(pq.read_table(p) for p in sorted((output / table).glob("*.parquet")))


@pytest.fixture(scope="module")
def outcome(tmp_path_factory: pytest.TempPathFactory) -> Any:
    made = cases()
    recordings: list[DemoRecording] = [dataclasses.replace(BASE, stream_id="good")]
    for name, case in made.items():
        recordings.append(
            dataclasses.replace(
                BASE,
                stream_id=name,
                video_override=case.video if case.video is not None else BASE.video_bytes(),
                events_override=case.events if case.events is not None else BASE.events_bytes(),
            )
        )
    output = tmp_path_factory.mktemp("bad-input") / "out"
    with DemoServer(DemoCatalog(recordings), page_cap=5) as server:
        report = export(export_config(server, output))
        yield Outcome(
            report,
            json.loads((output / "manifest.json").read_text()),
            read(output, "recordings"),
            read(output, "frames"),
            read(output, "events"),
            read(output, "segments"),
            made,
            server,
        )


def rows(table: pa.Table, stream_id: str) -> pa.Table:
    return table.filter(pc.equal(table["stream_id"], stream_id))


def test_each_bad_recording_is_counted_once(outcome: Outcome) -> None:
    failing = [name for name, case in outcome.cases.items() if case.failed]
    assert outcome.report.failed == len(failing)
    assert outcome.report.exported == 1 + len(outcome.cases) - len(failing)
    assert sorted(sid for sid, _, _ in outcome.report.problems) == sorted(failing)
    assert outcome.report.bad_event_lines == sum(c.bad_lines for c in outcome.cases.values())


@pytest.mark.parametrize("name", [name for name, case in cases().items() if case.failed])
def test_bad_video_fails_that_recording_with_its_reason(outcome: Outcome, name: str) -> None:
    case = outcome.cases[name]
    entry = outcome.manifest["recordings"][name]
    assert entry["status"] == "failed"
    assert entry["reason"].startswith(f"recording {name!r}")
    assert case.failed is not None
    assert case.failed in entry["reason"]
    # Nothing of it reached the tables: never exported as a shorter recording.
    for table in (outcome.recordings, outcome.frames, outcome.events, outcome.segments):
        assert rows(table, name).num_rows == 0


@pytest.mark.parametrize("name", [name for name, case in cases().items() if not case.failed])
def test_bad_events_log_keeps_the_recording_and_counts_bad_lines(
    outcome: Outcome, name: str
) -> None:
    case = outcome.cases[name]
    [row] = rows(outcome.recordings, name).to_pylist()
    assert row["bad_event_lines"] == case.bad_lines
    assert row["events_count"] == case.events_count == rows(outcome.events, name).num_rows
    assert row["prompts_count"] == case.prompts
    assert outcome.manifest["recordings"][name]["bad_event_lines"] == case.bad_lines
    # Every frame is there whatever the log held; the good lines still align.
    frames = rows(outcome.frames, name)
    assert frames.num_rows == BASE.frame_count
    good = rows(outcome.frames, "good")
    events = rows(outcome.events, name)
    assert events["time_s"].to_pylist() == sorted(events["time_s"].to_pylist())
    if case.prompts == 0:
        assert frames["prompt"].null_count == frames.num_rows
    elif name != "events-out-of-order-and-duplicated":
        assert frames["prompt"].to_pylist() == good["prompt"].to_pylist()


def test_events_beyond_the_end_are_kept_with_an_empty_segment(outcome: Outcome) -> None:
    name = "events-beyond-the-end"
    events = rows(outcome.events, name)
    assert events["time_s"].to_pylist()[-1] == pytest.approx(60.0)
    late = rows(outcome.segments, name).to_pylist()[-1]
    assert late["prompt"] == "Long after the end"
    assert late["frame_count"] == 0


def test_duplicated_events_are_both_kept(outcome: Outcome) -> None:
    name = "events-out-of-order-and-duplicated"
    raw = rows(outcome.events, name)["raw"].to_pylist()
    assert len(raw) == len(set(raw)) + 2
    frames = rows(outcome.frames, name)
    good = rows(outcome.frames, "good")
    assert frames["prompt"].to_pylist() == good["prompt"].to_pylist()


def test_bad_line_warnings_reach_the_manifest(outcome: Outcome) -> None:
    warnings = outcome.manifest["recordings"]["events-invalid-utf8"]["warnings"]
    assert any("invalid UTF-8" in w for w in warnings)
    warnings = outcome.manifest["recordings"]["events-huge-line"]["warnings"]
    assert any("longer than" in w for w in warnings)


@pytest.mark.parametrize("mode", ["auto", "demux", "decode"])
def test_probe_refuses_a_cut_fast_start_mp4_that_still_decodes(mode: str) -> None:
    good = BASE.video_bytes()
    assert good is not None
    for keep in (0.98, 0.8, 0.5):
        cut = good[: int(len(good) * keep)]
        with pytest.raises(DecodeError, match="truncated"):
            probe_frames(io.BytesIO(cut), what="recording 'x'", mode=mode)  # type: ignore[arg-type]
    assert probe_frames(io.BytesIO(good), mode=mode).frame_count == BASE.frame_count  # type: ignore[arg-type]
