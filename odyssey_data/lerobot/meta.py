"""The files besides the videos: data files, ``meta/`` tables, statistics, info, card.

Written once every episode is converted: the episodes' rows grouped into data files of
about ``DATA_FILES_SIZE_IN_MB``, ``meta/episodes`` (one row per episode, with where its
rows and video are, its source recording and its statistics), ``meta/tasks.parquet``,
``meta/stats.json``; :func:`info` is ``meta/info.json``, written last by the driver.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

import pyarrow as pa

from odyssey_data._version import __version__
from odyssey_data.lerobot.episode import Episode
from odyssey_data.lerobot.layout import (
    CHUNKS_SIZE,
    CODEBASE_VERSION,
    DATA_FILES_SIZE_IN_MB,
    DATA_PATH,
    EPISODES_PATH,
    STATS_PATH,
    TASKS_PATH,
    VIDEO_FILES_SIZE_IN_MB,
    VIDEO_KEY,
    VIDEO_PATH,
    chunk_file,
    features,
)
from odyssey_data.lerobot.output import Writer
from odyssey_data.lerobot.rows import Tasks
from odyssey_data.lerobot.stats import dataset_stats, stats_columns


def _data_files(episodes: Sequence[Episode]) -> Iterator[tuple[int, list[Episode]]]:
    """Episodes grouped into data files of about ``DATA_FILES_SIZE_IN_MB`` each."""
    limit = DATA_FILES_SIZE_IN_MB * 1_000_000
    group: list[Episode] = []
    size = 0
    number = 0
    for episode in episodes:
        if group and size + episode.table.nbytes > limit:
            yield number, group
            number, group, size = number + 1, [], 0
        group.append(episode)
        size += episode.table.nbytes
    if group:
        yield number, group


def _pandas_index_metadata(table: pa.Table, index: str) -> dict[bytes, bytes]:
    """Schema metadata that makes pandas read column ``index`` back as the index.

    LeRobot reads ``meta/tasks.parquet`` with pandas and looks tasks up by that index;
    written without it, tasks come back as integers. Written here by hand so the
    conversion itself needs no pandas.
    """

    def describe(name: str, kind: pa.DataType) -> dict[str, Any]:
        if pa.types.is_string(kind):
            return {"pandas_type": "unicode", "numpy_type": "object"}
        return {"pandas_type": str(kind), "numpy_type": str(kind)}

    columns = [
        {"name": fld.name, "field_name": fld.name, "metadata": None, **describe(fld.name, fld.type)}
        for fld in table.schema
        if fld.name != index
    ]
    columns.append(
        {
            "name": index,
            "field_name": index,
            "metadata": None,
            **describe(index, table.schema.field(index).type),
        }
    )
    meta = {
        "index_columns": [index],
        "column_indexes": [
            {
                "name": None,
                "field_name": None,
                "pandas_type": "unicode",
                "numpy_type": "object",
                "metadata": {"encoding": "UTF-8"},
            }
        ],
        "columns": columns,
        "creator": {"library": "pyarrow", "version": pa.__version__},
        "pandas_version": "2.2.0",
    }
    return {b"pandas": json.dumps(meta).encode()}


def write_meta(writer: Writer, episodes: Sequence[Episode], tasks: Tasks, *, fps: int) -> None:
    """Write the data files, ``meta/episodes``, ``meta/tasks.parquet`` and ``meta/stats.json``."""
    rows: list[dict[str, Any]] = []
    offset = 0
    for number, group in _data_files(episodes):
        chunk, file_index = chunk_file(number)
        writer.table(
            DATA_PATH.format(chunk_index=chunk, file_index=file_index),
            pa.concat_tables([e.table for e in group]),
        )
        for e in group:
            video_chunk, video_file = chunk_file(e.index)
            rec = e.recording
            row: dict[str, Any] = {
                "episode_index": e.index,
                "tasks": e.tasks,
                "length": e.length,
                "data/chunk_index": chunk,
                "data/file_index": file_index,
                "dataset_from_index": offset,
                "dataset_to_index": offset + e.length,
                f"videos/{VIDEO_KEY}/chunk_index": video_chunk,
                f"videos/{VIDEO_KEY}/file_index": video_file,
                f"videos/{VIDEO_KEY}/from_timestamp": 0.0,
                f"videos/{VIDEO_KEY}/to_timestamp": e.length / fps,
                "meta/episodes/chunk_index": 0,
                "meta/episodes/file_index": 0,
                "stream_id": rec.stream_id,
                "source": rec.source,
                "job_id": rec.job_id,
                "script_index": rec.script_index,
                "duration_s": rec.duration_s,
                "exporter_version": __version__,
            }
            row.update(stats_columns(e.stats))
            rows.append(row)
            offset += e.length
    writer.table(EPISODES_PATH, pa.Table.from_pylist(rows))
    names = list(tasks.index)
    task_table = pa.table(
        {
            "task_index": pa.array([tasks.index[n] for n in names], pa.int64()),
            "task": pa.array(names, pa.string()),
        }
    )
    task_table = task_table.replace_schema_metadata(_pandas_index_metadata(task_table, "task"))
    writer.table(TASKS_PATH, task_table)
    writer.json(STATS_PATH, dataset_stats([e.stats for e in episodes]))


def info(
    *,
    episodes: int,
    frames: int,
    tasks: int,
    fps: int,
    size: tuple[int, int],
    gop: int,
    language: bool,
) -> dict[str, Any]:
    """``meta/info.json``: the format, the totals, the paths and the features."""
    width, height = size
    return {
        "codebase_version": CODEBASE_VERSION,
        "robot_type": None,
        "total_episodes": episodes,
        "total_frames": frames,
        "total_tasks": tasks,
        "chunks_size": CHUNKS_SIZE,
        "data_files_size_in_mb": DATA_FILES_SIZE_IN_MB,
        "video_files_size_in_mb": VIDEO_FILES_SIZE_IN_MB,
        "fps": fps,
        "splits": {"train": f"0:{episodes}"},
        "data_path": DATA_PATH,
        "video_path": VIDEO_PATH,
        "features": features(width, height, fps, gop, language),
    }


def readme(repo_id: str, *, fps: int, episodes: int, frames: int, tasks: int) -> str:
    """The dataset card (``README.md``) with the Hugging Face front matter LeRobot's have."""
    return "\n".join(
        [
            "---",
            "license: unknown",
            "task_categories:",
            "- robotics",
            "tags:",
            "- LeRobot",
            "- odyssey",
            "configs:",
            "- config_name: default",
            "  data_files: data/*/*.parquet",
            "---",
            "",
            f"# {repo_id}",
            "",
            f"A LeRobot {CODEBASE_VERSION} dataset converted by odyssey-data {__version__} "
            f"from an Odyssey recordings dataset: {episodes} episodes (one per "
            f"recording), {frames:,} frames at exactly {fps} fps, {tasks} tasks "
            "(the prompts). Each row shows the last source frame presented at or before "
            "its timestamp; `odyssey.source_frame_index`, `odyssey.source_pts` and "
            "`odyssey.is_repeat` say which. `meta/odyssey.json` records the source and the "
            "options.",
            "",
            "```python",
            "from lerobot.datasets import LeRobotDataset",
            f'ds = LeRobotDataset("{repo_id}", root="PATH/TO/THIS/FOLDER")',
            "```",
            "",
        ]
    )
