"""Dataset statistics for normalisation and a quick look: pixels, prompts, segments.

Pixel statistics are computed over a random sample of frames (decoded by reference, one
pass per video), so they cost seconds, not a full decode. They are stored as
``stats.json`` beside ``manifest.json``; the manifest's ``generation`` is recorded in
it so a stale file is recognised after the dataset changes.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from odyssey_data.manifest import utc_now_iso

if TYPE_CHECKING:
    from odyssey_data.dataset import Dataset

__all__ = ["STATS_NAME", "compute_stats"]

STATS_NAME = "stats.json"


def compute_stats(
    dataset: Dataset,
    *,
    sample: int = 256,
    seed: int = 0,
    size: tuple[int, int] | None = (256, 144),
    save: bool = True,
) -> dict[str, Any]:
    """Per-channel mean and std of a frame sample, plus prompt and segment counts.

    Args:
        dataset: the dataset.
        sample: frames to sample (all frames when there are fewer).
        seed: the sample's seed (the same seed gives the same figures).
        size: decode frames at this ``(width, height)`` (faster; ``None``: full size).
        save: write ``stats.json`` beside the manifest.

    Returns:
        ``{"pixel_mean": [r, g, b], "pixel_std": [r, g, b]}`` (0–1 scale) and counts.
    """
    frames = dataset.frames.select("stream_id", "frame_index").collect()
    n = min(sample, frames.height)
    picked = frames.sample(n=n, seed=seed) if n else frames
    total = np.zeros(3, dtype=np.float64)
    total_sq = np.zeros(3, dtype=np.float64)
    pixels = 0
    for image in dataset.load_frames(picked, size=size) if n else []:
        values = image.reshape(-1, 3).astype(np.float64) / 255.0
        total += values.sum(axis=0)
        total_sq += np.square(values).sum(axis=0)
        pixels += values.shape[0]
    mean = total / pixels if pixels else np.zeros(3)
    std = np.sqrt(np.maximum(total_sq / pixels - np.square(mean), 0.0)) if pixels else np.zeros(3)
    segments = dataset.segments.select(
        pl.len().alias("segments"),
        pl.col("prompt").n_unique().alias("distinct_prompts"),
        (pl.col("end_s") - pl.col("start_s")).mean().alias("mean_segment_s"),
    ).collect()
    seg = segments.row(0, named=True)
    recordings = dataset.recordings.select(
        pl.len().alias("recordings"),
        pl.col("frame_count").sum().alias("frames"),
        pl.col("prompts_count").sum().alias("prompts"),
    ).collect()
    rec = recordings.row(0, named=True)
    stats: dict[str, Any] = {
        "computed_at": utc_now_iso(),
        "generation": dataset.manifest.generation,
        "pixel_mean": [round(float(x), 6) for x in mean],
        "pixel_std": [round(float(x), 6) for x in std],
        "frames_sampled": n,
        "sample_size": list(size) if size else None,
        "seed": seed,
        "recordings": int(rec["recordings"] or 0),
        "frames": int(rec["frames"] or 0),
        "prompts": int(rec["prompts"] or 0),
        "segments": int(seg["segments"] or 0),
        "distinct_prompts": int(seg["distinct_prompts"] or 0),
        "mean_segment_s": float(seg["mean_segment_s"] or 0.0),
    }
    if save:
        dataset.store.write_bytes(STATS_NAME, json.dumps(stats, indent=1).encode())
    return stats
