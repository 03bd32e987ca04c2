"""Pipeline files (``odyssey-data run``): the shipped ones, errors that name key and file,
secrets only by environment variable name, ``--set`` overrides and the recording filters."""

from __future__ import annotations

import json
import tomllib
from datetime import UTC, datetime
from pathlib import Path

import pytest

from odyssey_data import cli
from odyssey_data.demo import make_demo_catalog
from odyssey_data.errors import ConfigError
from odyssey_data.jobfile import SCHEMA, apply_override, load_job
from odyssey_data.models import RecordingInfo
from odyssey_data.pipeline import ExportConfig

PIPELINES = Path(__file__).resolve().parents[1] / "pipelines"
SHIPPED = sorted(PIPELINES.glob("*.toml"))


def write(tmp_path: Path, text: str, name: str = "job.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def run_demo(tmp_path: Path, *sets: str) -> tuple[int, Path]:
    """Run pipelines/demo.toml into tmp_path through the CLI; returns (exit code, output)."""
    output = tmp_path / "dataset"
    argv = ["run", str(PIPELINES / "demo.toml"), "-q", "--set", f"target.url={output}"]
    for assignment in sets:
        argv += ["--set", assignment]
    return cli.main(argv), output


def exported_ids(output: Path) -> set[str]:
    manifest = json.loads((output / "manifest.json").read_text())
    return {sid for sid, r in manifest["recordings"].items() if r["status"] == "exported"}


def demo_ids(**window: datetime) -> list[str]:
    """The finished demo.toml recordings that started within ``window``, most recent first."""
    demo = tomllib.loads((PIPELINES / "demo.toml").read_text())["source"]["demo"]
    catalog = make_demo_catalog(demo["recordings"], seed=demo["seed"], active=demo["active"])
    after = window.get("after", datetime.min.replace(tzinfo=UTC))
    before = window.get("before", datetime.max.replace(tzinfo=UTC))
    return [
        r.stream_id
        for r in catalog.recordings
        if r.ended_at is not None and after <= r.started_at < before
    ]


# -- the shipped files ---------------------------------------------------------------


def test_the_three_pipelines_are_shipped() -> None:
    names = {p.name for p in SHIPPED}
    assert {"demo.toml", "nightly-s3.toml", "training-clips.toml"} <= names


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_pipeline_loads_and_validates(path: Path) -> None:
    job = load_job(path)
    assert job.config.output
    assert job.description
    assert job.config.api_key is None  # a file never carries a key
    assert cli.main(["run", str(path), "--check"]) == 0


def test_readme_documents_every_key() -> None:
    readme = (PIPELINES / "README.md").read_text()
    for section, keys in SCHEMA.items():
        if not section:  # the top level: its tables are the sections
            assert "`description`" in readme
            continue
        assert f"[{section}]" in readme, section
        for key in keys:
            assert f"`{key}`" in readme, f"[{section}] {key}"


def test_nightly_s3_reads_credentials_from_named_variables() -> None:
    job = load_job(PIPELINES / "nightly-s3.toml")
    assert job.config.output.startswith("s3://")
    assert job.api_key_env == "ODYSSEY_API_KEY"
    environ = {
        "ODYSSEY_API_KEY": "ody_from_env",
        "AWS_ACCESS_KEY_ID": "AKIA_FROM_ENV",
        "AWS_SECRET_ACCESS_KEY": "secret-from-env",
    }
    config = job.export_config(environ)
    assert config.api_key == "ody_from_env"
    assert config.storage_options["key"] == "AKIA_FROM_ENV"
    assert config.storage_options["secret"] == "secret-from-env"
    assert config.started_after == datetime(2026, 1, 1, tzinfo=UTC)
    assert "secret-from-env" not in repr(config)
    assert "secret-from-env" not in json.dumps(config.public_options())
    with pytest.raises(ConfigError, match=r"nightly-s3\.toml.*AWS_SECRET_ACCESS_KEY.*not set"):
        job.export_config({"ODYSSEY_API_KEY": "ody_x", "AWS_ACCESS_KEY_ID": "a"})


def test_training_clips_materialises_jpeg_at_a_fixed_fps() -> None:
    config = load_job(PIPELINES / "training-clips.toml").config
    assert config.frames == "jpeg"
    assert config.fps == 10
    assert config.resize == (256, None)


# -- running -------------------------------------------------------------------------


def test_demo_pipeline_runs_end_to_end(tmp_path: Path) -> None:
    code, output = run_demo(tmp_path)
    assert code == 0
    assert exported_ids(output) == set(demo_ids())
    # A re-run is incremental: nothing new, still a success.
    assert run_demo(tmp_path)[0] == 0
    assert exported_ids(output) == set(demo_ids())


def test_started_after_and_before_select_the_demo_recordings(tmp_path: Path) -> None:
    after, before = datetime(2026, 11, 20, 7, tzinfo=UTC), datetime(2026, 11, 20, 9, tzinfo=UTC)
    expected = demo_ids(after=after, before=before)
    assert 0 < len(expected) < len(demo_ids())
    code, output = run_demo(
        tmp_path,
        "source.started_after=2026-11-20T07:00:00Z",
        'source.started_before="2026-11-20T09:00:00+00:00"',
        "executor.workers=1",
    )
    assert code == 0
    assert exported_ids(output) == set(expected)
    options = json.loads((output / "manifest.json").read_text())["options"]
    assert options["started_after"] == "2026-11-20T07:00:00+00:00"


def test_limit_counts_the_recordings_that_pass_the_filters(tmp_path: Path) -> None:
    before = datetime(2026, 11, 20, 8, tzinfo=UTC)
    code, output = run_demo(
        tmp_path, "source.started_before=2026-11-20T08:00:00Z", "source.limit=1"
    )
    assert code == 0
    assert exported_ids(output) == {demo_ids(before=before)[0]}


def test_min_duration_leaves_short_recordings_out(tmp_path: Path) -> None:
    code, output = run_demo(tmp_path, "source.min_duration_s=60")
    assert code == 0
    assert not (output / "frames").exists() or exported_ids(output) == set()


def test_filters_on_export_config() -> None:
    config = ExportConfig(
        output="memory://x",
        started_after=datetime(2026, 1, 1, tzinfo=UTC),
        started_before=datetime(2026, 2, 1, tzinfo=UTC),
        min_duration_s=2.0,
    )
    ok = RecordingInfo("a", started_at=datetime(2026, 1, 1, tzinfo=UTC), duration_seconds=2.0)
    assert config.wants(ok)
    assert not config.wants(RecordingInfo("b", started_at=datetime(2026, 2, 1, tzinfo=UTC)))
    assert not config.wants(RecordingInfo("c", duration_seconds=5.0))  # no start time
    late = RecordingInfo("d", started_at=datetime(2026, 1, 5, tzinfo=UTC), duration_seconds=1.0)
    assert not config.wants(late)
    with pytest.raises(ConfigError, match="time zone"):
        ExportConfig(output="x", started_after=datetime(2026, 1, 1))


# -- errors name the key and the file ------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '[target]\nurll = "x"\n',
            r"job\.toml: unknown key \[target\] urll \(did you mean url\?\)",
        ),
        (
            '[target]\nurl = "x"\n[frames]\nfps = "ten"\n',
            r"job\.toml: \[frames\] fps must be a number, not 'ten'",
        ),
        (
            '[target]\nurl = "x"\n[executor]\nworkers = 1.5\n',
            r"job\.toml: \[executor\] workers must be an integer",
        ),
        (
            '[target]\nurl = "x"\n[executor]\nworkers = 0\n',
            r"job\.toml: \[executor\] workers must be at least 1",
        ),
        (
            '[target]\nurl = "x"\noverwrite = "yes"\n',
            r"job\.toml: \[target\] overwrite must be true or false",
        ),
        (
            '[target]\nurl = "x"\n[frames]\nmode = "gif"\n',
            r"job\.toml: \[frames\] mode must be one of",
        ),
        (
            '[target]\nurl = "x"\n[frames]\nmode = "jpeg"\nresize = "big"\n',
            r"job\.toml: \[frames\] resize",
        ),
        (
            '[target]\nurl = "x"\n[frames]\nquality = 0\n',
            r"job\.toml: \[frames\] quality must be within",
        ),
        (
            '[target]\nurl = "x"\n[source]\nstarted_after = "yesterday"\n',
            r"job\.toml: \[source\] started_after must be an ISO 8601 time",
        ),
        (
            '[target]\nurl = "x"\n[source]\nmin_duration_s = -1\n',
            r"job\.toml: \[source\] min_duration_s must not be negative",
        ),
        (
            '[target]\nurl = "x"\n[source]\nlimit = "10"\n',
            r"job\.toml: \[source\] limit must be an integer, not '10'",
        ),
        (
            '[target]\nurl = "x"\n[source.demo]\nrecordingz = 3\n',
            r"job\.toml: unknown key \[source\.demo\] recordingz",
        ),
        (
            '[target]\nurl = "x"\n[source]\ndemo = true\napi_url = "http://h"\n',
            r"job\.toml: \[source\] demo runs its own server",
        ),
        (
            '[target]\nurl = "x"\n[executor]\nray_address = "auto"\n',
            r"job\.toml: \[executor\] ray_address needs",
        ),
        (
            '[target]\nurl = "x"\n[sauce]\n',
            r"job\.toml: unknown section \[sauce\] \(did you mean source\?\)",
        ),
        ("[source]\nlimit = 1\n", r"job\.toml: \[target\] url is missing"),
        (
            '[target]\nurl = "x"\n[frames]\nresize = "64"\n',
            r"job\.toml: \[frames\] resize applies to materialised frames: "
            r'add \[frames\] mode = "jpeg"',
        ),
        ("[target\n", r"job\.toml: not valid TOML"),
    ],
)
def test_errors_name_the_key_and_the_file(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=message):
        load_job(path)


def test_cli_prints_one_line_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, '[target]\nurl = "x"\n[frames]\nfps = "ten"\n')
    assert cli.main(["run", str(path)]) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert "[frames] fps must be a number, not 'ten'" in err
    assert "job.toml" in err
    assert "Traceback" not in err


def test_set_errors_say_the_value_came_from_set(tmp_path: Path) -> None:
    path = write(tmp_path, '[target]\nurl = "x"\n')
    with pytest.raises(ConfigError, match=r"job\.toml \(with --set frames\.fps\): \[frames\] fps"):
        load_job(path, ["frames.fps=ten"])
    with pytest.raises(ConfigError, match=r"section\.key=value"):
        load_job(path, ["fps=10"])


# -- secrets -------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["api_key", "token"])
def test_a_literal_api_key_is_refused(tmp_path: Path, key: str) -> None:
    path = write(tmp_path, f'[source]\n{key} = "ody_live_secret_123"\n[target]\nurl = "x"\n')
    with pytest.raises(ConfigError, match=r"job\.toml: \[source\].*api_key_env") as info:
        load_job(path)
    assert "ody_live_secret_123" not in str(info.value)


def test_a_key_in_place_of_a_variable_name_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, '[source]\napi_key_env = "ody_live_secret_123"\n[target]\nurl = "x"\n')
    with pytest.raises(ConfigError, match=r"api_key_env holds what looks like an API key") as info:
        load_job(path)
    assert "ody_live_secret_123" not in str(info.value)
    path = write(tmp_path, '[source]\napi_key_env = "sk-live/secret+123"\n[target]\nurl = "x"\n')
    with pytest.raises(ConfigError, match=r"must be the NAME of an environment variable") as info:
        load_job(path)
    assert "sk-live/secret+123" not in str(info.value)


def test_a_literal_storage_credential_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, '[target]\nurl = "s3://b/p"\nstorage_options = {secret = "abc"}\n')
    with pytest.raises(ConfigError, match=r"\[target\] storage_options\.secret is a credential"):
        load_job(path)


def test_the_api_key_variable_must_be_set(tmp_path: Path) -> None:
    path = write(tmp_path, '[source]\napi_key_env = "MY_ODYSSEY_KEY"\n[target]\nurl = "x"\n')
    job = load_job(path)
    assert job.export_config({"MY_ODYSSEY_KEY": "ody_k"}).api_key == "ody_k"
    with pytest.raises(ConfigError, match=r"job\.toml: \[source\] api_key_env.*MY_ODYSSEY_KEY"):
        job.export_config({})


# -- overrides -----------------------------------------------------------------------


def test_set_values_are_toml_when_they_parse() -> None:
    data: dict[str, object] = {}
    apply_override(data, "frames.fps=10")
    apply_override(data, "target.overwrite=true")
    apply_override(data, "target.url=./out/data")
    apply_override(data, 'source.stream_ids=["a", "b"]')
    apply_override(data, "source.demo.seed=3")
    assert data == {
        "frames": {"fps": 10},
        "target": {"overwrite": True, "url": "./out/data"},
        "source": {"stream_ids": ["a", "b"], "demo": {"seed": 3}},
    }


def test_toml_datetimes_and_dates_are_accepted(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "[source]\nstarted_after = 2026-01-01\nstarted_before = 2026-02-01T12:00:00+02:00\n"
        '[target]\nurl = "x"\n',
    )
    config = load_job(path).config
    assert config.started_after == datetime(2026, 1, 1, tzinfo=UTC)
    assert config.started_before == datetime(2026, 2, 1, 10, tzinfo=UTC)
