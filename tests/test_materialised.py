"""Materialised exports (--frames jpeg/png, --resize, --fps), stats, clips and previews."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from conftest import DemoExport, export_config
from PIL import Image

from odyssey_data import open_dataset
from odyssey_data.cli import main
from odyssey_data.demo import DemoServer
from odyssey_data.errors import ConfigError
from odyssey_data.images import parse_resize, target_size
from odyssey_data.pipeline import ExportConfig, export


def decode(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


@pytest.fixture(scope="module")
def jpeg_export(demo_server: DemoServer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("jpeg") / "ds"
    report = export(export_config(demo_server, out, frames="jpeg", resize=(96, None), workers=2))
    assert report.failed == 0
    return out


def test_jpeg_frames_are_close_to_the_reference_frames(
    jpeg_export: Path, demo_export: DemoExport
) -> None:
    mat = open_dataset(str(jpeg_export))
    frames = mat.frames.collect()
    reference = open_dataset(str(demo_export.output))
    assert frames.height == demo_export.report.frames  # every frame materialised
    sample = frames.gather_every(23)
    for row in sample.iter_rows(named=True):
        image = decode(row["image"])
        assert image.shape == (row["image_height"], row["image_width"], 3)
        assert row["image_width"] == 96
        # width/height stay the video's decoded size; the image keeps its aspect ratio
        assert abs(row["image_height"] / 96 - row["height"] / row["width"]) < 0.05
        (expected,) = reference.load_frames(
            [(row["stream_id"], row["frame_index"])],
            size=(row["image_width"], row["image_height"]),
        )
        error = np.abs(image.astype(int) - expected.astype(int)).mean()
        assert error < 4.0, (row["stream_id"], row["frame_index"], error)


def test_png_frames_equal_the_reference_decode(demo_server: DemoServer, tmp_path: Path) -> None:
    sid = next(r.stream_id for r in demo_server.catalog.recordings if not r.is_active)
    out = tmp_path / "png"
    export(export_config(demo_server, out, frames="png", resize=(64, 48), stream_ids=(sid,)))
    ds = open_dataset(str(out))
    frames = ds.frames.collect()
    picked = frames.gather_every(11)
    expected = ds.load_frames(picked, size=(64, 48))
    for data, want in zip(picked["image"], expected, strict=True):
        assert np.array_equal(decode(data), want)  # lossless: bit-identical


def test_fps_keeps_the_frame_nearest_each_tick(demo_server: DemoServer, tmp_path: Path) -> None:
    sid = next(r.stream_id for r in demo_server.catalog.recordings if not r.is_active)
    out = tmp_path / "fps"
    export(export_config(demo_server, out, frames="jpeg", fps=5.0, stream_ids=(sid,)))
    frames = open_dataset(str(out)).frames.collect()
    rec = demo_server.catalog.get(sid)
    assert rec is not None
    all_ts = (rec.frame_pts() - rec.frame_pts()[0]) / 90000.0
    ticks = np.arange(0, all_ts[-1] + 1e-9, 0.2)
    nearest = sorted({int(np.argmin(np.abs(all_ts - t))) for t in ticks})
    assert frames["frame_index"].to_list() == nearest
    assert frames["image"].null_count() == 0


def test_materialised_shards_are_capped_by_bytes(
    demo_server: DemoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from odyssey_data.shards import ShardWriter

    monkeypatch.setattr(ShardWriter, "MAX_BYTES", 1)  # every recording fills a shard
    out = tmp_path / "small-shards"
    report = export(export_config(demo_server, out, frames="jpeg", resize=(32, None), limit=4))
    assert report.shards == report.exported >= 3
    assert open_dataset(str(out)).verify() == []


def test_options_are_checked_before_any_work() -> None:
    with pytest.raises(ConfigError, match="frames"):
        ExportConfig(output="x", frames="gif")
    with pytest.raises(ConfigError, match="materialised"):
        ExportConfig(output="x", resize=(64, 64))
    with pytest.raises(ConfigError, match="fps"):
        ExportConfig(output="x", fps=0)
    assert parse_resize("256x144") == (256, 144)
    assert parse_resize("256") == (256, None)
    assert target_size((256, None), 1280, 704) == (256, 140)
    with pytest.raises(ConfigError):
        parse_resize("big")


def test_cli_materialised_export(demo_server: DemoServer, tmp_path: Path) -> None:
    sid = next(r.stream_id for r in demo_server.catalog.recordings if not r.is_active)
    args = ["--api-url", demo_server.base_url, "--api-key", demo_server.api_key, "-q"]
    out = tmp_path / "cli"
    code = main(
        ["export", str(out), *args, "--stream-id", sid, "--frames", "webp", "--resize", "64x64"]
    )
    assert code == 0
    frames = open_dataset(str(out)).frames.collect()
    assert decode(frames["image"][0]).shape == (64, 64, 3)
    assert main(["export", str(out), *args, "--resize", "64x"]) == 2  # resize needs --frames


def test_stats_are_computed_and_stored(demo_export: DemoExport, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(demo_export.output, copy)
    ds = open_dataset(str(copy))
    stats = ds.stats(sample=64, seed=1)
    assert stats == json.loads((copy / "stats.json").read_text())
    assert stats == ds.stats(sample=64, seed=1, save=False) | {"computed_at": stats["computed_at"]}
    assert all(0.0 < m < 1.0 for m in stats["pixel_mean"])
    assert all(0.0 < s < 0.5 for s in stats["pixel_std"])
    assert stats["segments"] == ds.segments.collect().height
    assert stats["frames"] == demo_export.report.frames
    assert ds.verify() == []  # stats.json is beside the dataset, not part of it


def test_clips_iterator_decodes_windows(demo_export: DemoExport) -> None:
    ds = open_dataset(str(demo_export.output))
    sid = ds.recordings.collect()["stream_id"][0]
    clips = list(ds.clips(length=4, stride=40, size=(32, 32), stream_ids=[sid]))
    assert clips
    assert all(c.stream_id == sid for c in clips)
    first = clips[0]
    assert first.frames.shape == (4, 32, 32, 3)
    expected = ds.load_frames([(sid, i) for i in first.frame_indices], size=(32, 32))
    assert np.array_equal(first.frames, np.stack(expected))


def test_preview_contact_sheet(demo_export: DemoExport, tmp_path: Path) -> None:
    ds = open_dataset(str(demo_export.output))
    sheet = ds.preview(columns=3, rows=2, thumb_width=160)
    assert sheet.mode == "RGB"
    width, _height = sheet.size
    assert width == 12 + 3 * (160 + 12)
    # Thumbnails hold real frame pixels, not just the background.
    pixels = np.asarray(sheet)
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 50
    with pytest.raises(ConfigError, match="not in the dataset"):
        ds.preview("no-such-recording")


def test_load_frames_skips_between_scattered_targets(demo_export: DemoExport) -> None:
    """Scattered targets with key frames between them decode the same pictures."""
    ds = open_dataset(str(demo_export.output))
    frames = ds.frames.collect()
    sid = frames["stream_id"][0]
    mine = frames.filter(pl.col("stream_id") == sid)
    keys = mine.filter(pl.col("is_keyframe"))["frame_index"].to_list()
    assert len(keys) >= 2
    wanted = [(sid, keys[-1] + 1), (sid, 1), (sid, keys[1])]
    scattered = ds.load_frames(wanted)
    one_by_one = [ds.load_frames([w])[0] for w in wanted]
    for a, b in zip(scattered, one_by_one, strict=True):
        assert np.array_equal(a, b)


def test_cli_preview_writes_a_png(demo_export: DemoExport, tmp_path: Path) -> None:
    out = tmp_path / "sheet.png"
    assert main(["preview", str(demo_export.output), "--out", str(out), "--rows", "1"]) == 0
    with Image.open(out) as image:
        assert image.format == "PNG"
        assert image.size[0] > 600
