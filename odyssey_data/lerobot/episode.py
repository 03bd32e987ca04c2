"""One recording into one episode: its rows, its re-encoded video, its statistics.

The recording's frames and segments come from the exported dataset; its video is
resampled to one frame per row by :func:`odyssey_data.video.resample_video` (H.264, pts
``k`` in time base ``1/fps``), which also hands back the pictures the statistics sample.
A recording that fails raises and leaves nothing: its video is written only once
encoded, its tasks are kept only once the episode is written.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import polars as pl
import pyarrow as pa

from odyssey_data.errors import ConfigError
from odyssey_data.lerobot.layout import video_path
from odyssey_data.lerobot.output import Writer
from odyssey_data.lerobot.rows import Tasks, episode_rows
from odyssey_data.lerobot.stats import FeatureStats, episode_stats, sample_rows, stats_size
from odyssey_data.video import resample_video, stream_params

if TYPE_CHECKING:
    from odyssey_data.dataset import Dataset


@dataclass(slots=True)
class ExportedRecording:
    """A row of the exported dataset's recordings table: what an episode is made of."""

    stream_id: str
    width: int
    height: int
    time_base: str | None
    video_path: str
    source: str
    job_id: str | None
    script_index: int | None
    duration_s: float | None


@dataclass(slots=True)
class Episode:
    """One converted recording: its rows, stats and metadata."""

    index: int
    recording: ExportedRecording
    table: pa.Table
    tasks: list[str]
    stats: FeatureStats
    length: int
    source_frames: int
    repeats: int


def parse_time_base(text: str | None) -> Fraction | None:
    """The recordings table's ``time_base`` (``"1/15360"``), or None if absent or bad."""
    if not text:
        return None
    try:
        value = Fraction(text)
    except (ValueError, ZeroDivisionError):
        return None
    return value if value > 0 else None


def convert_episode(
    dataset: Dataset,
    recording: ExportedRecording,
    *,
    episode: int,
    first_index: int,
    fps: int,
    size: tuple[int, int],
    gop: int,
    crf: int,
    tasks: Tasks,
    language: bool,
    folder: str,
    writer: Writer,
) -> Episode:
    """Convert ``recording`` into episode number ``episode`` and write its video.

    ``first_index`` is the dataset-wide index of its first row; the video is encoded
    into ``folder`` first, then put into the output. ``tasks`` gains the episode's new
    tasks only if it succeeds.

    Raises:
        OdysseyDataError: this recording cannot be converted (the others still can),
            or StorageError: the output cannot be written.
    """
    sid = recording.stream_id
    what = f"recording {sid!r}"
    frames = (
        dataset.frames.filter(pl.col("stream_id") == sid)
        .select("frame_index", "pts")
        .sort("frame_index")
        .collect()
    )
    if frames.height == 0:
        raise ConfigError(f"{what} has no frames in the dataset")
    segments = (
        dataset.segments.filter(pl.col("stream_id") == sid)
        .select("prompt_index", "prompt", "start_s")
        .collect()
    )
    store = dataset.store
    local = store.local_path(recording.video_path)
    handle = None if local is not None else store.open(recording.video_path)
    source: Any = local if local is not None else handle
    try:
        time_base = parse_time_base(recording.time_base)
        if time_base is None:
            time_base = stream_params(source, what)[0]
            if handle is not None:
                handle.seek(0)
        # Tasks are only kept once the episode is written: a failed recording adds none.
        trial = Tasks()
        trial.index = dict(tasks.index)
        table, source_pts, used, repeats = episode_rows(
            frames,
            segments,
            episode=episode,
            first_index=first_index,
            fps=fps,
            time_base=time_base,
            tasks=trial,
            language=language,
        )
        rows = table.num_rows
        samples: list[npt.NDArray[np.uint8]] = []
        video = os.path.join(folder, f"episode-{episode:06d}.mp4")
        resample_video(
            source,
            video,
            source_pts,
            fps=fps,
            size=size,
            gop=gop,
            crf=crf,
            on_sample=lambda _row, rgb: samples.append(rgb),
            sample_rows=sample_rows(rows),
            sample_size=stats_size(*size),
            what=what,
        )
    finally:
        if handle is not None:
            handle.close()
    writer.file(video_path(episode), video)
    tasks.index = trial.index
    return Episode(
        index=episode,
        recording=recording,
        table=table,
        tasks=used,
        stats=episode_stats(table, samples),
        length=rows,
        source_frames=frames.height,
        repeats=repeats,
    )
