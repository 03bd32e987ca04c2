"""Which options shape the rows, found by exporting, and how the options are recorded.

Every option is declared either ``data=`` (it shapes an exported recording's rows: each
recording records it in ``export_options`` and a re-run must match it) or ``no_data=``
with the reason its rows stay the same. The declarations are checked against exports of
a small demo catalog: each ``no_data`` option is exported with another value and the
rows of the contract's tables must come out the same; each ``data`` option must change
them. A new option needs a value to try here (or the reason it cannot be varied), so an
option that shapes the rows cannot slip in undeclared.

The manifest's ``options`` and each recording's ``export_options`` (made from the
declarations' ``record=`` and ``data=`` since the hand lists went) hold what they held.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from conftest import export_config
from polars.testing import assert_frame_equal

from odyssey_data import open_dataset
from odyssey_data.demo import DemoCatalog, DemoServer, make_demo_catalog
from odyssey_data.options import OPTION, OPTIONS, ExportConfig, RetryPolicy
from odyssey_data.pipeline import export
from odyssey_data.runs import (
    DATA_OPTIONS,
    OptionsMismatchError,
    data_options,
    options_json,
    recorded_options,
)

#: The tables of the contract (../shared/dataset-format.md) and how their rows sort.
TABLES = {
    "frames": ["stream_id", "frame_index"],
    "recordings": ["stream_id"],
    "events": ["stream_id", "event_index"],
    "segments": ["stream_id", "prompt_index"],
}
#: Columns that differ between any two runs.
PER_RUN = {"recordings": {"exported_at"}}
#: Columns beyond the contract that an option fills (null when it does not, so a row
#: says itself whether they were made); the option's ``no_data`` reason names them.
FILLS = {
    "with_thumbnails": {"recordings": {"thumbnail_path", "preview_path"}},
    "qc": {"segments": {"response_latency_s"}},
}

#: Options no export here varies, and why.
NOT_VARIED = {
    "api_url": "every export needs this demo server's URL",
    "api_key": "every export needs this demo server's key",
    "output": "every export here writes a folder of its own: it is always varied",
    "executor": "tests/test_ray.py exports on Ray and compares every table with the local one",
    "ray_address": "needs the Ray executor (tests/test_ray.py)",
}

#: For each option declared not to shape the rows: the options of an export that
#: changes it ("<stream>" and "<job>" stand for an id of the catalog).
SAME_ROWS_WITH: dict[str, dict[str, Any]] = {
    "timeout_s": {"timeout_s": 12.5},
    "max_download_bytes": {"max_download_bytes": 1 << 30},
    "min_download_rate": {"min_download_rate": 1024.0},
    "retry": {"retry": RetryPolicy(attempts=2, wait_initial_s=0.01, wait_max_s=0.05)},
    "limit": {"limit": 1},
    "stream_ids": {"stream_ids": ["<stream>"]},
    "job_ids": {"job_ids": ["<job>"]},
    "job_status": {"job_status": "completed"},
    "started_after": {"started_after": "2000-01-01T00:00:00Z"},
    "started_before": {"started_before": "2100-01-01T00:00:00Z"},
    "min_duration_s": {"min_duration_s": 0.5},
    "probe": {"probe": "decode"},
    "with_thumbnails": {"with_thumbnails": True},
    "storage_options": {"storage_options": {"auto_mkdir": True}},
    "overwrite": {"overwrite": True},
    "mix_options": {"mix_options": True},
    "allow_foreign_files": {"allow_foreign_files": True},
    "shard_rows": {"shard_rows": 7},
    "checkpoint_every": {"checkpoint_every": 1},
    "checkpoint_seconds": {"checkpoint_seconds": 0.01},
    "break_lock": {"break_lock": True},
    "lock_timeout_s": {"lock_timeout_s": 60.0},
    "workers": {"workers": 2},
    "qc": {"qc": "decode"},
    "qc_fail_on": {"qc_fail_on": ["gaps>100000"]},
}

#: For each option declared to shape the rows: the options of two exports that differ
#: in it alone, whose rows must differ.
CHANGES_ROWS_WITH: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "frames": ({}, {"frames": "jpeg"}),
    "resize": ({"frames": "jpeg"}, {"frames": "jpeg", "resize": "32x24"}),
    "fps": ({}, {"fps": 5.0}),
    "image_quality": ({"frames": "jpeg"}, {"frames": "jpeg", "image_quality": 30}),
    "event_offset_ms": ({}, {"event_offset_ms": 250.0}),
}
#: ``source`` shapes the dataset rather than a recording's rows: a stream has the same
#: rows under ``streams`` and ``all``, but a dataset of streams and one of simulation
#: outputs are not mixed by accident (``all`` mixes them on purpose).
SHAPES_THE_DATASET = {"source"}


@pytest.fixture(scope="module")
def catalog() -> DemoCatalog:
    """Two short streams (one with a thumbnail) and the simulation jobs."""
    return make_demo_catalog(2, seed=5, width=48, height=32, seconds=1.5, active=0)


@pytest.fixture(scope="module")
def server(catalog: DemoCatalog) -> Iterator[DemoServer]:
    with DemoServer(catalog) as server:
        yield server


def _export(server: DemoServer, out: Path, **options: Any) -> Path:
    options = {"source": "all", **options}
    report = export(export_config(server, out, **options))
    assert report.failed == 0, report.problems
    assert report.exported > 0
    return out


def _rows(out: Path, drop: dict[str, set[str]] | None = None) -> dict[str, pl.DataFrame]:
    ds = open_dataset(str(out))
    tables = {}
    for name, keys in TABLES.items():
        frame = ds.table(name).collect()
        gone = PER_RUN.get(name, set()) | (drop or {}).get(name, set())
        tables[name] = frame.drop(sorted(gone & set(frame.columns))).sort(keys)
    return tables


def _shared(tables: dict[str, pl.DataFrame], ids: set[str]) -> dict[str, pl.DataFrame]:
    return {
        name: frame.filter(pl.col("stream_id").is_in(sorted(ids))) for name, frame in tables.items()
    }


def _ids(out: Path) -> set[str]:
    return set(open_dataset(str(out)).recordings.collect()["stream_id"])


@pytest.fixture(scope="module")
def baseline(server: DemoServer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _export(server, tmp_path_factory.mktemp("baseline") / "dataset")


def _fill(value: Any, catalog: DemoCatalog) -> Any:
    done = next(job for job in catalog.jobs if job.status == "completed" and job.outputs)
    ids = {"<stream>": catalog.recordings[0].stream_id, "<job>": done.job_id}
    if isinstance(value, list):
        return [ids.get(item, item) if isinstance(item, str) else item for item in value]
    return value


def test_every_option_is_tried_here_and_as_its_declaration_says() -> None:
    names = {spec.name for spec in OPTIONS}
    places = [set(NOT_VARIED), set(SAME_ROWS_WITH), set(CHANGES_ROWS_WITH), SHAPES_THE_DATASET]
    assert sum(len(place) for place in places) == len(names)  # each in one place
    assert set().union(*places) == names, "a new option: add a value to try it with"
    for name in SAME_ROWS_WITH:
        assert OPTION[name].data is None, f"{name} is declared to shape the rows"
        assert len(OPTION[name].no_data or "") > 20, name
    for name in set(CHANGES_ROWS_WITH) | SHAPES_THE_DATASET:
        assert OPTION[name].data is not None, f"{name} is declared not to shape the rows"
    for name, place in FILLS.items():
        for table, columns in place.items():
            for column in columns:
                assert f"{table}.{column}" in str(OPTION[name].no_data), (name, column)


@pytest.mark.parametrize("name", sorted(SAME_ROWS_WITH))
def test_an_option_that_does_not_shape_rows_leaves_them_the_same(
    name: str, catalog: DemoCatalog, server: DemoServer, baseline: Path, tmp_path: Path
) -> None:
    options = {key: _fill(value, catalog) for key, value in SAME_ROWS_WITH[name].items()}
    other = _export(server, tmp_path / "dataset", **options)
    shared = _ids(baseline) & _ids(other)
    assert shared  # something to compare
    want = _shared(_rows(baseline, FILLS.get(name)), shared)
    got = _shared(_rows(other, FILLS.get(name)), shared)
    for table in TABLES:
        assert want[table].height > 0 or table == "segments", table
        assert_frame_equal(got[table], want[table])


@pytest.mark.parametrize("name", sorted(CHANGES_ROWS_WITH))
def test_an_option_that_shapes_rows_changes_them(
    name: str, server: DemoServer, tmp_path: Path
) -> None:
    pytest.importorskip("simplejpeg")
    base, changed = CHANGES_ROWS_WITH[name]
    before = _rows(_export(server, tmp_path / "before", **base))
    after = _rows(_export(server, tmp_path / "after", **changed))
    differ = [
        table
        for table in TABLES
        if before[table].drop("export_options", strict=False).to_dicts()
        != after[table].drop("export_options", strict=False).to_dicts()
    ]
    assert differ, f"{name} changed no row: declare it no_data= with the reason"


# -- what the dataset records ---------------------------------------------------------

#: What the hand-written lists recorded before the declarations did (same values).
RICH = {
    "output": "x",
    "api_url": "https://user:pw@api.example/v1?sig=abc",
    "frames": "jpeg",
    "resize": "256x144",
    "fps": 5,
    "image_quality": 80,
    "stream_ids": ["a", "b"],
    "source": "all",
    "job_ids": ["j"],
    "job_status": "completed",
    "with_thumbnails": True,
    "event_offset_ms": 250,
    "probe": "decode",
    "shard_rows": 1000,
    "storage_options": {"secret": "s", "key": "k"},
    "started_after": "2026-01-01T00:00:00Z",
    "started_before": "2026-02-01",
    "min_duration_s": 3,
    "qc": "response",
    "qc_fail_on": ["gaps > 0"],
    "limit": 5,
}
RICH_PUBLIC = {
    "api_url": "https://api.example/v1",
    "frames": "jpeg",
    "resize": [256, 144],
    "fps": 5.0,
    "limit": 5,
    "stream_ids": ["a", "b"],
    "source": "all",
    "job_ids": ["j"],
    "job_status": "completed",
    "with_thumbnails": True,
    "executor": "local",
    "event_offset_ms": 250.0,
    "probe": "decode",
    "shard_rows": 1000,
    "storage_option_keys": ["key", "secret"],
    "started_after": "2026-01-01T00:00:00+00:00",
    "started_before": "2026-02-01T00:00:00+00:00",
    "min_duration_s": 3.0,
    "qc": "response",
    "qc_fail_on": ["gaps>0"],
}
DEFAULT_PUBLIC = {
    "api_url": None,
    "frames": "reference",
    "resize": None,
    "fps": None,
    "limit": None,
    "stream_ids": [],
    "source": "streams",
    "job_ids": [],
    "job_status": None,
    "with_thumbnails": False,
    "executor": "local",
    "event_offset_ms": 0.0,
    "probe": "auto",
    "shard_rows": 1000000,
    "storage_option_keys": [],
    "started_after": None,
    "started_before": None,
    "min_duration_s": None,
    "qc": "reference",
    "qc_fail_on": [],
}


def test_the_manifest_records_the_options_it_recorded_before(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip("simplejpeg")
    monkeypatch.delenv("ODYSSEY_API_URL", raising=False)
    assert ExportConfig(output="x").public_options() == DEFAULT_PUBLIC
    assert ExportConfig(**RICH).public_options() == RICH_PUBLIC  # type: ignore[arg-type]
    monkeypatch.setenv("ODYSSEY_API_URL", "https://env.example/v1?token=t")
    assert ExportConfig(output="x").public_options()["api_url"] == "https://env.example/v1"


def test_export_options_are_byte_for_byte_what_they_were() -> None:
    pytest.importorskip("simplejpeg")
    cases = {
        '{"event_offset_ms":0.0,"fps":null,"frames":"reference","quality":null,'
        '"resize":null,"source":"streams"}': {"output": "x"},
        '{"event_offset_ms":250.0,"fps":5.0,"frames":"jpeg","quality":80,'
        '"resize":"256x144","source":"all"}': RICH,
        '{"event_offset_ms":0.0,"fps":null,"frames":"png","quality":null,'
        '"resize":"256","source":"simulations"}': {
            "output": "x",
            "frames": "png",
            "resize": 256,
            "source": "simulations",
        },
    }
    for text, options in cases.items():
        assert options_json(data_options(ExportConfig(**options))) == text
    flags = {option.key: option.flag for option in DATA_OPTIONS}
    assert flags == {
        "frames": "--frames",
        "resize": "--resize",
        "fps": "--fps",
        "quality": "--image-quality",
        "source": "--source",
        "event_offset_ms": "--event-offset-ms",
    }


def test_a_dataset_from_before_is_not_seen_as_changed(server: DemoServer, tmp_path: Path) -> None:
    """A dataset whose manifest holds the options in the hand lists' order (as every
    dataset made before the declarations does) re-runs as unchanged, and still refuses
    other options."""
    out = _export(server, tmp_path / "dataset")
    path = out / "manifest.json"
    manifest = json.loads(path.read_text())
    old_order = ("frames", "resize", "fps", "quality", "source", "event_offset_ms")
    entries = [entry for entry in manifest["recordings"].values() if "options" in entry]
    assert entries
    for entry in entries:
        assert list(entry["options"]) != list(old_order)  # now in declaration order
        entry["options"] = {key: entry["options"][key] for key in old_order}
    path.write_text(json.dumps(manifest, indent=1))
    ds = open_dataset(str(out))
    assert len(recorded_options(ds.manifest.recordings, ds.manifest.options)) == 1
    again = export(export_config(server, out, source="all"))
    assert (again.exported, again.failed, again.already) == (0, 0, len(_ids(out)))
    with pytest.raises(OptionsMismatchError, match=r"--fps \(not set\) → 5.0"):
        export(export_config(server, out, source="all", fps=5.0))
