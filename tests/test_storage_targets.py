"""Exports on every storage target: local path, file://, memory://, S3 (moto), GCS.

The object stores are real servers on 127.0.0.1 (``storage_servers``): s3fs and gcsfs
talk HTTP to them as they would to AWS and Google.
"""

from __future__ import annotations

import json
import sys
from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pytest
from conftest import export_config
from storage_servers import (  # also sets GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT before gcsfs loads
    S3_TEST_SECRET,
    Target,
    assert_same_tables,
    dataset_tables,
    gcs_fixture,  # noqa: F401 - fixture
    make_target,
    s3_fixture,  # noqa: F401 - fixture
    target_fixture,  # noqa: F401 - fixture
)

from odyssey_data import cli
from odyssey_data.cli.flags import storage_options
from odyssey_data.dataset import open_dataset
from odyssey_data.demo import DemoServer, make_demo_catalog
from odyssey_data.demo.synth import DEMO_EPOCH, make_demo_recording
from odyssey_data.errors import ConfigError, MissingDependencyError
from odyssey_data.pipeline import export
from odyssey_data.schema import TABLES
from odyssey_data.storage import LOCK_NAME, MANIFEST_NAME, DatasetStore


def _export(server: DemoServer, target: Target, **options: object) -> object:
    return export(
        export_config(server, target.url, storage_options=target.storage_options, **options)
    )


def test_same_dataset_on_every_target(demo_export, target: Target) -> None:
    """The demo export gives equal tables on every target, in several shards, verified."""
    # Several shards, so several commits; S3 runs two worker processes, which rebuild
    # the store (and its s3fs filesystem) from the pickled URL and options.
    workers = 2 if target.kind == "s3" else 1
    report = _export(demo_export.server, target, shard_rows=150, workers=workers)
    assert report.exported == demo_export.report.exported == 8
    assert report.shards >= 4
    ds = open_dataset(target.url, target.storage_options)
    assert ds.verify() == []
    assert len(ds.manifest.table_files("frames")) == report.shards
    assert ds.store.file_info(LOCK_NAME) is None  # released at the end
    assert_same_tables(
        dataset_tables(target.url, target.storage_options), dataset_tables(str(demo_export.output))
    )
    # Frames load by reference from every target.
    frames = ds.frames.head(3).collect()
    images = ds.load_frames(frames)
    assert len(images) == 3
    assert images[0].shape == (frames["height"][0], frames["width"][0], 3)


def test_memory_target_runs_workers_in_process(fresh_server: DemoServer) -> None:
    """memory:// exists in one process only: the export keeps the work there (threads)."""
    url = "memory://odyssey-test-workers/dataset"
    report = export(export_config(fresh_server, url, workers=2))
    assert report.exported == 3
    assert open_dataset(url).verify() == []
    with pytest.raises(ConfigError, match="memory"):
        export(export_config(fresh_server, url, executor="ray"))


def test_rerun_adds_only_new_and_retries_failed(target: Target) -> None:
    """A re-run adds a new recording and a previously failed one; nothing is duplicated;
    recordings already exported are neither downloaded nor rewritten."""
    catalog = make_demo_catalog(3, seed=11, active=1, seconds=1.5)
    with DemoServer(catalog, page_cap=2) as server:
        broken = catalog.snapshot()[1].stream_id
        server.inject(f"/blobs/{broken}/video.mp4", 500, times=50)
        first = _export(server, target, shard_rows=40)
        assert (first.exported, first.failed, first.skipped) == (2, 1, 1)
        ds = open_dataset(target.url, target.storage_options)
        assert ds.manifest.recordings[broken].status == "failed"
        assert "500" in (ds.manifest.recordings[broken].reason or "")
        # The dataset card (README.md) is rewritten with the new counts; the rest is kept.
        files_before = {p: e.sha256 for p, e in ds.manifest.files.items() if e.kind != "card"}

        server.clear_faults()
        new = make_demo_recording(4321, started_at=DEMO_EPOCH + timedelta(days=2), seconds=1.5)
        catalog.add(new)
        server.request_log.clear()
        second = _export(server, target, shard_rows=40)
        assert (second.exported, second.already, second.failed) == (2, 2, 0)
        downloaded = {
            e.path.split("/")[2] for e in server.request_log if e.path.startswith("/blobs/")
        }
        assert downloaded == {broken, new.stream_id}

    ds = open_dataset(target.url, target.storage_options)
    assert ds.verify() == []
    assert ds.manifest.counts() == {"exported": 4, "skipped": 1}
    for path, sha in files_before.items():
        assert ds.manifest.files[path].sha256 == sha  # old shards and videos untouched
    recordings = ds.recordings.collect()
    assert sorted(recordings["stream_id"]) == sorted(ds.manifest.exported())
    frames = ds.frames.collect()
    assert frames.select("stream_id", "frame_index").is_duplicated().sum() == 0
    assert frames.height == recordings["frame_count"].sum()

    # Nothing new: no download, nothing rewritten but the manifest.
    with DemoServer(catalog, page_cap=2) as server:
        third = _export(server, target)
        assert (third.exported, third.already) == (0, 4)
        assert not any(e.path.startswith("/blobs/") for e in server.request_log)
    again = open_dataset(target.url, target.storage_options)
    assert again.manifest.files == ds.manifest.files
    assert again.manifest.generation == ds.manifest.generation + 1


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_overwrite_starts_fresh(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """--overwrite replaces the dataset: old files go, the generation keeps counting,
    and files that are not the dataset's (at the root) stay."""
    target = make_target(kind, request, tmp_path)
    big = make_demo_catalog(4, seed=5, active=0, seconds=1.0)
    small = make_demo_catalog(2, seed=6, active=0, seconds=1.0)
    store = DatasetStore(target.url, target.storage_options)
    with DemoServer(big) as server:
        _export(server, target, shard_rows=30)
    store.write_bytes("NOTES.txt", b"not part of the dataset")
    old = open_dataset(target.url, target.storage_options).manifest
    with DemoServer(small) as server:
        code = cli.main(
            [
                "export",
                target.url,
                "--api-url",
                server.base_url,
                "--api-key",
                server.api_key,
                "--workers",
                "1",
                "--overwrite",
                "--shard-rows",
                "30",
                "-q",
                *target.cli_options(),
            ]
        )
        assert code == 0
        with DemoServer(small) as clean_server:
            clean = make_target("memory", request, tmp_path)
            _export(clean_server, clean)
    ds = open_dataset(target.url, target.storage_options)
    assert ds.verify() == []
    assert ds.manifest.generation > old.generation + 1  # the empty commit, then the new
    assert sorted(ds.manifest.exported()) == sorted(r.stream_id for r in small.recordings)
    listed = set(ds.manifest.files)
    on_disk = {rel for folder in (*TABLES, "videos") for rel in store.list_files(folder)}
    assert on_disk | {"README.md"} == listed  # every old shard and video is gone
    assert ds.manifest.files["README.md"].kind == "card"  # the card is fresh too
    assert store.read_bytes("NOTES.txt") == b"not part of the dataset"
    assert_same_tables(
        dataset_tables(target.url, target.storage_options), dataset_tables(clean.url)
    )


def test_leftovers_ignored_by_readers_and_removed_by_next_run(
    fresh_server: DemoServer, tmp_path: Path
) -> None:
    out = tmp_path / "dataset"
    export(export_config(fresh_server, out))
    before = dataset_tables(str(out))
    store = DatasetStore(str(out))
    # Names of the export's own (a shard, a video, a temp file of a manifest write).
    junk = [
        "frames/part-000099.parquet",
        "videos/not-listed.mp4",
        f".tmp-{'0123' * 8}-manifest.json",
    ]
    table = pa.table({"stream_id": ["ghost"], "frame_index": pa.array([0], pa.int32())})
    store.write_table(junk[0], table, "frames")
    for rel in junk[1:]:
        store.write_bytes(rel, b"leftover")
    assert_same_tables(dataset_tables(str(out)), before)  # readers see only listed files
    assert open_dataset(str(out)).verify() == []
    report = export(export_config(fresh_server, out))
    assert report.exported == 0
    for rel in junk:
        assert store.file_info(rel) is None
    assert_same_tables(dataset_tables(str(out)), before)


def test_cli_export_and_inspect_on_s3_with_storage_options(
    demo_server: DemoServer, request: pytest.FixtureRequest, tmp_path: Path, capsys
) -> None:
    """--storage-option KEY=VALUE reaches s3fs; no secret lands in the manifest."""
    target = make_target("s3", request, tmp_path)
    args = ["--api-url", demo_server.base_url, "--api-key", demo_server.api_key]
    code = cli.main(["export", target.url, *args, "--workers", "1", "-q", *target.cli_options()])
    assert code == cli.EXIT_OK  # the demo's active stream is not ready yet: not a failure
    capsys.readouterr()
    assert cli.main(["inspect", target.url, "--json", *target.cli_options()]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["recordings"] == 8
    manifest = DatasetStore(target.url, target.storage_options).read_bytes(MANIFEST_NAME)
    assert manifest is not None
    for secret in (S3_TEST_SECRET, demo_server.api_key, "X-Amz-Signature"):
        assert secret.encode() not in manifest
    assert json.loads(manifest)["options"]["storage_option_keys"] == [
        "endpoint_url",
        "key",
        "secret",
    ]


def test_storage_option_values_parse_as_json() -> None:
    parsed = storage_options(
        ["endpoint_url=http://127.0.0.1:9000", "anon=true", "n=3", 'client_kwargs={"a": 1}']
    )
    assert parsed == {
        "endpoint_url": "http://127.0.0.1:9000",
        "anon": True,
        "n": 3,
        "client_kwargs": {"a": 1},
    }


@pytest.mark.parametrize(
    ("url", "package", "extra"),
    [("s3://bucket/data", "s3fs", "s3"), ("gs://bucket/data", "gcsfs", "gcs")],
)
def test_missing_extra_names_the_pip_command(
    url: str, package: str, extra: str, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setitem(sys.modules, package, None)  # makes `import package` fail
    with pytest.raises(MissingDependencyError, match=rf"pip install 'odyssey-data\[{extra}\]'"):
        DatasetStore(url)
    with pytest.raises(MissingDependencyError):
        open_dataset(url)
    code = cli.main(["export", url, "--api-url", "http://127.0.0.1:9", "--api-key", "ody_x", "-q"])
    assert code == cli.EXIT_USAGE
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert f"pip install 'odyssey-data[{extra}]'" in err
    assert "Traceback" not in err
