"""``odyssey-data verify`` and ``Dataset.verify`` on every storage target."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from conftest import export_config
from storage_servers import (
    Target,
    gcs_fixture,  # noqa: F401 - fixture
    s3_fixture,  # noqa: F401 - fixture
    target_fixture,  # noqa: F401 - fixture
)

from odyssey_data import cli
from odyssey_data.dataset import open_dataset
from odyssey_data.demo import DemoServer
from odyssey_data.pipeline import export
from odyssey_data.storage import MANIFEST_NAME, DatasetStore


def _verify(target: Target, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str]:
    capsys.readouterr()
    code = cli.main(["verify", target.url, *extra, *target.cli_options()])
    return code, capsys.readouterr().out


def test_verify_catches_tampering_on_every_target(
    fresh_server: DemoServer, target: Target, capsys: pytest.CaptureFixture[str]
) -> None:
    export(export_config(fresh_server, target.url, storage_options=target.storage_options))
    store = DatasetStore(target.url, target.storage_options)
    manifest = open_dataset(target.url, target.storage_options).manifest
    videos = sorted(p for p, e in manifest.files.items() if e.kind == "video")
    shard = manifest.table_files("frames")[0]

    code, out = _verify(target, capsys)
    assert code == cli.EXIT_OK, out
    assert f"ok: {len(manifest.files)} files verified" in out

    # One byte changed in a video: same size, other checksum.
    original = store.read_bytes(videos[0])
    assert original is not None
    flipped = bytearray(original)
    flipped[len(flipped) // 2] ^= 0xFF
    store.write_bytes(videos[0], bytes(flipped))
    code, out = _verify(target, capsys)
    assert code == cli.EXIT_FATAL
    assert f"{videos[0]}: SHA-256 differs from the manifest" in out
    assert "1 problems" in out
    code, out = _verify(target, capsys, "--no-checksums")  # sizes only: not seen
    assert code == cli.EXIT_OK, out

    # A video deleted, and a shard replaced by another (valid) Parquet file.
    store.remove([videos[1]])
    store.write_table(shard, pa.table({"stream_id": ["intruder"]}), "frames")
    code, out = _verify(target, capsys, "--no-checksums")
    assert code == cli.EXIT_FATAL
    assert f"{videos[1]}: listed in the manifest but missing" in out
    assert f"{shard}: " in out
    code, out = _verify(target, capsys)
    assert code == cli.EXIT_FATAL
    assert "3 problems" in out

    # Put everything back: sound again.
    store.write_bytes(videos[0], original)
    export(
        export_config(
            fresh_server, target.url, storage_options=target.storage_options, overwrite=True
        )
    )
    assert open_dataset(target.url, target.storage_options).verify() == []


def _rewrite_manifest(out: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    path = out / MANIFEST_NAME
    data = json.loads(path.read_bytes())
    edit(data)
    path.write_text(json.dumps(data))


def test_verify_checks_schema_and_row_counts(
    fresh_server: DemoServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "dataset"
    export(export_config(fresh_server, out, shard_rows=1))
    target = Target("local", str(out))
    store = DatasetStore(str(out))

    # A shard whose checksum matches the manifest but whose columns do not.
    rel = "segments/part-000001.parquet"
    entry = store.write_table(rel, pa.table({"stream_id": ["x"], "prompt_index": [1]}), "segments")

    def relist(data: dict[str, Any]) -> None:
        for item in data["files"]:
            if item["path"] == rel:
                item.update(bytes=entry.bytes, sha256=entry.sha256)

    _rewrite_manifest(out, relist)
    code, text = _verify(target, capsys)
    assert code == cli.EXIT_FATAL
    assert f"{rel}: column 'prompt' is missing" in text
    assert f"{rel}: column 'prompt_index' is int64, not int32" in text
    assert "rows, the manifest says" in text

    # The manifest disagrees with itself: a recording's frame count changed.
    export(export_config(fresh_server, out, shard_rows=1, overwrite=True))
    sid = sorted(open_dataset(str(out)).manifest.exported())[0]

    def recount(data: dict[str, Any]) -> None:
        data["recordings"][sid]["frames"] += 1

    _rewrite_manifest(out, recount)
    problems = open_dataset(str(out)).verify()
    assert len(problems) == 1
    assert "add up to" in problems[0]


def test_verify_without_a_dataset_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli.main(["verify", str(tmp_path / "nothing")])
    err = capsys.readouterr().err
    assert code == cli.EXIT_FATAL
    assert "manifest.json is missing" in err
    (tmp_path / MANIFEST_NAME).write_text("{not json")
    code = cli.main(["verify", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == cli.EXIT_FATAL
    assert "is damaged (not valid JSON" in err
    assert len(err.strip().splitlines()) == 1
