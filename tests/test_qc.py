"""Quality control (issue 17): the pure measures, the demo server's injected defects
measured end to end over real HTTP, the gate, and the surfaces (CLI, pipeline files,
``Dataset.qc``, ``inspect``, ``verify``).

The defect recordings run at a constant 30 frames/s (every interval 3000 ticks of
1/90000 s), so each injected defect has a size known in advance: the values below come
from the defect's definition, not from the code under test.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pytest
from conftest import DemoExport, export_config

from odyssey_data import open_dataset
from odyssey_data.cli import main
from odyssey_data.demo import DemoCatalog, DemoDefects, DemoRecording, DemoServer
from odyssey_data.demo.synth import DEMO_EPOCH, make_demo_recording
from odyssey_data.errors import ConfigError
from odyssey_data.jobfile import parse_job
from odyssey_data.measure import QCOptions, picture_size
from odyssey_data.pipeline import ExportReport, export
from odyssey_data.qc import (
    GAP_FACTOR,
    QCRule,
    ResponseWindow,
    broken_rules,
    changed_share,
    frozen_stretches,
    parse_rule,
    response_latency,
    response_windows,
    summarise_latencies,
    timing_row,
)
from odyssey_data.schema import QC_SCHEMA

FRAME = 1 / 30  # one frame at the defect recordings' constant rate
US = 1e-6  # "to the microsecond"


# -- the pure measures -------------------------------------------------------------------


def steady(n: int, interval: float = FRAME) -> np.ndarray:
    return np.arange(n, dtype=np.float64) * interval


class TestTimingRow:
    def test_steady_video_without_defects(self) -> None:
        row = timing_row(
            steady(90),
            prompt_times_s=np.array([0.0, 1.0]),
            video_duration_s=3.0,
            api_duration_s=3.0,
            last_event_s=3.0,
            prompt_lags_s=None,
        )
        assert row["frames"] == 90
        assert row["span_s"] == pytest.approx(89 / 30, abs=US)
        for name in ("interval_p50_s", "interval_p99_s", "interval_max_s"):
            assert row[name] == pytest.approx(FRAME, abs=US)
        assert row["gaps"] == 0
        assert row["frames_before_first_prompt"] == 0
        assert row["api_duration_delta_s"] == 0.0
        assert row["events_span_delta_s"] == 0.0
        assert row["prompts"] == 2
        assert row["prompts_per_minute"] == pytest.approx(40.0)
        assert row["prompt_lag_max_s"] is None

    def test_gaps_are_intervals_longer_than_the_factor_times_the_median(self) -> None:
        ts = steady(100)
        ts[50:] += 4 * FRAME  # one interval of 5 frames
        ts[80:] += GAP_FACTOR * FRAME * 0.9  # one of 2.35 frames: a gap too
        row = timing_row(
            ts,
            prompt_times_s=np.array([0.0]),
            video_duration_s=float(ts[-1]) + FRAME,
            api_duration_s=None,
            last_event_s=None,
        )
        assert row["gaps"] == 2
        assert row["interval_max_s"] == pytest.approx(5 * FRAME, abs=US)
        assert row["interval_p50_s"] == pytest.approx(FRAME, abs=US)
        assert row["interval_p99_s"] == pytest.approx(FRAME * (1 + GAP_FACTOR * 0.9), abs=US)
        assert row["api_duration_delta_s"] is None
        assert row["events_span_delta_s"] is None

    def test_frames_before_the_first_prompt_and_the_lags(self) -> None:
        row = timing_row(
            steady(30),
            prompt_times_s=np.array([0.1, 0.5]),  # 0.1 is frame 3's time: it has a prompt
            video_duration_s=1.0,
            api_duration_s=1.25,
            last_event_s=1.5,
            prompt_lags_s=np.array([np.nan, 0.12, 0.31]),
        )
        assert row["frames_before_first_prompt"] == 3
        assert row["api_duration_delta_s"] == pytest.approx(-0.25)
        assert row["events_span_delta_s"] == pytest.approx(0.5)
        assert row["prompt_lag_max_s"] == pytest.approx(0.31)

    def test_no_prompt_and_one_frame(self) -> None:
        row = timing_row(
            steady(1),
            prompt_times_s=np.zeros(0),
            video_duration_s=0.0,
            api_duration_s=None,
            last_event_s=None,
        )
        assert row["frames_before_first_prompt"] == 1
        assert row["interval_p50_s"] is None
        assert row["gaps"] == 0
        assert row["prompts"] == 0
        assert row["prompts_per_minute"] is None


def test_changed_share_counts_pixels_that_moved_past_the_delta() -> None:
    a = np.zeros((4, 5, 3), dtype=np.uint8)
    b = a.copy()
    b[0, :, 1] = 17  # 5 pixels, one channel just past 16
    b[1, :2, 0] = 16  # 2 pixels at the delta: unchanged
    assert changed_share(a, b) == pytest.approx(5 / 20)
    assert changed_share(a, a) == 0.0
    assert changed_share(b, a) == changed_share(a, b)
    with pytest.raises(ConfigError, match="shapes"):
        changed_share(a, a[:2])


def test_picture_size_keeps_the_aspect_and_even_sizes() -> None:
    assert picture_size(1280, 704) == (64, 36)
    assert picture_size(176, 320) == (64, 116)
    assert picture_size(48, 30) == (48, 30)


def test_response_windows_and_latency() -> None:
    ts = steady(90)
    # The start prompt gets none; 1.0 s is frame 30's time (reference: frame 29); a
    # prompt at 0 has no frame before it; one after the video's end has no frame.
    windows = response_windows(ts, np.array([0.0, 1.0, 2.0, 5.0]), window_s=0.5)
    assert windows == [
        ResponseWindow(1, 1.0, 29, 30, 45),
        ResponseWindow(2, 2.0, 59, 60, 75),
    ]
    assert response_windows(ts, np.array([0.0, 0.0])) == []
    window = windows[0]
    assert response_latency(window, ts, 33, 0.1) is None
    assert response_latency(window, ts, 33, 0.9) == pytest.approx(3 * FRAME)
    assert summarise_latencies([0.1, None, 0.3, 0.2]) == {
        "response_latency_p50_s": 0.2,
        "response_latency_max_s": 0.3,
        "unresponsive_prompts": 1,
    }
    assert summarise_latencies([])["response_latency_max_s"] is None


def test_frozen_stretches_measure_each_run_from_the_held_frame() -> None:
    ts = steady(20)
    flags = np.zeros(20, dtype=bool)
    flags[5:8] = True  # frames 5..7 repeat frame 4: held from frame 4 to frame 8
    flags[17:] = True  # a run to the end: held from frame 16 to the video's end
    out = frozen_stretches(flags, ts, video_duration_s=20 * FRAME)
    assert out["frozen_frames"] == 6
    assert out["longest_frozen_s"] == pytest.approx(4 * FRAME)
    assert frozen_stretches(np.zeros(20, dtype=bool), ts, 1.0) == {
        "frozen_frames": 0,
        "longest_frozen_s": 0.0,
    }


class TestRules:
    def test_parse_and_break(self) -> None:
        rule = parse_rule(" response_latency_max_s >= 1.5 ")
        assert rule == QCRule("response_latency_max_s", ">=", 1.5)
        assert str(parse_rule("gaps>0")) == "gaps>0"
        row = {"gaps": 3, "response_latency_max_s": 1.5, "frozen_frames": None}
        assert broken_rules([parse_rule("gaps>0"), rule], row) == [
            "gaps>0: gaps = 3",
            "response_latency_max_s>=1.5: response_latency_max_s = 1.5",
        ]
        assert broken_rules([parse_rule("gaps<3"), parse_rule("gaps!=3")], row) == []
        # A value that was not measured never breaks a rule.
        assert broken_rules([parse_rule("frozen_frames>=0")], row) == []

    @pytest.mark.parametrize(
        ("text", "message"),
        [
            ("gaps", "COLUMN OP NUMBER"),
            ("gaps=>1", "COLUMN OP NUMBER"),
            ("gap>0", "not a numeric qc column.*gaps"),
            ("stream_id>0", "not a numeric qc column"),
            ("gaps>many", "not a finite number"),
            ("gaps>inf", "not a finite number"),
        ],
    )
    def test_bad_rules_are_refused(self, text: str, message: str) -> None:
        with pytest.raises(ConfigError, match=message):
            parse_rule(text)

    def test_options_check_what_the_mode_measures(self) -> None:
        with pytest.raises(ConfigError, match="frozen_frames is not measured with qc='response'"):
            QCOptions("response", ("frozen_frames>0",))
        with pytest.raises(ConfigError, match=r"needs qc='response' or 'decode' \(--qc response"):
            QCOptions("reference", ("unresponsive_prompts>0",))
        assert QCOptions("decode", ("response_latency_max_s>1",)).rules
        with pytest.raises(ConfigError, match="need quality control"):
            QCOptions("off", ("gaps>0",))
        with pytest.raises(ConfigError, match="qc must be one of"):
            QCOptions("full")
        assert QCOptions("decode", ("frozen_frames>0",)).rules[0].column == "frozen_frames"


def test_the_qc_module_is_pure() -> None:
    """No I/O library in odyssey_data/qc.py: numpy/pyarrow arrays in, values out."""
    import odyssey_data.qc

    tree = ast.parse(Path(odyssey_data.qc.__file__).read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
    allowed = {"__future__", "math", "operator", "re", "collections.abc", "dataclasses"}
    allowed |= {"typing", "numpy", "numpy.typing", "pyarrow", "pyarrow.compute"}
    allowed |= {"odyssey_data.align", "odyssey_data.errors", "odyssey_data.schema"}
    allowed |= {"odyssey_data.options"}  # pure too: QC_MODES is declared with the options
    assert imported <= allowed, imported - allowed


# -- injected defects, end to end ------------------------------------------------------


def defect_recording(seed: int, defects: DemoDefects | None, **changes: object) -> DemoRecording:
    """A 3.5 s, 30 frames/s recording with a start pts of 0 and ``defects``."""
    base = make_demo_recording(seed, started_at=DEMO_EPOCH, seconds=3.5)
    return dataclasses.replace(base, vfr=False, start_pts=0, defects=defects, **changes)


DEFECTS = {
    "clean": None,
    "dropped": DemoDefects(dropped=(40, 5)),
    "frozen": DemoDefects(frozen=(40, 14)),
    "late": DemoDefects(response_delay_ms=300),
    "short": DemoDefects(video_seconds=2.5),
}


@pytest.fixture(scope="module")
def defect_catalog() -> dict[str, DemoRecording]:
    return {name: defect_recording(200 + i, d) for i, (name, d) in enumerate(DEFECTS.items())}


@pytest.fixture(scope="module")
def defect_server(defect_catalog: dict[str, DemoRecording]) -> Iterator[DemoServer]:
    with DemoServer(DemoCatalog(list(defect_catalog.values()))) as server:
        yield server


@pytest.fixture(scope="module")
def decoded_export(
    defect_server: DemoServer, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, ExportReport]:
    output = tmp_path_factory.mktemp("qc") / "dataset"
    report = export(export_config(defect_server, output, qc="decode"))
    return output, report


def qc_rows(output: Path) -> dict[str, dict[str, object]]:
    rows = open_dataset(str(output)).qc.collect().to_dicts()
    return {str(row["stream_id"]): row for row in rows}


def test_the_demo_injects_each_defect_with_its_size(
    defect_catalog: dict[str, DemoRecording],
) -> None:
    clean = defect_catalog["clean"].frame_pts()
    assert clean.shape[0] == 105
    assert set(np.diff(clean).tolist()) == {3000}
    dropped = defect_catalog["dropped"].frame_pts()
    assert dropped.shape[0] == 100
    assert int(dropped[41] - dropped[40]) == 6 * 3000
    assert defect_catalog["short"].frame_pts().shape[0] == 75
    assert defect_catalog["short"].duration_seconds == 3.5  # the API and events say 3.5 s
    frames = [rgb for rgb, _ in defect_catalog["frozen"].iter_frames()]
    assert all(np.array_equal(frames[40], frames[i]) for i in range(41, 55))
    assert not np.array_equal(frames[40], frames[55])


def test_every_qc_value_of_the_injected_defects(
    decoded_export: tuple[Path, ExportReport], defect_catalog: dict[str, DemoRecording]
) -> None:
    output, report = decoded_export
    assert report.exported == 5
    assert report.failed == 0
    rows = qc_rows(output)
    by = {name: rows[rec.stream_id] for name, rec in defect_catalog.items()}
    for name, row in by.items():
        assert row["qc_mode"] == "decode"
        assert row["interval_p50_s"] == pytest.approx(FRAME, abs=US), name
        assert row["frames_before_first_prompt"] == 0
        assert row["prompts"] == len(defect_catalog[name].prompts)
        assert row["prompt_lag_max_s"] is None  # streams: no script to compare with
        assert row["unresponsive_prompts"] == 0, name
    clean = by["clean"]
    assert (clean["frames"], clean["gaps"], clean["frozen_frames"]) == (105, 0, 0)
    assert clean["span_s"] == pytest.approx(104 / 30, abs=US)
    assert clean["interval_p99_s"] == pytest.approx(FRAME, abs=US)
    assert clean["interval_max_s"] == pytest.approx(FRAME, abs=US)
    assert clean["api_duration_delta_s"] == pytest.approx(0.0, abs=US)
    assert clean["events_span_delta_s"] == pytest.approx(0.0, abs=US)
    assert clean["longest_frozen_s"] == 0.0
    assert clean["prompts_per_minute"] == pytest.approx(clean["prompts"] / (3.5 / 60), abs=US)
    # Without a delay, the picture answers on the first frame at or after the prompt.
    assert 0.0 <= clean["response_latency_max_s"] < FRAME  # type: ignore[operator]

    dropped = by["dropped"]  # 5 frames missing after frame 40: one interval of 6 frames
    assert (dropped["frames"], dropped["gaps"]) == (100, 1)
    assert dropped["interval_max_s"] == pytest.approx(6 * FRAME, abs=US)
    assert dropped["interval_p99_s"] == pytest.approx(FRAME, abs=US)  # 1 interval in 99
    assert dropped["span_s"] == pytest.approx(104 / 30, abs=US)
    assert dropped["frozen_frames"] == 0

    frozen = by["frozen"]  # frames 41..54 repeat frame 40: 15 frames of one picture
    assert (frozen["frames"], frozen["gaps"], frozen["frozen_frames"]) == (105, 0, 14)
    assert frozen["longest_frozen_s"] == pytest.approx(15 * FRAME, abs=US)
    # Its prompt at 1.4 s is answered when the freeze ends, at frame 55.
    assert defect_catalog["frozen"].prompts[1][0] == 1400
    assert frozen["response_latency_max_s"] == pytest.approx(55 / 30 - 1.4, abs=US)

    short = by["short"]  # the video stops at 2.5 s; the events and the API say 3.5 s
    assert (short["frames"], short["gaps"]) == (75, 0)
    assert short["span_s"] == pytest.approx(74 / 30, abs=US)
    assert short["api_duration_delta_s"] == pytest.approx(-1.0, abs=US)
    assert short["events_span_delta_s"] == pytest.approx(1.0, abs=US)
    assert by["dropped"]["events_span_delta_s"] == pytest.approx(0.0, abs=US)


def test_late_visual_response_is_measured_to_the_frame(
    decoded_export: tuple[Path, ExportReport], defect_catalog: dict[str, DemoRecording]
) -> None:
    output, _ = decoded_export
    rec = defect_catalog["late"]
    segments = (
        open_dataset(str(output))
        .segments.filter(pl.col("stream_id") == rec.stream_id)
        .sort("prompt_index")
        .collect()
    )
    latencies = segments["response_latency_s"].to_list()
    assert latencies[0] is None  # the start prompt
    assert len(latencies) == len(rec.prompts) >= 2
    expected = []
    for (time_ms, _), measured in zip(rec.prompts[1:], latencies[1:], strict=True):
        # The picture follows at the first frame k/30 with k/30 >= prompt + 0.3 s.
        first = math.ceil((time_ms + 300) * 30 / 1000 - 1e-9)
        expected.append(first / 30 - time_ms / 1000)
        assert measured == pytest.approx(expected[-1], abs=US)
        assert 0.3 <= measured < 0.3 + FRAME
    row = qc_rows(output)[rec.stream_id]
    assert row["response_latency_max_s"] == pytest.approx(max(expected), abs=US)
    assert row["response_latency_p50_s"] in [pytest.approx(v, abs=US) for v in expected]


def test_the_gate_fails_exactly_the_recordings_that_break_its_rules(
    defect_server: DemoServer, defect_catalog: dict[str, DemoRecording], tmp_path: Path
) -> None:
    output = tmp_path / "gated"
    rules = ("gaps>0", "response_latency_max_s>0.2", "api_duration_delta_s<-0.5")
    report = export(export_config(defect_server, output, qc="response", qc_fail_on=rules))
    ids = {name: rec.stream_id for name, rec in defect_catalog.items()}
    failed = {sid: reason for sid, status, reason in report.problems if status == "failed"}
    # The frozen recording's prompt (1.4 s) falls inside its freeze: its picture can
    # answer only when the freeze ends (frame 55, 55/30 s), so it breaks the latency rule.
    assert set(failed) == {ids["dropped"], ids["late"], ids["short"], ids["frozen"]}
    assert "quality control: gaps>0: gaps = 1 " in failed[ids["dropped"]]
    # Prompt at 0.54 s, picture 0.3 s later: the first frame at or after 0.84 s is 26/30.
    assert defect_catalog["late"].prompts[1][0] == 540
    late = "response_latency_max_s>0.2: response_latency_max_s = 0.326667 "
    assert late in failed[ids["late"]]
    assert "response_latency_max_s = 0.433333 " in failed[ids["frozen"]]
    assert "api_duration_delta_s<-0.5: api_duration_delta_s = -1 " in failed[ids["short"]]
    assert "gaps" not in failed[ids["late"]] + failed[ids["short"]] + failed[ids["frozen"]]
    ds = open_dataset(str(output))
    assert ds.manifest.exported() == {ids["clean"]}
    assert ds.manifest.recordings[ids["dropped"]].reason == failed[ids["dropped"]]
    assert ds.qc.collect()["stream_id"].to_list() == [ids["clean"]]
    assert [p.name for p in (output / "videos").iterdir()] == [f"{ids['clean']}.mp4"]
    assert ds.verify() == []
    assert ds.manifest.options["qc_fail_on"] == list(rules)

    # A re-run checks the failed ones again: still failing with the same rules ...
    again = export(export_config(defect_server, output, qc="response", qc_fail_on=rules))
    assert (again.already, again.failed, again.exported) == (1, 4, 0)
    # ... and exported once the rules let them through.
    relaxed = export(export_config(defect_server, output, qc_fail_on=("gaps>1",)))
    assert (relaxed.exported, relaxed.failed) == (4, 0)
    assert open_dataset(str(output)).qc.collect().height == 5


def test_a_frozen_stretch_rule_needs_decode_mode(
    defect_server: DemoServer, defect_catalog: dict[str, DemoRecording], tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match="--qc decode"):
        export_config(defect_server, tmp_path / "x", qc_fail_on=("frozen_frames>0",))
    report = export(
        export_config(
            defect_server, tmp_path / "y", qc="decode", qc_fail_on=("longest_frozen_s>0.25",)
        )
    )
    assert [sid for sid, _, _ in report.problems] == [defect_catalog["frozen"].stream_id]
    assert "longest_frozen_s>0.25: longest_frozen_s = 0.5 " in report.problems[0][2]


def test_qc_off_writes_no_rows_and_no_latency(defect_server: DemoServer, tmp_path: Path) -> None:
    report = export(export_config(defect_server, tmp_path / "off", qc="off"))
    assert report.exported == 5
    ds = open_dataset(str(tmp_path / "off"))
    assert ds.qc.collect().height == 0
    assert ds.qc_summary()["recordings"] == 0
    assert ds.segments.collect()["response_latency_s"].null_count() == ds.segments.collect().height
    assert ds.verify() == []


# -- the default demo catalog and the surfaces ---------------------------------------------


def test_every_demo_interaction_gets_its_response_on_the_next_frame(
    demo_server: DemoServer, tmp_path: Path
) -> None:
    """The session's demo recordings (VFR, B-frames, both sizes, every events shape):
    each interaction changes the picture on the first frame at or after it."""
    report = export(export_config(demo_server, tmp_path / "response", qc="response", workers=2))
    ds = open_dataset(str(tmp_path / "response"))
    qc = ds.qc.collect()
    assert qc.height == report.exported == 8
    assert qc["qc_mode"].unique().to_list() == ["response"]
    assert qc["unresponsive_prompts"].sum() == 0
    assert qc["frozen_frames"].null_count() == qc.height  # response mode: not measured
    frames = ds.frames.select("stream_id", "frame_index", "timestamp_s").collect()
    segments = ds.segments.filter(pl.col("prompt_index") > 0).collect()
    assert segments["response_latency_s"].null_count() == 0
    for seg in segments.iter_rows(named=True):
        mine = frames.filter(pl.col("stream_id") == seg["stream_id"])["timestamp_s"].to_numpy()
        first = int(np.searchsorted(mine, seg["start_s"] - US))
        assert seg["response_latency_s"] == pytest.approx(
            max(0.0, mine[first] - seg["start_s"]), abs=US
        )


def test_qc_is_a_table_of_the_dataset(demo_export: DemoExport) -> None:
    """The default export (qc="reference") writes a qc row per recording, no pixels."""
    ds = open_dataset(str(demo_export.output))
    qc = ds.qc.collect()
    assert qc["qc_mode"].unique().to_list() == ["reference"]
    for name in ("response_latency_max_s", "unresponsive_prompts", "frozen_frames"):
        assert qc[name].null_count() == qc.height, name
    assert ds.segments.collect()["response_latency_s"].null_count() == ds.segments.collect().height
    assert qc["gaps"].sum() == 0
    assert qc["frames"].sum() == ds.frames.select(pl.len()).collect().item()
    files = ds.manifest.table_files("qc")
    assert files
    assert all(f.startswith("qc/part-") for f in files)
    manifest = json.loads((demo_export.output / "manifest.json").read_text())
    assert manifest["tables"]["qc"] == files
    assert sum(ds.manifest.files[f].num_rows or 0 for f in files) == demo_export.report.exported
    lazy = ds.qc
    assert isinstance(lazy, pl.LazyFrame)
    assert lazy.collect_schema().names() == QC_SCHEMA.names
    summary = ds.summary()["qc"]
    assert summary["recordings"] == demo_export.report.exported
    # Reference QC does not measure frozen frames or responses: "not measured", not 0.
    assert summary["flagged"] == {"gaps": 0, "frozen_frames": None, "unresponsive_prompts": None}
    assert summary["columns"]["response_latency_max_s"]["max"] is None


def test_verify_checks_the_qc_files(demo_export: DemoExport, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(demo_export.output, copy)
    rel = open_dataset(str(copy)).manifest.table_files("qc")[0]
    (copy / rel).write_bytes((copy / rel).read_bytes()[:-10] + b"0123456789")
    problems = open_dataset(str(copy)).verify()
    assert any(p.startswith(rel) for p in problems)


def test_cli_export_with_gate_then_inspect(
    defect_server: DemoServer,
    defect_catalog: dict[str, DemoRecording],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "cli"
    args = ["export", str(out), "--api-url", defect_server.base_url]
    args += ["--api-key", defect_server.api_key, "--workers", "1", "-q"]
    code = main(
        [*args, "--qc", "decode", "--qc-fail-on", "gaps>0", "--qc-fail-on", "frozen_frames>0"]
    )
    assert code == 3
    text = capsys.readouterr().out
    assert "frozen_frames>0: frozen_frames = 14" in text
    assert "gaps>0: gaps = 1" in text
    assert main(["inspect", str(out)]) == 0
    text = capsys.readouterr().out
    assert "quality control of 3 recordings" in text
    assert "recordings with gaps: 0, with frozen frames: 0, with unresponsive prompts: 0" in text
    assert "response_latency_max_s" in text
    assert main(["inspect", str(out), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["qc"]["recordings"] == 3
    assert data["qc"]["columns"]["api_duration_delta_s"]["min"] == pytest.approx(-1.0, abs=US)
    assert main([*args, "--qc-fail-on", "nope>1"]) == 2


def test_pipeline_file_qc_section(tmp_path: Path) -> None:
    base = {"target": {"url": str(tmp_path / "x")}}
    job = parse_job({**base, "qc": {"mode": "decode", "fail_on": ["frozen_frames>0"]}}, "p.toml")
    assert (job.config.qc, job.config.qc_fail_on) == ("decode", ("frozen_frames>0",))
    assert parse_job(base, "p.toml").config.qc == "reference"
    with pytest.raises(ConfigError, match=r"p\.toml: \[qc\] fail_on QC rule 'gap>0'"):
        parse_job({**base, "qc": {"fail_on": ["gap>0"]}}, "p.toml")
    with pytest.raises(ConfigError, match=r"p\.toml: \[qc\] mode must be one of"):
        parse_job({**base, "qc": {"mode": "all"}}, "p.toml")
    with pytest.raises(ConfigError, match=r"p\.toml: \[qc\] fail_on must be a list"):
        parse_job({**base, "qc": {"fail_on": "gaps>0"}}, "p.toml")
    with pytest.raises(ConfigError, match=r"p\.toml: .*frozen_frames is not measured"):
        parse_job({**base, "qc": {"fail_on": ["frozen_frames>0"]}}, "p.toml")


def test_qc_rows_are_typed_by_the_schema(decoded_export: tuple[Path, ExportReport]) -> None:
    output, _ = decoded_export
    import pyarrow.parquet as pq

    for rel in open_dataset(str(output)).manifest.table_files("qc"):
        assert (
            pq.read_schema(output / rel)
            .remove_metadata()
            .equals(pa.schema(QC_SCHEMA).remove_metadata())
        )


def test_scan_windows_decodes_each_window_until_told_to_stop(
    defect_catalog: dict[str, DemoRecording], tmp_path: Path
) -> None:
    from odyssey_data.video import scan_windows

    rec = defect_catalog["clean"]
    path = tmp_path / "v.mp4"
    path.write_bytes(rec.video_bytes() or b"")
    pts = rec.frame_pts()
    seen: list[tuple[int, int, tuple[int, ...]]] = []

    def visit(window: int, frame_pts: int, picture: np.ndarray) -> bool:
        seen.append((window, frame_pts, picture.shape))
        return window == 0 and frame_pts == int(pts[47])  # window 0 stops at frame 47

    windows = [(int(pts[45]), int(pts[60])), (int(pts[70]), int(pts[72]))]
    decoded = scan_windows(str(path), windows, visit, size=(64, 36), what="v")
    assert [(w, p) for w, p, _ in seen] == [
        (0, int(pts[45])),
        (0, int(pts[46])),
        (0, int(pts[47])),
        (1, int(pts[70])),
        (1, int(pts[71])),
        (1, int(pts[72])),
    ]
    assert {shape for _, _, shape in seen} == {(36, 64, 3)}
    # From the key frame before each window (one a second: frames 30 and 60) to its
    # stop, plus what the decoder holds back for B-frames: far from the 105 frames.
    assert 6 <= decoded < 60


def test_the_qc_shards_are_names_the_export_owns() -> None:
    """OUTPUT is shared: only registered names are ever deleted or overwritten."""
    from odyssey_data.storage import is_owned

    assert is_owned("qc/part-000000.parquet")
    assert not is_owned("qc/notes.txt")
