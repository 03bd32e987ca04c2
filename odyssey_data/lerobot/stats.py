"""LeRobot's feature statistics: per episode, combined for ``meta/stats.json``. Pure.

Scalar columns get min, max, mean, std, count and the quantiles LeRobot carries; the
video feature gets per-channel statistics of up to ``STATS_FRAMES`` pictures per
episode, taken small (:func:`stats_size`). Episodes combine weighted by count, as
LeRobot aggregates them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from odyssey_data.lerobot.layout import VIDEO_KEY, scalar_features

#: The quantiles LeRobot's statistics carry.
QUANTILES = (0.01, 0.10, 0.50, 0.90, 0.99)
#: Frames per episode whose pictures enter the image statistics, at most.
STATS_FRAMES = 100

#: Per feature, its statistics by name (``min``, ``mean``, ``q50``, ``count``...).
FeatureStats = dict[str, dict[str, npt.NDArray[np.float64]]]


def _scalar_stats(values: npt.NDArray[Any]) -> dict[str, npt.NDArray[np.float64]]:
    data = np.asarray(values, dtype=np.float64)
    stats = {
        "min": np.array([data.min()]),
        "max": np.array([data.max()]),
        "mean": np.array([data.mean()]),
        "std": np.array([data.std()]),
        "count": np.array([data.size], dtype=np.float64),
    }
    for q in QUANTILES:
        stats[f"q{round(q * 100):02d}"] = np.array([np.quantile(data, q)])
    return stats


def image_stats(samples: Sequence[npt.NDArray[np.uint8]]) -> dict[str, npt.NDArray[np.float64]]:
    """Per-channel stats of RGB pictures, in [0, 1], shaped ``(3, 1, 1)`` as LeRobot's.

    Exact and cheap: from each channel's 256-bin histogram (quantiles interpolated
    linearly between order statistics, as :func:`numpy.quantile` does).
    """
    pixels = np.concatenate([s.reshape(-1, 3) for s in samples])
    values = np.arange(256, dtype=np.float64) / 255.0
    total = pixels.shape[0]
    stats: dict[str, list[float]] = {"min": [], "max": [], "mean": [], "std": []}
    stats.update({f"q{round(q * 100):02d}": [] for q in QUANTILES})
    for channel in range(3):
        counts = np.bincount(pixels[:, channel], minlength=256).astype(np.float64)
        present = np.flatnonzero(counts)
        mean = float(counts @ values) / total
        stats["min"].append(float(values[present[0]]))
        stats["max"].append(float(values[present[-1]]))
        stats["mean"].append(mean)
        stats["std"].append(float(np.sqrt(counts @ (values - mean) ** 2 / total)))
        cumulative = np.cumsum(counts)
        for q in QUANTILES:
            position = q * (total - 1)
            low, high = math.floor(position), math.ceil(position)
            below = values[np.searchsorted(cumulative, low, side="right")]
            above = values[np.searchsorted(cumulative, high, side="right")]
            stats[f"q{round(q * 100):02d}"].append(below + (above - below) * (position - low))
    out = {k: np.asarray(v, dtype=np.float64).reshape(3, 1, 1) for k, v in stats.items()}
    out["count"] = np.array([len(samples)], dtype=np.float64)
    return out


def episode_stats(table: pa.Table, samples: list[npt.NDArray[np.uint8]]) -> FeatureStats:
    """One episode's statistics: its scalar columns, and the sampled pictures if any."""
    stats = {
        name: _scalar_stats(table[name].to_numpy(zero_copy_only=False))
        for name in scalar_features()
    }
    if samples:
        stats[VIDEO_KEY] = image_stats(samples)
    return stats


def stats_size(width: int, height: int) -> tuple[int, int]:
    """The size image statistics are taken at: about 150 pixels on the long side."""
    step = max(1, math.ceil(max(width, height) / 150))
    return max(2, width // step), max(2, height // step)


def sample_rows(rows: int) -> set[int]:
    """The rows whose pictures enter the statistics: at most ``STATS_FRAMES``, evenly spread."""
    step = max(1, math.ceil(rows / STATS_FRAMES))
    return set(range(0, rows, step))


def _aggregate(per_episode: Sequence[Mapping[str, npt.NDArray[np.float64]]]) -> dict[str, Any]:
    """Combine one feature's episode stats as LeRobot does (weighted by count)."""
    counts = np.array([float(s["count"][0]) for s in per_episode])
    weights = counts / counts.sum()
    shape = per_episode[0]["mean"].shape
    w = weights.reshape((-1, *([1] * len(shape))))
    means = np.stack([s["mean"] for s in per_episode])
    mean = (means * w).sum(axis=0)
    variance = ((np.stack([s["std"] for s in per_episode]) ** 2 + (means - mean) ** 2) * w).sum(0)
    out: dict[str, Any] = {
        "min": np.min(np.stack([s["min"] for s in per_episode]), axis=0),
        "max": np.max(np.stack([s["max"] for s in per_episode]), axis=0),
        "mean": mean,
        "std": np.sqrt(variance),
        "count": np.array([counts.sum()]),
    }
    for q in QUANTILES:
        key = f"q{round(q * 100):02d}"
        out[key] = (np.stack([s[key] for s in per_episode]) * w).sum(axis=0)
    return out


def _jsonable_values(values: Mapping[str, npt.NDArray[Any]]) -> dict[str, Any]:
    return {
        key: ([int(v) for v in value.reshape(-1)] if key == "count" else value.tolist())
        for key, value in values.items()
    }


def dataset_stats(per_episode: Sequence[FeatureStats]) -> dict[str, Any]:
    """``meta/stats.json``: each feature's episode statistics combined, JSON-ready."""
    features = {name: [s[name] for s in per_episode if name in s] for name in per_episode[0]}
    return {
        name: _jsonable_values(_aggregate(values)) for name, values in features.items() if values
    }


def stats_columns(stats: Mapping[str, Mapping[str, npt.NDArray[np.float64]]]) -> dict[str, Any]:
    """An episode's statistics as the ``stats/FEATURE/NAME`` columns of its episodes row."""
    out: dict[str, Any] = {}
    for feature, values in stats.items():
        for key, value in _jsonable_values(values).items():
            out[f"stats/{feature}/{key}"] = value
    return out
