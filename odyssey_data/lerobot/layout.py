"""LeRobot v3.0's layout as the converter writes it: paths, file sizes, features. Pure.

What ``meta/info.json`` promises about the files (``data_path``, ``video_path``, the
``features`` with their dtypes and shapes) and the language columns' Arrow types, in one
place, so the rows, the statistics and the metadata agree.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

#: The LeRobot dataset format written.
CODEBASE_VERSION = "v3.0"
#: The one camera: the episode's video.
VIDEO_KEY = "observation.images.main"
#: LeRobot's defaults: files per chunk folder, and file sizes before a new file.
CHUNKS_SIZE = 1000
DATA_FILES_SIZE_IN_MB = 100
VIDEO_FILES_SIZE_IN_MB = 200
#: Our record of a conversion (source, options, failures, files written).
RECORD_PATH = "meta/odyssey.json"
INFO_PATH = "meta/info.json"
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
EPISODES_PATH = "meta/episodes/chunk-000/file-000.parquet"
TASKS_PATH = "meta/tasks.parquet"
STATS_PATH = "meta/stats.json"


def chunk_file(number: int) -> tuple[int, int]:
    """The ``(chunk_index, file_index)`` of the ``number``-th file of its kind."""
    return number // CHUNKS_SIZE, number % CHUNKS_SIZE


def video_path(episode: int) -> str:
    """Where episode ``episode``'s video goes (one episode per video file)."""
    chunk, number = chunk_file(episode)
    return VIDEO_PATH.format(video_key=VIDEO_KEY, chunk_index=chunk, file_index=number)


def language_types(json_type: pa.DataType | None = None) -> tuple[pa.DataType, pa.DataType]:
    """LeRobot's language column types; ``tool_calls`` items are JSON (text on old pyarrow).

    ``json_type=pa.string()`` gives the storage types: pyarrow builds arrays of those
    from Python objects, then casts them to the JSON extension type.
    """
    if json_type is None:
        json_type = pa.json_() if hasattr(pa, "json_") else pa.string()
    tool_calls = pa.field("tool_calls", pa.list_(json_type), nullable=True)
    persistent = pa.struct(
        [
            pa.field("role", pa.string(), nullable=False),
            pa.field("content", pa.string(), nullable=True),
            pa.field("style", pa.string(), nullable=True),
            pa.field("timestamp", pa.float32(), nullable=False),
            pa.field("camera", pa.string(), nullable=True),
            tool_calls,
        ]
    )
    event = pa.struct(
        [
            pa.field("role", pa.string(), nullable=False),
            pa.field("content", pa.string(), nullable=True),
            pa.field("style", pa.string(), nullable=True),
            pa.field("camera", pa.string(), nullable=True),
            tool_calls,
        ]
    )
    return pa.list_(persistent), pa.list_(event)


def scalar_features() -> dict[str, str]:
    """The data columns besides the language ones, with their LeRobot dtypes, in order."""
    return {
        "timestamp": "float32",
        "frame_index": "int64",
        "episode_index": "int64",
        "index": "int64",
        "task_index": "int64",
        "prompt_index": "int32",
        "odyssey.source_frame_index": "int32",
        "odyssey.source_pts": "int64",
        "odyssey.is_repeat": "bool",
    }


def features(width: int, height: int, fps: int, gop: int, language: bool) -> dict[str, Any]:
    """``meta/info.json``'s ``features``: the video, the scalar columns, the language ones."""
    out: dict[str, Any] = {
        VIDEO_KEY: {
            "dtype": "video",
            "shape": [height, width, 3],
            "names": ["height", "width", "channels"],
            "info": {
                "video.height": height,
                "video.width": width,
                "video.codec": "h264",
                "video.pix_fmt": "yuv420p",
                "video.is_depth_map": False,
                "video.fps": fps,
                "video.channels": 3,
                "video.g": gop,
                "has_audio": False,
            },
        }
    }
    for name, dtype in scalar_features().items():
        out[name] = {"dtype": dtype, "shape": [1], "names": None}
    if language:
        for name in ("language_persistent", "language_events"):
            out[name] = {"dtype": "language", "shape": [1], "names": None}
    return out
