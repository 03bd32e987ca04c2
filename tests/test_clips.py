"""Clips and splits: pure index arithmetic, then over the demo export."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from conftest import DemoExport

from odyssey_data import open_dataset
from odyssey_data.clips import clip_index, resample_positions, split_of
from odyssey_data.errors import ConfigError


def toy_frames() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "stream_id": ["a"] * 10 + ["b"] * 3,
            "frame_index": [*list(range(10)), 0, 1, 2],
            "timestamp_s": [i / 30 for i in range(10)] + [0.0, 0.1, 0.2],
            "prompt": [None, "p", "p", "p", "q", "q", "q", "r", "r", "r", "x", "x", "y"],
            "prompt_index": [None, 0, 0, 0, 1, 1, 1, 2, 2, 2, 0, 0, 1],
        },
        schema_overrides={"prompt_index": pl.Int32, "frame_index": pl.Int32},
    )


def test_windows_stay_inside_one_recording() -> None:
    clips = clip_index(toy_frames(), length=4, stride=3)
    assert clips["stream_id"].to_list() == ["a", "a", "a"]  # b has only 3 frames
    assert [list(x) for x in clips["frame_indices"]] == [[0, 1, 2, 3], [3, 4, 5, 6], [6, 7, 8, 9]]


def test_prompts_and_interaction_flag() -> None:
    clips = clip_index(toy_frames(), length=3, stride=3)
    rows = clips.select("prompt", "last_prompt", "prompts", "crosses_interaction").rows()
    assert rows == [
        (None, "p", ["p"], True),  # the start prompt arrives inside the window
        ("p", "q", ["p", "q"], True),
        ("q", "r", ["q", "r"], True),
        ("x", "y", ["x", "y"], True),
    ]
    calm = clip_index(toy_frames(), length=2, stride=2).filter(~pl.col("crosses_interaction"))
    for row in calm.iter_rows(named=True):
        assert row["prompt"] == row["last_prompt"]
        assert row["prompts"] == [row["prompt"]]


def test_resample_picks_the_nearest_frame() -> None:
    ts = np.array([0.0, 0.033, 0.07, 0.1, 0.135, 0.2])
    assert resample_positions(ts, 10.0).tolist() == [0, 3, 5]
    assert resample_positions(ts, 40.0).tolist() == [0, 1, 1, 2, 3, 4, 4, 5, 5]
    assert resample_positions(ts, 40.0, unique=True).tolist() == [0, 1, 2, 3, 4, 5]
    with pytest.raises(ConfigError):
        resample_positions(ts, 0)


def test_bad_arguments() -> None:
    with pytest.raises(ConfigError):
        clip_index(toy_frames(), length=0)
    with pytest.raises(ConfigError, match="lacks"):
        clip_index(toy_frames().drop("prompt"), length=2)
    assert clip_index(toy_frames(), length=50).height == 0


def test_split_is_stable_disjoint_and_roughly_proportional() -> None:
    ids = [f"stream-{i}" for i in range(2000)]
    first = [split_of(s, seed=1, val_fraction=0.2) for s in ids]
    assert first == [split_of(s, seed=1, val_fraction=0.2) for s in ids]
    share = first.count("val") / len(ids)
    assert 0.16 < share < 0.24
    other_seed = [split_of(s, seed=2, val_fraction=0.2) for s in ids]
    assert other_seed != first


def test_clips_over_the_demo_export(demo_export: DemoExport) -> None:
    ds = open_dataset(str(demo_export.output))
    frames = ds.frames.collect()
    clips = clip_index(frames, length=8, stride=4, fps=10.0)
    assert clips.height > 0
    per_stream = frames.group_by("stream_id").agg(pl.col("frame_index").max().alias("last"))
    last = dict(per_stream.iter_rows())
    for row in clips.iter_rows(named=True):
        indices = list(row["frame_indices"])
        assert indices == sorted(indices)
        assert max(indices) <= last[row["stream_id"]]
        stamps = np.array(list(row["timestamps_s"]))
        # Each frame is the nearest to a 10 fps tick: off by at most half the longest
        # demo frame interval (1.4 / 30 s), and the ticks are consecutive.
        ticks = np.round(stamps * 10) / 10
        assert np.all(np.abs(stamps - ticks) <= 0.7 / 30 + 1e-9)
        assert np.allclose(np.diff(ticks), 0.1)
    assert clips["crosses_interaction"].any()
    assert (~clips["crosses_interaction"]).any()
