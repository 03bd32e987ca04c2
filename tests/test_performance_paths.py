"""The code paths added for speed and flat memory give the same data as the plain ones.

No timings here (benchmarks/ measures them): the demo server's throttle and textured
content, the serve-demo size options, spilled materialised frames, and one row group per
recording in the frames shards.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import operator
import os
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from urllib.parse import quote

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import FAST_RETRY, DemoExport, export_config

import odyssey_data.cli as cli
from odyssey_data import fetch as fetch_module
from odyssey_data import pipeline
from odyssey_data.api import OdysseyClient, transport
from odyssey_data.cli import remote
from odyssey_data.demo import DemoServer, make_demo_catalog
from odyssey_data.demo.synth import DEMO_EPOCH, make_demo_recording
from odyssey_data.errors import ConfigError, StorageError
from odyssey_data.executors import LocalExecutor
from odyssey_data.materialise import materialise
from odyssey_data.models import RecordingInfo
from odyssey_data.options import ClientOptions
from odyssey_data.pipeline import (
    Fetched,
    FrameOptions,
    RecordingTask,
    export,
    process_recording,
)
from odyssey_data.schema import FRAMES_SCHEMA
from odyssey_data.storage import TMP_PREFIX, DatasetStore, local_scratch_root
from odyssey_data.video import iter_decoded, probe_frames
from odyssey_data.work import fetch_ahead, release_fetched


def _blob_url(server: DemoServer, client: httpx.Client) -> tuple[str, int]:
    token = client.post("/auth/token", json={"api_key": server.api_key}).json()["access_token"]
    rec = server.catalog.recordings[0]
    detail = client.get(
        f"/recordings/{rec.stream_id}", headers={"Authorization": f"Bearer {token}"}
    ).json()
    return detail["video_url"], len(rec.video_bytes() or b"")


def test_throttled_blobs_arrive_whole_and_no_faster_than_the_cap() -> None:
    catalog = make_demo_catalog(1, active=0, seconds=1.0)
    rate = 100_000.0
    with DemoServer(catalog, throttle_bytes_per_s=rate) as server:
        with httpx.Client(base_url=server.base_url) as client:
            url, size = _blob_url(server, client)
            started = time.perf_counter()
            body = client.get(url).content
            took = time.perf_counter() - started
    assert body == catalog.recordings[0].video_bytes()
    # The first chunk goes out at once: at least (size - one chunk) / rate.
    assert took >= (size - (64 << 10)) / rate * 0.9


def test_throttle_must_be_positive() -> None:
    with pytest.raises(ValueError, match="throttle"):
        DemoServer(make_demo_catalog(1), throttle_bytes_per_s=0)


def test_noise_content_spends_the_bitrate_and_is_deterministic() -> None:
    def rec(content: str):
        return make_demo_recording(
            3,
            started_at=DEMO_EPOCH,
            width=320,
            height=176,
            seconds=2.0,
            bitrate=2_000_000,
            content=content,
        )

    flat, noisy = rec("flat").video_bytes(), rec("noise").video_bytes()
    assert flat is not None
    assert noisy is not None
    # Seeded pixels (x264's rate control with frame threads may vary the bytes).
    again = rec("noise").iter_frames()
    for (frame, pts), (other, other_pts) in zip(rec("noise").iter_frames(), again, strict=True):
        assert pts == other_pts
        assert np.array_equal(frame, other)
    # x264 finds almost nothing to spend bits on in flat colours; noise uses the budget.
    assert len(noisy) > 5 * len(flat)
    assert len(noisy) * 8 / 2.0 > 1_000_000
    # The same frames and timing as the flat video (only the pixels differ).
    assert np.array_equal(probe_frames(io.BytesIO(noisy)).pts, probe_frames(io.BytesIO(flat)).pts)
    with pytest.raises(ValueError, match="content"):
        make_demo_recording(3, started_at=DEMO_EPOCH, content="plaid")


def test_serve_demo_size_seconds_and_bitrate(monkeypatch: pytest.MonkeyPatch) -> None:
    made = {}

    def fake_catalog(*args: object, **kwargs: object):
        made.update(kwargs)
        return make_demo_catalog(1)

    def stop(_: float) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("odyssey_data.demo.make_demo_catalog", fake_catalog)
    monkeypatch.setattr(remote.time, "sleep", stop)
    argv = ["serve-demo", "--size", "1280x704", "--seconds", "60", "--bitrate", "4M"]
    assert cli.main(argv) == 0
    assert (made["width"], made["height"], made["seconds"]) == (1280, 704, 60.0)
    assert (made["bitrate"], made["content"]) == (4_000_000, "noise")
    assert remote.parse_bitrate("4000k") == 4_000_000
    assert remote.parse_bitrate("250000") == 250_000
    for bad in ("fast", "10"):
        with pytest.raises(ConfigError):
            remote.parse_bitrate(bad)
    assert cli.main(["serve-demo", "--size", "1280"]) == 2


def test_spilled_materialised_frames_equal_the_in_memory_ones(tmp_path: Path) -> None:
    rec = make_demo_recording(5, started_at=DEMO_EPOCH, seconds=12.0, start_pts=900)
    video = tmp_path / "video.mp4"
    video.write_bytes(rec.video_bytes() or b"")
    timing = probe_frames(video)
    n = timing.frame_count
    assert n > 256  # more than one batch
    frames = pa.table(
        {
            "stream_id": pa.array(["s"] * n),
            "frame_index": pa.array(np.arange(n, dtype=np.int32)),
            "pts": pa.array(timing.pts),
        }
    )
    options = FrameOptions("jpeg", (64, 36))
    memory, none = materialise(frames, timing, str(video), options, "x")
    assert none is None
    _, spilled = materialise(frames, timing, str(video), options, "x", str(tmp_path))
    assert spilled is not None
    assert spilled.rows == n
    from_file = pa.Table.from_batches(list(spilled.batches()))
    assert from_file.equals(memory)
    assert memory.column("pts").to_pylist() == [p for p, _ in iter_decoded(video)]


def test_frames_shards_hold_one_row_group_per_recording(demo_export: DemoExport) -> None:
    root = Path(demo_export.output)
    for shard in sorted((root / "frames").glob("*.parquet")):
        meta = pq.ParquetFile(shard).metadata
        col = meta.schema.to_arrow_schema().get_field_index("stream_id")
        ids = []
        for i in range(meta.num_row_groups):
            stats = meta.row_group(i).column(col).statistics
            assert stats.min == stats.max  # one recording per row group
            ids.append(stats.min)
        assert ids == sorted(set(ids))
    assert FRAMES_SCHEMA.names == pq.read_schema(shard).names


# -- hashing while downloading, and moving the video into place ------------------------


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.mark.parametrize("chunked", [False, True])
def test_cut_and_resumed_video_is_moved_whole_with_the_served_hash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunked: bool
) -> None:
    catalog = make_demo_catalog(2, active=0, seconds=2.0)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    output = tmp_path / "out"
    with DemoServer(catalog) as server:
        for rec in catalog.recordings:
            server.inject_truncation(
                f"/blobs/{quote(rec.stream_id, safe='')}/video.mp4", 5000, chunked=chunked
            )
        report = export(export_config(server, output))
    assert report.exported == 2
    assert report.retries >= 2
    manifest = json.loads((output / "manifest.json").read_text())
    files = {f["path"]: f for f in manifest["files"]}
    recordings = pq.read_table(output / "recordings").to_pylist()
    by_id = {row["stream_id"]: row for row in recordings}
    for rec in catalog.recordings:
        served = rec.video_bytes() or b""
        rel = f"videos/{rec.stream_id}.mp4"
        assert (output / rel).read_bytes() == served
        entry = files[rel]
        assert entry["sha256"] == hashlib.sha256(served).hexdigest()
        assert entry["bytes"] == len(served)
        assert by_id[rec.stream_id]["video_sha256"] == entry["sha256"]
        assert by_id[rec.stream_id]["video_bytes"] == len(served)
    # No temp file or folder anywhere: not under OUTPUT, not in the system temp dir.
    assert not [p for p in _tree(output) if ".tmp-" in p]
    assert list(scratch.iterdir()) == []


def test_download_hash_survives_resume_and_restart(tmp_path: Path) -> None:
    catalog = make_demo_catalog(1, active=0, seconds=2.0)
    rec = catalog.recordings[0]
    served = rec.video_bytes() or b""
    path = f"/blobs/{quote(rec.stream_id, safe='')}/video.mp4"
    with (
        DemoServer(catalog) as server,
        OdysseyClient(server.base_url, server.api_key, retry=FAST_RETRY) as client,
    ):
        url = client.get_recording(rec.stream_id).video_url
        assert url is not None
        for inject in (
            lambda: server.inject_truncation(path, 3000),  # resumed with Range
            lambda: server.inject_truncation(path, 3000, chunked=True),
            lambda: server.inject(path, 503, times=2),  # restarted from byte 0
            lambda: None,
        ):
            inject()
            with open(tmp_path / "v.mp4", "w+b") as handle:
                stats = client.download(url, handle, what="v")
            assert stats.sha256 == hashlib.sha256(served).hexdigest()
            assert (tmp_path / "v.mp4").read_bytes() == served


def test_final_digest_rehashes_a_file_out_of_step(tmp_path: Path) -> None:
    from odyssey_data.api.download import DownloadState, _final_digest

    data = b"x" * 3_000_000
    with open(tmp_path / "f", "w+b") as handle:
        handle.write(data)
        state = DownloadState("https://example.test/f", digest=hashlib.sha256(b"n"), hashed=5)
        assert _final_digest(state, handle, len(data)) == hashlib.sha256(data).hexdigest()
        assert handle.tell() == len(data)


def test_put_file_moves_or_copies_and_checks_the_hash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = b"video bytes" * 1000
    digest = hashlib.sha256(data).hexdigest()
    store = DatasetStore(str(tmp_path / "ds"))
    scratch = store.scratch_dir()
    assert scratch is not None
    with tempfile.TemporaryDirectory(prefix=TMP_PREFIX, dir=scratch) as tmp:
        src = Path(tmp) / "v.mp4"
        src.write_bytes(data)
        entry = store.put_file("videos/a.mp4", str(src), sha256=digest)
        assert not src.exists()  # moved, not copied
        # Another filesystem: copied (hashed on the way), still whole under its name.
        src.write_bytes(data)

        real_replace = os.replace

        def cross_device(a: str, b: str) -> None:
            if a == str(src):  # the move from the download folder, not the copy's rename
                raise OSError(errno.EXDEV, "Invalid cross-device link")
            real_replace(a, b)

        monkeypatch.setattr(os, "replace", cross_device)
        copied = store.put_file("videos/b.mp4", str(src))
        monkeypatch.undo()
    for rel, got in (("videos/a.mp4", entry), ("videos/b.mp4", copied)):
        assert (tmp_path / "ds" / rel).read_bytes() == data
        assert (got.path, got.bytes, got.sha256) == (rel, len(data), digest)
    assert not [p for p in _tree(tmp_path / "ds") if ".tmp-" in p]
    # Object stores: streamed upload, checked against the download's hash.
    remote = DatasetStore("memory://put-file-test")
    # (its temp files live in the per-user scratch folder, not the system temp folder)
    assert remote.scratch_dir() == local_scratch_root()
    src = tmp_path / "r.mp4"
    src.write_bytes(data)
    up = remote.put_file("videos/r.mp4", str(src), sha256=digest)
    assert (up.bytes, up.sha256) == (len(data), digest)
    assert remote.read_bytes("videos/r.mp4") == data
    with pytest.raises(StorageError, match="SHA-256"):
        remote.put_file("videos/s.mp4", str(src), sha256="0" * 64)


def test_leftover_download_folders_are_removed(demo_server: DemoServer, tmp_path: Path) -> None:
    output = tmp_path / "out"
    export(export_config(demo_server, output, limit=1))
    left = output / f"{TMP_PREFIX}odyssey-data-crashed"
    left.mkdir()
    (left / "video.mp4").write_bytes(b"half")
    export(export_config(demo_server, output, limit=1))
    assert not left.exists()


# -- download-ahead (local executor) ---------------------------------------------------


def test_demo_export_leaves_no_temp_folder(demo_export: DemoExport) -> None:
    assert not [p for p in _tree(demo_export.output) if ".tmp-" in p]


def test_prefetcher_fetches_ahead_and_cleans_up_unprocessed_tasks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fetched: list[str] = []

    def fake_fetch(task: RecordingTask, folder: str) -> Fetched:
        (Path(folder) / "video.mp4").write_bytes(b"v")
        fetched.append(task.info.stream_id)
        return Fetched(folder)

    monkeypatch.setattr(fetch_module, "fetch", fake_fetch)
    store = DatasetStore(str(tmp_path / "ds"))
    client = ClientOptions(api_url="http://x", api_key="k")
    tasks = [RecordingTask(RecordingInfo(stream_id=f"s{i}"), client, store) for i in range(9)]
    executor = LocalExecutor(2, threads=True)
    stream = executor.ahead(fetch_ahead, iter(tasks), release_fetched)
    first = next(stream)
    assert first.info.stream_id == "s0"
    assert first.prefetched is not None
    assert Path(first.prefetched.folder, "video.mp4").exists()
    # While the consumer holds the first (busy, not asking for more), downloads go on
    # up to 2 x ahead recordings not yet handed on, and no further.
    deadline = time.monotonic() + 5
    while len(fetched) < 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.3)
    assert sorted(fetched) == ["s0", "s1", "s2", "s3", "s4"]
    assert next(stream).info.stream_id == "s1"  # in order; one more may now download
    deadline = time.monotonic() + 5
    while len(fetched) < 6 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.3)
    assert len(fetched) == 6
    # Interrupted here: closing the executor removes every folder, handed out or not.
    executor.close()
    assert not [p for p in _tree(tmp_path / "ds") if ".tmp-" in p]
    assert Path(store.root).exists()


def test_prefetched_task_is_processed_and_its_folder_removed(
    demo_server: DemoServer, tmp_path: Path
) -> None:
    config = export_config(demo_server, tmp_path / "ds")
    store = DatasetStore(config.output)
    rec = next(r for r in demo_server.catalog.recordings if r.video_bytes())
    task = RecordingTask(RecordingInfo(stream_id=rec.stream_id), config.client, store)
    folder = tempfile.mkdtemp(prefix=TMP_PREFIX, dir=store.scratch_dir())
    ahead = fetch_module.fetch(task, folder)
    result = process_recording(replace(task, prefetched=ahead))
    fetch_module.close_clients()
    assert result.status == "exported", result.reason
    assert result.video is not None
    served = rec.video_bytes() or b""
    assert result.video.sha256 == hashlib.sha256(served).hexdigest()
    assert (tmp_path / "ds" / result.video.path).read_bytes() == served
    assert result.stats.attempts >= 1
    assert not Path(folder).exists()


def test_reference_exports_run_in_threads_materialised_ones_in_processes(
    demo_server: DemoServer, tmp_path: Path
) -> None:
    reference = export_config(demo_server, tmp_path / "a", workers=2)
    jpeg = export_config(demo_server, tmp_path / "b", workers=2, frames="jpeg")
    for config, in_process in ((reference, True), (jpeg, False)):
        executor = pipeline._make_executor(config.run, config)
        try:
            assert executor.capabilities.in_process is in_process
        finally:
            executor.close()
    calls = [os.getpid] * 4
    in_threads = LocalExecutor(2, threads=True)
    in_processes = LocalExecutor(2)
    try:
        assert set(in_threads.map_unordered(operator.call, calls)) == {os.getpid()}
        assert os.getpid() not in set(in_processes.map_unordered(operator.call, calls))
    finally:
        in_threads.close()
        in_processes.close()


def test_downloads_read_the_socket_in_wide_chunks() -> None:
    # httpx has no option for its read size; the client reaches into its default
    # transport. Should an httpx release lay that out differently, this fails (downloads
    # would still be right, only several times slower: see benchmarks/export_speed.py).
    with httpx.Client() as plain:
        assert transport.widen_reads(plain)
    catalog = make_demo_catalog(
        1, active=0, width=320, height=192, seconds=1.0, bitrate=16_000_000, content="noise"
    )
    with (
        DemoServer(catalog) as demo_server,
        OdysseyClient(demo_server.base_url, demo_server.api_key) as client,
    ):
        stream_id, url = next(
            (info.stream_id, rec.video_url)
            for info in client.list_recordings()
            if (rec := client.get_recording(info.stream_id)).video_url
        )
        assert url is not None
        sink = io.BytesIO()
        stats = client.download(url, sink, what="video")
    recording = demo_server.catalog.get(stream_id)
    assert recording is not None
    expected = recording.video_bytes()
    assert expected is not None
    assert len(expected) > 4 * transport.READ_BYTES
    assert sink.getvalue() == expected
    assert stats.sha256 == hashlib.sha256(expected).hexdigest()
