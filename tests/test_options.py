"""The option schema (``odyssey_data.options``): every export option is reachable from
the Python API, the command line and a pipeline file, or its declaration says why not;
errors name the option as each surface spells it (tests/test_imports.py keeps options,
optionspec and jobfile pure)."""

from __future__ import annotations

import json
from dataclasses import fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import FAST_RETRY

from odyssey_data import cli
from odyssey_data.cli.flags import config_from
from odyssey_data.demo import DemoServer
from odyssey_data.errors import ConfigError
from odyssey_data.jobfile import SCHEMA, parse_job
from odyssey_data.options import OPTION, OPTIONS, ExportConfig, Option, RetryPolicy
from odyssey_data.optionspec import INT, option
from odyssey_data.pipeline import export

# One value each option can take other than its default: (Python, command-line texts,
# TOML). A new option fails test_every_option_has_a_sample until it is listed here.
SAMPLES: dict[str, tuple[Any, list[str], Any]] = {
    "api_url": ("http://127.0.0.1:1", ["http://127.0.0.1:1"], "http://127.0.0.1:1"),
    "api_key": ("ody_sample", ["ody_sample"], None),
    "timeout_s": (5.0, ["5"], 5),
    "max_download_bytes": (1000, ["1000"], 1000),
    "min_download_rate": (10.0, ["10"], 10.0),
    "retry": (RetryPolicy(attempts=2), [], None),
    "limit": (3, ["3"], 3),
    "stream_ids": (("a", "b"), ["a", "b"], ["a", "b"]),
    "source": ("all", ["all"], "all"),
    "job_ids": (("j1",), ["j1"], ["j1"]),
    "job_status": ("completed", ["completed"], "completed"),
    "started_after": (
        datetime(2026, 1, 1, tzinfo=UTC),
        ["2026-01-01T00:00:00Z"],
        datetime(2026, 1, 1, tzinfo=UTC),
    ),
    "started_before": (
        datetime(2026, 2, 1, 12, tzinfo=UTC),
        ["2026-02-01T12:00:00+00:00"],
        "2026-02-01T12:00:00Z",
    ),
    "min_duration_s": (2.5, ["2.5"], 2.5),
    "frames": ("jpeg", ["jpeg"], "jpeg"),
    "resize": ((64, 36), ["64x36"], "64x36"),
    "fps": (5.0, ["5"], 5),
    "image_quality": (50, ["50"], 50),
    "probe": ("decode", ["decode"], "decode"),
    "event_offset_ms": (-20.0, ["-20"], -20),
    "with_thumbnails": (True, [], True),
    "output": ("sample-dataset", ["sample-dataset"], "sample-dataset"),
    "storage_options": ({"anon": True}, ["anon=true"], {"anon": True}),
    "overwrite": (True, [], True),
    "mix_options": (True, [], True),
    "allow_foreign_files": (True, [], True),
    "shard_rows": (10, ["10"], 10),
    "checkpoint_every": (5, ["5"], 5),
    "checkpoint_seconds": (2.0, ["2"], 2),
    "break_lock": (True, [], None),
    "lock_timeout_s": (60.0, ["60"], 60),
    "workers": (2, ["2"], 2),
    "executor": ("ray", ["ray"], "ray"),
    "ray_address": ("auto", ["auto"], "auto"),
    "qc": ("decode", ["decode"], "decode"),
    "qc_fail_on": (("gaps>0", "frozen_frames>0"), ["gaps>0", "frozen_frames>0"], ["gaps>0"]),
}

# What an option needs of the others to be valid at all.
NEEDS: dict[str, dict[str, Any]] = {
    "job_ids": {"source": "all"},
    "job_status": {"source": "all"},
    "resize": {"frames": "jpeg"},
    "ray_address": {"executor": "ray"},
    "qc_fail_on": {"qc": "decode"},
}


def _python(spec: Option) -> Any:
    value = SAMPLES[spec.name][0]
    options = {"output": "dataset", **NEEDS.get(spec.name, {}), spec.name: value}
    return getattr(ExportConfig(**options), spec.name)


def _cli(spec: Option) -> Any:
    texts = SAMPLES[spec.name][1]
    argv = ["export", "dataset"]
    for name, value in NEEDS.get(spec.name, {}).items():
        argv += [str(OPTION[name].cli), str(value)]
    if spec.cli == "OUTPUT":
        argv[1] = texts[0]
    elif spec.kind.cli == "flag":
        argv.append(str(spec.cli))
    else:
        for text in texts:
            argv += [str(spec.cli), text]
    args = cli.build_parser().parse_args(argv)
    return getattr(config_from(args, args.output), spec.name)


def _toml(spec: Option) -> Any:
    data: dict[str, Any] = {"target": {"url": "dataset"}}
    needs = {name: (value, OPTION[name].toml) for name, value in NEEDS.get(spec.name, {}).items()}
    needs[spec.name] = (SAMPLES[spec.name][2], spec.toml)
    for value, key in needs.values():
        section, _, name = str(key).partition(".")
        data.setdefault(section, {})[name] = value
    return getattr(parse_job(data, "sample.toml").config, spec.name)


def test_every_option_has_a_sample() -> None:
    assert set(SAMPLES) == {spec.name for spec in OPTIONS}
    for spec in OPTIONS:
        assert SAMPLES[spec.name][0] != spec.default, spec.name


@pytest.mark.parametrize("spec", OPTIONS, ids=[spec.name for spec in OPTIONS])
def test_every_option_is_reachable_from_all_three_surfaces_or_says_why_not(
    spec: Option,
) -> None:
    pytest.importorskip("simplejpeg")  # frames="jpeg" checks its encoder up front
    wanted = SAMPLES[spec.name][0]
    # Python: a keyword of ExportConfig and export().
    assert _python(spec) == wanted
    # The command line: a flag of `export` (or its OUTPUT operand).
    if spec.cli is None:
        assert len(spec.no_cli or "") > 20, spec.name
    else:
        assert _cli(spec) == wanted
    # Pipeline files: a [section] key.
    if spec.toml is None:
        assert len(spec.no_toml or "") > 20, spec.name
    else:
        section, _, key = spec.toml.partition(".")
        assert key in SCHEMA[section]
        got = _toml(spec)
        if spec.name == "qc_fail_on":
            wanted = ("gaps>0",)
        assert got == wanted


def test_the_reasons_a_surface_lacks_an_option() -> None:
    lacking = {
        spec.name: (spec.no_cli is not None, spec.no_toml is not None)
        for spec in OPTIONS
        if spec.cli is None or spec.toml is None
    }
    # The API key is a secret (files name its variable); breaking a lock is a one-off;
    # a retry policy is an object for programs.
    assert lacking == {
        "api_key": (False, True),
        "break_lock": (False, True),
        "retry": (True, True),
    }
    assert "api_key_env" in str(OPTION["api_key"].no_toml)


def test_an_option_says_how_it_is_recorded_and_whether_it_shapes_rows() -> None:
    """The manifest's options and the re-run check are made from the declarations: an
    option must say how it is written into a dataset, or why not, and whether it shapes
    the rows, or why not (tests/test_data_options.py checks the second by exporting)."""
    for spec in OPTIONS:
        assert (spec.record is None) != (spec.no_record is None), spec.name
        assert (spec.data is None) != (spec.no_data is None), spec.name
        for reason in (spec.no_record, spec.no_data):
            assert reason is None or len(reason) > 20, spec.name
    assert OPTION["api_key"].record is None
    assert "secret" in str(OPTION["api_key"].no_record)
    surfaces = {"cli": "--x", "toml": "s.x"}
    with pytest.raises(TypeError, match="recorded in the manifest"):
        option(1, INT, "h", **surfaces, data=True)
    with pytest.raises(TypeError, match="shapes the rows"):
        option(1, INT, "h", **surfaces, record=True)
    option(1, INT, "h", **surfaces, no_record="not a property of the dataset", data=True)


@pytest.mark.parametrize(
    ("python", "argv", "toml", "message"),
    [
        (
            {"fps": 0},
            ["--fps", "0"],
            {"frames": {"fps": 0}},
            "{} must be positive, not 0.0",
        ),
        (
            {"fps": "ten"},
            ["--fps", "ten"],
            {"frames": {"fps": "ten"}},
            "{} must be a number, not 'ten'",
        ),
        (
            {"image_quality": 101},
            ["--image-quality", "101"],
            {"frames": {"quality": 101}},
            "{} must be within 1..100, not 101",
        ),
        (
            {"source": "everything"},
            ["--source", "everything"],
            {"source": {"from": "everything"}},
            "{} must be one of streams, simulations, all, not 'everything'",
        ),
        (
            {"timeout_s": float("inf")},
            ["--timeout", "inf"],
            {"source": {"timeout_s": float("inf")}},
            "{} must be a finite number, not inf",
        ),
        (
            {"started_after": "yesterday"},
            ["--started-after", "yesterday"],
            {"source": {"started_after": "yesterday"}},
            "{} must be an ISO 8601 time",
        ),
    ],
)
def test_errors_name_the_option_as_each_surface_spells_it(
    python: dict[str, Any], argv: list[str], toml: dict[str, Any], message: str
) -> None:
    (name,) = python
    spec = OPTION[name]
    section, _, key = str(spec.toml).partition(".")
    with pytest.raises(ConfigError) as raised:
        ExportConfig(output="x", **python)
    assert str(raised.value).startswith(message.format(f"{name}="))  # the keyword
    args = cli.build_parser().parse_args(["export", "x", *argv])
    with pytest.raises(ConfigError) as raised:
        config_from(args, args.output)
    assert str(raised.value).startswith(message.format(spec.cli))
    with pytest.raises(ConfigError) as raised:
        parse_job({"target": {"url": "x"}, **toml}, "p.toml")
    assert str(raised.value).startswith("p.toml: " + message.format(f"[{section}] {key}"))


def test_options_that_do_not_go_together_are_named_per_surface() -> None:
    with pytest.raises(ConfigError, match=r"job_ids= and job_status= need source='simulations'"):
        ExportConfig(output="x", job_ids=["j"])
    args = cli.build_parser().parse_args(["export", "x", "--job-id", "j"])
    with pytest.raises(ConfigError, match=r"--job-id and --status need --source simulations"):
        config_from(args, args.output)
    with pytest.raises(ConfigError, match=r'\[source\] job_ids .* need \[source\] from = "simu'):
        parse_job({"target": {"url": "x"}, "source": {"job_ids": ["j"]}}, "p.toml")


def test_python_takes_what_the_other_surfaces_take() -> None:
    pytest.importorskip("simplejpeg")
    config = ExportConfig(
        output="x",
        frames="jpeg",
        resize="256x144",
        stream_ids=["a"],
        started_after="2026-01-01T00:00:00Z",
    )
    assert config.resize == (256, 144)
    assert config.stream_ids == ("a",)
    assert config.started_after == datetime(2026, 1, 1, tzinfo=UTC)
    assert config.frame_options().resize == (256, 144)
    with pytest.raises(ConfigError, match="stream_ids= must be a list of strings"):
        ExportConfig(output="x", stream_ids="abc")


def test_groups_are_passed_whole() -> None:
    config = ExportConfig(output="x", timeout_s=5.0, fps=2.0, workers=3, qc="off")
    assert config.client.timeout_s == 5.0
    assert config.shape.fps == 2.0
    assert config.run.workers == 3
    assert config.qc_settings.qc == "off"
    assert config.target.output == "x"
    assert config.selection.limit is None
    groups = ("client", "selection", "shape", "target", "run", "qc_settings")
    held = [spec.name for group in groups for spec in fields(getattr(config, group))]
    assert sorted(held) == sorted(spec.name for spec in OPTIONS)  # each in one group


def test_resize_as_text_exports_from_python(demo_server: DemoServer, tmp_path: Path) -> None:
    """``export(resize="256x144")`` used to fail with an unpacking error in the worker."""
    pytest.importorskip("simplejpeg")
    sid = next(r.stream_id for r in demo_server.catalog.recordings if r.ended_at is not None)
    report = export(
        output=str(tmp_path / "out"),
        api_url=demo_server.base_url,
        api_key=demo_server.api_key,
        retry=FAST_RETRY,
        workers=1,
        stream_ids=[sid],
        frames="jpeg",
        resize="64x36",
    )
    assert (report.exported, report.failed) == (1, 0)
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["options"]["resize"] == [64, 36]


def test_the_new_cli_filters_select_recordings(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    argv = ["demo", str(out), "-q", "--json", "--min-duration", "100000", "--timeout", "5"]
    assert cli.main(argv) == cli.EXIT_OK
    manifest = json.loads((out / "manifest.json").read_text())
    assert not [r for r in manifest["recordings"].values() if r["status"] == "exported"]
    assert manifest["options"]["min_duration_s"] == 100000.0
