"""The code paths added for speed and flat memory give the same data as the plain ones.

No timings here (benchmarks/ measures them): the demo server's throttle and textured
content, the serve-demo size options, spilled materialised frames, and one row group per
recording in the frames shards.
"""

from __future__ import annotations

import io
import time
from pathlib import Path

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import DemoExport

import odyssey_data.cli as cli
from odyssey_data.demo import DemoServer, make_demo_catalog
from odyssey_data.demo.synth import DEMO_EPOCH, make_demo_recording
from odyssey_data.errors import ConfigError
from odyssey_data.pipeline import FrameOptions, _materialise
from odyssey_data.schema import FRAMES_SCHEMA
from odyssey_data.video import iter_decoded, probe_frames


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
    monkeypatch.setattr(cli.time, "sleep", stop)
    argv = ["serve-demo", "--size", "1280x704", "--seconds", "60", "--bitrate", "4M"]
    assert cli.main(argv) == 0
    assert (made["width"], made["height"], made["seconds"]) == (1280, 704, 60.0)
    assert (made["bitrate"], made["content"]) == (4_000_000, "noise")
    assert cli._bitrate("4000k") == 4_000_000
    assert cli._bitrate("250000") == 250_000
    for bad in ("fast", "10"):
        with pytest.raises(ConfigError):
            cli._bitrate(bad)
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
    memory, none = _materialise(frames, timing, str(video), options, "x")
    assert none is None
    _, spilled = _materialise(frames, timing, str(video), options, "x", str(tmp_path))
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
