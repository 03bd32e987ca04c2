"""Materialised frames are decoded while the video downloads, and equal decoding after.

The reader of a growing file hands the decoder what is on disk and waits for the rest;
a download that starts over or fails makes the export decode the finished file instead.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from conftest import export_config

from odyssey_data import materialise, open_dataset, work
from odyssey_data.align import TickSelector
from odyssey_data.demo import DemoServer, make_demo_catalog
from odyssey_data.growing import GrowingReader, Growth, StartedOver, WatchedWriter
from odyssey_data.pipeline import (
    ExportReport,
    FrameOptions,
    ProgressSink,
    RecordingResult,
    export,
)
from odyssey_data.video import decode_frames, encode_video


def _frames(n: int):
    rng = np.random.default_rng(5)
    for i in range(n):
        yield rng.integers(0, 255, (96, 160, 3), dtype=np.uint8), i * 3000


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("streaming") / "v.mp4"
    encode_video(path, _frames(120), width=160, height=96, bitrate=2_000_000)
    return path.read_bytes()


def test_the_reader_decodes_what_has_arrived_and_waits_for_the_rest(
    video: bytes, tmp_path: Path
) -> None:
    path = tmp_path / "video.mp4"
    growth = Growth()
    half = len(video) // 2
    first_frame_seen = threading.Event()
    written_at_first_frame: list[int] = []

    def writer() -> None:
        with open(path, "w+b") as handle:
            dest = WatchedWriter(handle, growth, lambda: len(video))
            growth.started.set()
            dest.write(video[:half])
            # The second half only once the reader decoded a frame (or 10 s passed).
            first_frame_seen.wait(10)
            for start in range(half, len(video), 4096):
                dest.write(video[start : start + 4096])
        growth.finish()

    thread = threading.Thread(target=writer)
    thread.start()
    growth.started.wait()
    got = []
    with GrowingReader(str(path), growth) as reader:
        for pts, rgb in decode_frames(reader, threads=1):  # type: ignore[arg-type]
            if not got:
                written_at_first_frame.append(growth.written)
                first_frame_seen.set()
            got.append((pts, hashlib.sha256(rgb.tobytes()).hexdigest()))
    thread.join()
    assert written_at_first_frame == [half]  # decoded before the download was whole
    whole = [(p, hashlib.sha256(r.tobytes()).hexdigest()) for p, r in decode_frames(path)]
    assert got == whole
    assert len(got) == 120


def test_the_reader_stops_when_the_download_starts_over(video: bytes, tmp_path: Path) -> None:
    path = tmp_path / "video.mp4"
    growth = Growth()
    with open(path, "w+b") as handle:
        dest = WatchedWriter(handle, growth, lambda: len(video))
        dest.write(video[:1000])
        with GrowingReader(str(path), growth) as reader:
            assert reader.read(10) == video[:10]
            dest.seek(0)
            dest.truncate()  # a retry the server would not resume: from byte 0 again
            with pytest.raises(StartedOver):
                reader.read(10)


def test_the_reader_stops_when_the_download_fails(video: bytes, tmp_path: Path) -> None:
    path = tmp_path / "video.mp4"
    growth = Growth()
    with open(path, "w+b") as handle:
        WatchedWriter(handle, growth).write(video[:1000])
        with GrowingReader(str(path), growth) as reader:
            threading.Timer(0.05, lambda: growth.finish(failed=True)).start()
            assert len(reader.read(2000)) == 1000
            with pytest.raises(StartedOver):
                reader.read(10)  # waited for more, then learned the download failed


class Results(ProgressSink):
    def __init__(self) -> None:
        self.results: dict[str, RecordingResult] = {}

    def advance(self, result: RecordingResult) -> None:
        self.results[result.stream_id] = result

    def finish(self, report: ExportReport) -> None:
        pass


def _frames_table(output: Path) -> pa.Table:
    return open_dataset(str(output)).frames.collect().to_arrow().sort_by("stream_id")


@pytest.fixture(scope="module")
def catalog():
    return make_demo_catalog(3, seed=21, active=0, seconds=2.0)


@pytest.mark.parametrize("fps", [None, 10.0, 7.0])
def test_streamed_images_equal_images_decoded_after_the_download(
    catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fps: float | None
) -> None:
    # With fps the frames are picked as their times arrive (TickSelector), the rows pick
    # them from the whole video (resample_positions): the same frames.
    options = {"frames": "jpeg", "resize": (64, 36), "workers": 2, "fps": fps}
    with DemoServer(catalog) as server:
        streamed = Results()
        report = export(export_config(server, tmp_path / "streamed", **options), progress=streamed)
        assert report.exported == 3
        assert all(r.streamed for r in streamed.results.values())
        monkeypatch.setattr(FrameOptions, "streams", lambda self: False)
        after = Results()
        export(export_config(server, tmp_path / "after", **options), progress=after)
        assert all(r.streamed is None for r in after.results.values())
    one, two = _frames_table(tmp_path / "streamed"), _frames_table(tmp_path / "after")
    assert one.num_rows > (40 if fps else 100)
    assert one.column("image").to_pylist() == two.column("image").to_pylist()
    assert one.drop_columns(["video_path"]).equals(two.drop_columns(["video_path"]))
    assert open_dataset(str(tmp_path / "streamed")).verify() == []


def test_a_download_that_starts_over_is_decoded_once_whole(catalog, tmp_path: Path) -> None:
    rec = catalog.recordings[0]
    data = rec.video_bytes()
    assert data is not None
    with DemoServer(catalog) as server:
        blob = f"/blobs/{rec.stream_id}/video.mp4"
        # Cut a third of the way; the resume (a Range request) is then answered with
        # the whole file (200): the client starts over from byte 0.
        server.inject_truncation(blob, len(data) // 3)
        server.inject(blob, 200, body=data)
        results = Results()
        report = export(
            export_config(server, tmp_path / "out", frames="jpeg", resize=(64, 36)),
            progress=results,
        )
    assert report.exported == 3
    assert results.results[rec.stream_id].streamed is False  # decoded after
    assert results.results[rec.stream_id].stats.retries >= 1
    others = [r for sid, r in results.results.items() if sid != rec.stream_id]
    assert all(r.streamed for r in others)
    ds = open_dataset(str(tmp_path / "out"))
    assert ds.verify() == []
    recording = ds.recordings.collect().to_arrow()
    row = recording.filter(pa.compute.equal(recording["stream_id"], rec.stream_id))
    assert row["video_sha256"][0].as_py() == hashlib.sha256(data).hexdigest()


def test_a_failed_download_while_streaming_fails_that_recording_alone(
    catalog, tmp_path: Path
) -> None:
    rec = catalog.recordings[1]
    with DemoServer(catalog) as server:
        server.inject(f"/blobs/{rec.stream_id}/video.mp4", 404)
        report = export(export_config(server, tmp_path / "out", frames="jpeg", resize=(64, 36)))
    assert (report.exported, report.failed) == (2, 1)
    reason = open_dataset(str(tmp_path / "out")).manifest.recordings[rec.stream_id].reason
    assert reason is not None
    assert "HTTP 404" in reason
    assert not [p for p in (tmp_path / "out").rglob("*") if ".tmp-" in p.name]


def test_images_that_do_not_match_the_rows_are_made_again(
    catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    class SkipsTheFirst(TickSelector):
        def feed(self, time_s: float) -> list[int]:
            return [kept for kept in super().feed(time_s) if kept != 0]

    options = {"frames": "jpeg", "resize": (64, 36), "fps": 7.0}
    with DemoServer(catalog) as server:
        export(export_config(server, tmp_path / "plain", **options))
        monkeypatch.setattr(materialise, "TickSelector", SkipsTheFirst)
        with caplog.at_level(logging.INFO, logger="odyssey_data.materialise"):
            report = export(export_config(server, tmp_path / "out", **options))
    assert report.exported == 3
    redone = [r for r in caplog.records if "do not match; decoding again" in r.getMessage()]
    assert len(redone) >= 1  # the check caught the streamed images (workers=1: in-process)
    one, two = _frames_table(tmp_path / "out"), _frames_table(tmp_path / "plain")
    assert one.column("image").to_pylist() == two.column("image").to_pylist()


def test_an_interrupt_does_not_wait_for_the_download(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Ctrl-C while a worker decodes: the interrupt goes up at once; the download thread
    # is not waited for, and stops quietly at its next write (no thread exception).
    seen: list[Growth] = []

    def interrupted(task: object, folder: str, growth: Growth) -> None:
        growth.started.wait()
        seen.append(growth)
        raise KeyboardInterrupt

    monkeypatch.setattr(work, "encode_as_it_arrives", interrupted)
    big = make_demo_catalog(
        1, active=0, width=320, height=192, seconds=1.0, bitrate=16_000_000, content="noise"
    )
    rec = big.recordings[0]
    data = rec.video_bytes()
    assert data is not None
    assert len(data) > 20 * (64 << 10)  # sent in many throttled chunks
    # ~10 s to download the video whole at this rate.
    with DemoServer(big, throttle_bytes_per_s=len(data) / 10) as server:
        config = export_config(server, tmp_path / "out", frames="jpeg", stream_ids=(rec.stream_id,))
        with pytest.raises(KeyboardInterrupt):
            export(config)
        growth = seen[0]
        assert growth.abandoned
        assert growth.finished or growth.written < len(data)  # not waited for
        # The abandoned download stops at its next write, long before the 10 s.
        with growth.cond:
            growth.cond.wait_for(lambda: growth.finished, timeout=5)
        assert growth.finished
        assert growth.written < len(data)
