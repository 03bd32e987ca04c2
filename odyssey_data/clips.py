"""Training-data helpers: clips of frames and splits by recording (pure).

A clip is ``length`` consecutive frames of one recording (never across recordings),
optionally resampled to a fixed rate first, starting every ``stride`` frames. Each clip
carries the prompt in force at its first and last frame, every prompt in force during it,
and ``crosses_interaction``: whether a new prompt was issued inside the window, the
interesting case for learning how the world reacts to an interaction.

:func:`split_of` assigns whole recordings to ``train`` or ``val`` by a hash of the
``stream_id`` and a seed: stable across runs and machines, never one recording in both.

The clip index is a polars table, so it can be stored, filtered, shuffled and indexed at
random; :meth:`odyssey_data.Dataset.clips` decodes the frames of each clip on demand.
"""

from __future__ import annotations

import hashlib

import numpy as np
import numpy.typing as npt
import polars as pl

from odyssey_data.align import resample_positions
from odyssey_data.errors import ConfigError

__all__ = ["CLIP_COLUMNS", "clip_index", "resample_positions", "split_of"]

#: Columns of a clip index, in order.
CLIP_COLUMNS = (
    "clip_index",
    "stream_id",
    "frame_indices",
    "timestamps_s",
    "start_s",
    "end_s",
    "prompt",
    "last_prompt",
    "prompt_index",
    "last_prompt_index",
    "prompts",
    "crosses_interaction",
)


def split_of(stream_id: str, *, seed: int = 0, val_fraction: float = 0.1) -> str:
    """``"val"`` or ``"train"`` for a recording: deterministic in ``stream_id`` and ``seed``.

    The SHA-256 of ``"{seed}:{stream_id}"`` read as a number in [0, 1) is compared with
    ``val_fraction``, so about that share of recordings lands in ``val``; changing the
    seed reshuffles, and a recording added later never moves the others.
    """
    digest = hashlib.sha256(f"{seed}:{stream_id}".encode("utf-8", "surrogatepass")).digest()
    u = int.from_bytes(digest[:8], "big") / 2.0**64
    return "val" if u < val_fraction else "train"


def _windows(count: int, length: int, stride: int) -> npt.NDArray[np.int64]:
    if count < length:
        return np.zeros((0, length), dtype=np.int64)
    starts = np.arange(0, count - length + 1, stride, dtype=np.int64)
    out: npt.NDArray[np.int64] = starts[:, None] + np.arange(length, dtype=np.int64)[None, :]
    return out


def clip_index(
    frames: pl.DataFrame, *, length: int, stride: int | None = None, fps: float | None = None
) -> pl.DataFrame:
    """Build the clip index of a frames table.

    Args:
        frames: rows of the frames table with at least ``stream_id``, ``frame_index``,
            ``timestamp_s``, ``prompt`` and ``prompt_index``.
        length: frames per clip (K).
        stride: frames between clip starts (default ``length``: no overlap).
        fps: resample each recording to this rate before cutting windows.

    Returns:
        One row per clip (columns :data:`CLIP_COLUMNS`); ``frame_indices`` and
        ``timestamps_s`` are fixed-size arrays of ``length``.

    Raises:
        ConfigError: ``length`` or ``stride`` below 1, or a required column is missing.
    """
    stride = length if stride is None else stride
    if length < 1 or stride < 1:
        raise ConfigError(f"clip length and stride must be at least 1 (got {length}, {stride})")
    needed = {"stream_id", "frame_index", "timestamp_s", "prompt", "prompt_index"}
    if missing := needed - set(frames.columns):
        raise ConfigError(f"the frames table lacks {sorted(missing)} for clips")
    frames = frames.sort("stream_id", "frame_index")
    parts: list[pl.DataFrame] = []
    for (stream_id,), group in frames.group_by(["stream_id"], maintain_order=True):
        ts = group["timestamp_s"].to_numpy().astype(np.float64)
        positions = resample_positions(ts, fps) if fps else np.arange(ts.shape[0], dtype=np.int64)
        win = positions[_windows(positions.shape[0], length, stride)]
        if win.shape[0] == 0:
            continue
        frame_index = group["frame_index"].to_numpy()
        prompt_index = group["prompt_index"].fill_null(-1).to_numpy()
        prompt_texts = group["prompt"].to_list()
        # prompt_index never decreases along a recording, so the prompts in force in a
        # window are exactly the ones numbered from its first frame's to its last frame's.
        by_index: dict[int, str] = {}
        for index, text in zip(prompt_index.tolist(), prompt_texts, strict=True):
            if index >= 0:
                by_index.setdefault(index, text)
        first_p = prompt_index[win[:, 0]]
        last_p = prompt_index[win[:, -1]]
        prompts = [
            [by_index[i] for i in range(max(a, 0), b + 1) if i in by_index]
            for a, b in zip(first_p.tolist(), last_p.tolist(), strict=True)
        ]
        parts.append(
            pl.DataFrame(
                {
                    "stream_id": [stream_id] * win.shape[0],
                    "frame_indices": frame_index[win].astype(np.int32),
                    "timestamps_s": ts[win],
                    "start_s": ts[win[:, 0]],
                    "end_s": ts[win[:, -1]],
                    "prompt": [prompt_texts[i] for i in win[:, 0].tolist()],
                    "last_prompt": [prompt_texts[i] for i in win[:, -1].tolist()],
                    "prompt_index": first_p.astype(np.int32),
                    "last_prompt_index": last_p.astype(np.int32),
                    "prompts": prompts,
                    "crosses_interaction": first_p != last_p,
                },
                schema_overrides={
                    "stream_id": pl.String,
                    "frame_indices": pl.Array(pl.Int32, length),
                    "timestamps_s": pl.Array(pl.Float64, length),
                    "prompt": pl.String,
                    "last_prompt": pl.String,
                    "prompt_index": pl.Int32,
                    "last_prompt_index": pl.Int32,
                    "prompts": pl.List(pl.String),
                },
            ).with_columns(
                # -1 stood for "no prompt yet" in the numpy arithmetic above.
                pl.when(pl.col(c) >= 0).then(pl.col(c)).alias(c)
                for c in ("prompt_index", "last_prompt_index")
            )
        )
    if not parts:
        return pl.DataFrame(
            schema={
                "clip_index": pl.UInt32,
                "stream_id": pl.String,
                "frame_indices": pl.Array(pl.Int32, length),
                "timestamps_s": pl.Array(pl.Float64, length),
                "start_s": pl.Float64,
                "end_s": pl.Float64,
                "prompt": pl.String,
                "last_prompt": pl.String,
                "prompt_index": pl.Int32,
                "last_prompt_index": pl.Int32,
                "prompts": pl.List(pl.String),
                "crosses_interaction": pl.Boolean,
            }
        )
    return pl.concat(parts).with_row_index("clip_index").select(CLIP_COLUMNS)
