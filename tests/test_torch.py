"""The PyTorch datasets over the demo export (skipped only without the [torch] extra)."""

from __future__ import annotations

import pytest
from conftest import DemoExport

torch = pytest.importorskip("torch")

from torch.utils.data import DataLoader  # noqa: E402

from odyssey_data import open_dataset  # noqa: E402
from odyssey_data.torch import ClipDataset, FrameDataset  # noqa: E402


def test_frame_items_match_load_frames(demo_export: DemoExport) -> None:
    frames = FrameDataset(str(demo_export.output))
    assert len(frames) == demo_export.report.frames
    item = frames[17]
    ds = open_dataset(str(demo_export.output))
    (expected,) = ds.load_frames([(item["stream_id"], item["frame_index"])])
    assert item["image"].dtype == torch.uint8
    assert item["image"].shape == (3, *expected.shape[:2])
    assert torch.equal(item["image"].permute(1, 2, 0), torch.from_numpy(expected))
    assert isinstance(item["prompt"], str)


def test_split_by_recording_is_disjoint_and_complete(demo_export: DemoExport) -> None:
    train = FrameDataset(str(demo_export.output), split="train", val_fraction=0.3, seed=4)
    val = FrameDataset(str(demo_export.output), split="val", val_fraction=0.3, seed=4)
    train_ids = set(train.index["stream_id"].unique())
    val_ids = set(val.index["stream_id"].unique())
    assert train_ids.isdisjoint(val_ids)
    assert len(train) + len(val) == demo_export.report.frames
    again = FrameDataset(str(demo_export.output), split="val", val_fraction=0.3, seed=4)
    assert set(again.index["stream_id"].unique()) == val_ids


def batches(loader: DataLoader) -> list[tuple]:
    return [
        (b["image"].clone(), list(b["prompt"]), b["frame_index"].clone(), list(b["stream_id"]))
        for b in loader
    ]


def test_dataloader_with_workers_equals_without(demo_export: DemoExport) -> None:
    frames = FrameDataset(str(demo_export.output), size=(64, 48))
    subset = torch.utils.data.Subset(frames, list(range(0, len(frames), 9)))
    serial = batches(DataLoader(subset, batch_size=8, num_workers=0))
    parallel = batches(DataLoader(subset, batch_size=8, num_workers=2))
    assert len(serial) == len(parallel) > 1
    for a, b in zip(serial, parallel, strict=True):
        assert torch.equal(a[0], b[0])
        assert torch.equal(a[2], b[2])
        assert (a[1], a[3]) == (b[1], b[3])
    assert serial[0][0].shape == (8, 3, 48, 64)


def test_clip_items(demo_export: DemoExport) -> None:
    clips = ClipDataset(str(demo_export.output), length=6, stride=12, size=(32, 32))
    assert len(clips) > 0
    item = clips[len(clips) // 2]
    assert item["frames"].shape == (6, 3, 32, 32)
    ds = open_dataset(str(demo_export.output))
    expected = ds.load_frames(
        [(item["stream_id"], int(i)) for i in item["frame_indices"]], size=(32, 32)
    )
    for got, want in zip(item["frames"], expected, strict=True):
        assert torch.equal(got.permute(1, 2, 0), torch.from_numpy(want))
    batch = next(iter(DataLoader(clips, batch_size=2)))
    assert batch["frames"].shape == (2, 6, 3, 32, 32)
    assert batch["crosses_interaction"].dtype == torch.bool
