"""Reads that fail after the open are one-line ``StorageError`` s too, as are temp folders
the OS refuses.

``DatasetStore.open`` hands out a file whose ``read``/``readinto``/``seek``/``close``
go through the store's one translation point, and ``DatasetStore.dataset`` (the lazy
tables of a remote dataset) opens its files the same way, so neither a Parquet scan in
polars' ``collect()`` nor a video PyAV decodes lets a backend's exception out. Real
parts: moto's S3 server on 127.0.0.1, stopped or with the object deleted after the open,
and an export of the demo server's recordings into it; folders the kernel refuses
(``/sys``). A full disk has no real stand-in here (no tmpfs, no ``/dev/full`` folder):
that one test makes ``os.mkdir`` fail with ``ENOSPC``.
"""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import export_config
from storage_servers import S3_TEST_KEY, S3_TEST_SECRET, ObjectStore, moto_s3

from odyssey_data.dataset import Dataset, open_dataset
from odyssey_data.demo import DemoServer, make_demo_catalog
from odyssey_data.errors import (
    StorageAccessError,
    StorageError,
    StorageFullError,
    StorageNotFoundError,
    StorageUnreachableError,
)
from odyssey_data.pipeline import export
from odyssey_data.storage import DatasetStore
from odyssey_data.task import STOPS_THE_RUN

#: One attempt per request and a short connect timeout: the server is gone, and
#: retrying would only make the test slow.
ONE_ATTEMPT: dict[str, Any] = {
    "config_kwargs": {"retries": {"max_attempts": 1}, "connect_timeout": 1}
}

#: Reads of 4 KiB: every read past the first block goes to the server (as reads of a
#: video longer than the default 50 MB block do), instead of one read caching it all.
SMALL_BLOCKS: dict[str, Any] = {"default_block_size": 4096}

DATA = bytes(range(256)) * 256  # 64 KiB, 16 blocks


def assert_one_line(message: str, *fragments: str) -> None:
    """One line naming every fragment, without credentials or a query string."""
    assert "\n" not in message, message
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    assert S3_TEST_KEY not in message, message
    assert S3_TEST_SECRET not in message, message
    assert not re.search(r"\?[^ ]*=", message), message


# -- DatasetStore.open: the handle ------------------------------------------------------


@pytest.fixture(scope="module")
def s3() -> Iterator[ObjectStore]:
    """A moto server for the tests that keep it running."""
    with moto_s3() as store:
        yield store


def reader_store(s3: ObjectStore) -> DatasetStore:
    """A store on a fresh bucket holding ``blob.bin`` (read in small blocks)."""
    writer = DatasetStore(s3.url(), s3.storage_options)
    writer.write_bytes("blob.bin", DATA)
    return DatasetStore(writer.url, {**s3.storage_options, **ONE_ATTEMPT, **SMALL_BLOCKS})


def read_past_first_block(handle: Any) -> bytes:
    handle.seek(len(DATA) // 2)
    return bytes(handle.read(100))


def readinto_past_first_block(handle: Any) -> bytes:
    handle.seek(len(DATA) // 2)
    buffer = bytearray(100)
    count = handle.readinto(buffer)
    return bytes(buffer[:count])


READS: dict[str, Callable[[Any], bytes]] = {
    "read": read_past_first_block,
    "readinto": readinto_past_first_block,
}


@pytest.mark.parametrize("how", sorted(READS))
def test_a_handle_reads_what_the_file_holds(s3: ObjectStore, how: str) -> None:
    store = reader_store(s3)
    with store.open("blob.bin") as handle:
        assert handle.seekable()
        assert handle.readable()
        assert READS[how](handle) == DATA[len(DATA) // 2 : len(DATA) // 2 + 100]
        assert handle.tell() == len(DATA) // 2 + 100
    assert handle.closed


@pytest.mark.parametrize("how", sorted(READS))
def test_a_read_after_the_endpoint_stopped_is_one_line_that_stops_the_run(how: str) -> None:
    with moto_s3() as server:
        store = reader_store(server)
        handle = store.open("blob.bin")
        assert handle.read(10) == DATA[:10]  # the first block, cached
        endpoint = server.endpoint_url
    with pytest.raises(StorageUnreachableError) as info:
        READS[how](handle)
    assert_one_line(
        str(info.value),
        f"cannot read blob.bin under {store.url}: ",
        f"cannot reach the endpoint {endpoint}",
    )
    assert isinstance(info.value, STOPS_THE_RUN)
    handle.close()
    assert handle.closed


def test_a_file_deleted_after_the_open_is_named_as_gone(s3: ObjectStore) -> None:
    store = reader_store(s3)
    with store.open("blob.bin") as handle:
        assert handle.read(10) == DATA[:10]
        store.fs.rm_file(store.path("blob.bin"))
        with pytest.raises(StorageNotFoundError) as info:
            read_past_first_block(handle)
    assert_one_line(
        str(info.value),
        f"cannot read blob.bin under {store.url}: the file is gone",
        "open the dataset again",
    )
    assert "bucket" not in str(info.value)  # the bucket is there: the file went


def test_checksum_and_table_batches_through_a_stopped_endpoint_are_one_line() -> None:
    with moto_s3() as server:
        writer = DatasetStore(server.url(), server.storage_options)
        writer.write_table("frames/part-000000.parquet", pa.table({"a": range(5000)}), "frames")
        store = DatasetStore(writer.url, {**server.storage_options, **ONE_ATTEMPT, **SMALL_BLOCKS})
        handle = store.open("frames/part-000000.parquet")
        batches = store.iter_table_batches("frames/part-000000.parquet")
    # pyarrow reads the footer first, then the row group: past the first block.
    with pytest.raises(StorageUnreachableError) as info:
        pq.read_table(handle)
    assert_one_line(str(info.value), f"cannot read frames/part-000000.parquet under {store.url}")
    with pytest.raises(StorageUnreachableError) as info:
        next(batches)
    assert_one_line(str(info.value), f"cannot read frames/part-000000.parquet under {store.url}")
    with pytest.raises(StorageUnreachableError) as info:
        store.checksum("frames/part-000000.parquet")
    assert_one_line(str(info.value), f"cannot read frames/part-000000.parquet under {store.url}")


def test_a_local_handle_reads_and_closes_like_the_file(tmp_path: Path) -> None:
    store = DatasetStore(str(tmp_path / "dataset"))
    store.write_bytes("blob.bin", DATA)
    with store.open("blob.bin") as handle:
        assert readinto_past_first_block(handle) == DATA[len(DATA) // 2 : len(DATA) // 2 + 100]
        assert handle.seek(0, os.SEEK_END) == len(DATA)
    assert store.checksum("blob.bin")[1] == len(DATA)
    # A programming error (a closed file) is not a storage error: it shows as it is.
    with pytest.raises(ValueError, match="closed"):
        handle.read(1)


# -- DatasetStore.dataset: lazy scans -----------------------------------------------------


def test_a_scan_after_the_endpoint_stopped_is_one_line_in_collect() -> None:
    with moto_s3() as server:
        writer = DatasetStore(server.url(), server.storage_options)
        writer.write_table("frames/part-000000.parquet", pa.table({"a": range(100)}), "frames")
        store = DatasetStore(writer.url, {**server.storage_options, **ONE_ATTEMPT})
        lazy = pl.scan_pyarrow_dataset(store.dataset(["frames/part-000000.parquet"]))
        assert lazy.select(pl.len()).collect().item() == 100
        endpoint = server.endpoint_url
    for attempt in (
        lambda: lazy.collect(),
        lambda: store.dataset(["frames/part-000000.parquet"]),
    ):
        with pytest.raises(StorageUnreachableError) as info:
            attempt()
        assert_one_line(
            str(info.value),
            f"cannot read frames/part-000000.parquet under {store.url}: ",
            f"cannot reach the endpoint {endpoint}",
        )


def test_a_scan_of_a_deleted_file_names_it(s3: ObjectStore) -> None:
    store = DatasetStore(s3.url(), s3.storage_options)
    store.write_table("frames/part-000000.parquet", pa.table({"a": range(100)}), "frames")
    lazy = pl.scan_pyarrow_dataset(store.dataset(["frames/part-000000.parquet"]))
    store.fs.rm_file(store.path("frames/part-000000.parquet"))
    with pytest.raises(StorageError) as info:
        lazy.collect()
    assert_one_line(str(info.value), "frames/part-000000.parquet", store.url)


# -- temp folders ---------------------------------------------------------------------


def test_a_temp_folder_the_kernel_refuses_stops_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    # /sys/kernel exists (so the scratch place is there) and refuses new folders.
    monkeypatch.setenv("ODYSSEY_DATA_SCRATCH", "/sys/kernel")
    store = DatasetStore("memory://storage-read-errors-scratch/dataset")
    assert store.scratch_dir() == "/sys/kernel"
    for make in (store.make_scratch_folder, lambda: store.scratch_folder().__enter__()):
        with pytest.raises(StorageAccessError) as info:
            make()
        assert_one_line(
            str(info.value), "cannot make the temp folder /sys/kernel (ODYSSEY_DATA_SCRATCH): "
        )
        assert "permission denied" in str(info.value) or "read-only" in str(info.value)
        assert isinstance(info.value, STOPS_THE_RUN)


def test_a_full_disk_for_temp_folders_stops_the_run(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    store = DatasetStore(str(tmp_path / "dataset"))
    assert os.path.samefile(store.scratch_dir(), tmp_path / "dataset")
    real_mkdir = os.mkdir

    def full(path: Any, mode: int = 0o777, **kwargs: Any) -> None:
        if str(path).startswith(str(tmp_path)):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        real_mkdir(path, mode, **kwargs)

    monkeypatch.setattr(os, "mkdir", full)  # no full disk to be had: the OS call fails
    with pytest.raises(StorageFullError) as info:
        store.make_scratch_folder()
    assert_one_line(str(info.value), f"cannot make the temp folder {store.root}: no space left")
    assert isinstance(info.value, STOPS_THE_RUN)
    assert os.listdir(tmp_path / "dataset") == []


@pytest.mark.parametrize("frames", ["reference", "jpeg"])  # jpeg: the run's spill folder too
def test_an_export_whose_temp_folders_are_refused_stops_in_one_line(
    demo_server: DemoServer, monkeypatch: pytest.MonkeyPatch, frames: str
) -> None:
    monkeypatch.setenv("ODYSSEY_DATA_SCRATCH", "/sys/kernel")
    output = f"memory://storage-read-errors-export-{frames}/dataset"
    with pytest.raises(StorageAccessError) as info:
        export(export_config(demo_server, output, frames=frames))
    assert_one_line(
        str(info.value), "cannot make the temp folder /sys/kernel (ODYSSEY_DATA_SCRATCH)"
    )


def test_a_lerobot_conversion_whose_temp_folder_is_refused_stops_in_one_line(
    demo_server: DemoServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from odyssey_data.lerobot import convert_to_lerobot

    export(export_config(demo_server, tmp_path / "dataset", limit=1))
    monkeypatch.setenv("ODYSSEY_DATA_SCRATCH", "/sys/kernel")
    with pytest.raises(StorageAccessError) as info:
        convert_to_lerobot(
            open_dataset(str(tmp_path / "dataset")),
            "memory://storage-read-errors-lerobot/out",
            fps=5,
            size=(64, 32),
        )
    assert_one_line(
        str(info.value), "cannot make the temp folder /sys/kernel (ODYSSEY_DATA_SCRATCH)"
    )


# -- end to end: a dataset on S3 whose endpoint goes away --------------------------------


def frames_of_one_video(ds: Dataset) -> pl.DataFrame:
    first = ds.frames.select("stream_id").head(1).collect().item()
    return ds.frames.filter(pl.col("stream_id") == first).sort("frame_index").collect()


def test_reading_frames_of_an_s3_dataset_whose_endpoint_stopped_is_one_line() -> None:
    from odyssey_data.torch import FrameDataset

    # One recording whose video is larger than PyAV's first reads (noise, 2 Mbit/s):
    # decoding its last frame reads bytes that are not in any cache yet.
    catalog = make_demo_catalog(1, seed=3, active=0, content="noise", bitrate=2_000_000)
    with moto_s3() as server, DemoServer(catalog) as demo:
        url = server.url()
        report = export(export_config(demo, url, storage_options=server.storage_options))
        assert report.exported == 1
        options = {**server.storage_options, **ONE_ATTEMPT, **SMALL_BLOCKS}
        ds = open_dataset(url, options)
        rows = frames_of_one_video(ds)
        assert len(ds.load_frames(rows.head(1))) == 1
        frames = FrameDataset(open_dataset(url, options), stream_ids=[rows["stream_id"][0]])
        assert frames[0]["frame_index"] == 0  # the video is open, its first blocks read
        endpoint = server.endpoint_url
    # The frames table is scanned first: the scan fails.
    with pytest.raises(StorageUnreachableError) as info:
        ds.load_frames(rows.tail(1))
    assert_one_line(str(info.value), f"under {url}: ", f"cannot reach the endpoint {endpoint}")
    # FrameDataset holds its index: the video's own reads fail, inside PyAV.
    with pytest.raises(StorageUnreachableError) as info:
        frames[len(frames) - 1]
    assert_one_line(
        str(info.value),
        f"cannot read {rows['video_path'][0]} under {url}: ",
        f"cannot reach the endpoint {endpoint}",
    )
