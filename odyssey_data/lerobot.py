"""Convert an exported dataset into a LeRobot v3.0 dataset (``odyssey-data convert``).

One episode per exported recording, at a constant frame rate that is exact by
construction. LeRobot finds a frame by ``timestamp = frame_index / fps`` (within
1e-4 s), while recordings are variable-rate, so every episode is resampled:

* Row ``k`` stands for time ``t = k / fps`` since the recording's first presented frame
  and shows the frame a viewer sees then: the last source frame presented at or before
  ``t``, found with integer arithmetic on the source pts (no float rounding). Rows run
  from ``k = 0`` while ``k / fps`` is at most the last frame's ``timestamp_s``.
* The episode's video is re-encoded with one frame per row (pts ``k`` in time base
  ``1/fps``; H.264, no B-frames, a key frame every ``gop`` frames for random access), so
  the table and the video agree frame for frame.
* ``task_index`` is the prompt in force at ``t`` (the frames table's as-of rule, on the
  export's own prompt timeline: its segments); ``meta/tasks.parquet`` maps the prompt
  strings to indices. Rows before the first prompt have the task ``""`` and
  ``prompt_index`` -1.
* ``language_persistent`` carries the episode's prompts with their times (style
  ``subtask``), and ``language_events`` each ``interact`` prompt on the first row at or
  after it (style ``interjection``), as LeRobot's language columns define them.

Files written (LeRobot's layout and default sizes): ``meta/info.json``,
``meta/stats.json``, ``meta/tasks.parquet``, ``meta/episodes/chunk-000/file-000.parquet``
(plus further files past 100 MB), ``data/chunk-CCC/file-FFF.parquet`` (many episodes per
file, up to 100 MB each), ``videos/observation.images.main/chunk-CCC/file-FFF.mp4`` (one
episode per file: each is encoded on its own, so a recording that fails leaves nothing
half-written in a shared file, and every episode's video starts at 0 s), a
``README.md`` card, and ``meta/odyssey.json`` (the source dataset, the options, the
recordings that failed, and the list of files written: what ``--overwrite`` may delete).
``meta/info.json`` is written last: a folder without it is not a finished conversion.
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import polars as pl
import pyarrow as pa

from odyssey_data._version import __version__
from odyssey_data.align import TIME_TOLERANCE_S, PromptTimeline, align_frames
from odyssey_data.errors import ConfigError, OdysseyDataError, StorageError, redact_url
from odyssey_data.storage import TMP_PREFIX, DatasetStore, utc_now_iso
from odyssey_data.video import resample_video, stream_params

if TYPE_CHECKING:
    from odyssey_data.dataset import Dataset

__all__ = [
    "CODEBASE_VERSION",
    "VIDEO_KEY",
    "LeRobotReport",
    "convert_to_lerobot",
    "resample_indices",
]

log = logging.getLogger(__name__)

#: The LeRobot dataset format written.
CODEBASE_VERSION = "v3.0"
#: The one camera: the episode's video.
VIDEO_KEY = "observation.images.main"
#: LeRobot's defaults: files per chunk folder, and file sizes before a new file.
CHUNKS_SIZE = 1000
DATA_FILES_SIZE_IN_MB = 100
VIDEO_FILES_SIZE_IN_MB = 200
#: The quantiles LeRobot's statistics carry.
QUANTILES = (0.01, 0.10, 0.50, 0.90, 0.99)
#: Frames per episode whose pictures enter the image statistics, at most.
STATS_FRAMES = 100
#: Our record of a conversion (source, options, failures, files written).
RECORD_PATH = "meta/odyssey.json"
INFO_PATH = "meta/info.json"
CHUNK_FILE = "chunk-{chunk:03d}/file-{file:03d}"
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
MAX_FPS = 1000

ProgressCallback = Callable[[int, int, str], None]


@dataclass(slots=True)
class LeRobotReport:
    """What a conversion wrote.

    Attributes:
        output: the LeRobot dataset root.
        episodes: episodes written (one per converted recording).
        frames: rows written (``total_frames``).
        tasks: distinct tasks (prompts, and ``""`` where no prompt was in force yet).
        source_frames: source frames the converted recordings have.
        repeated_rows: rows showing the same source frame as the row before.
        failed: ``(stream_id, reason)`` of recordings that could not be converted.
        files: the files written, relative to ``output``.
        elapsed_s: wall time.
    """

    output: str
    episodes: int = 0
    frames: int = 0
    tasks: int = 0
    source_frames: int = 0
    repeated_rows: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0

    @property
    def frames_per_s(self) -> float:
        """Rows (output frames) written per second of wall time."""
        return self.frames / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready summary."""
        return {
            "output": self.output,
            "episodes": self.episodes,
            "frames": self.frames,
            "tasks": self.tasks,
            "source_frames": self.source_frames,
            "repeated_rows": self.repeated_rows,
            "failed": [{"stream_id": s, "reason": r} for s, r in self.failed],
            "files": len(self.files),
            "elapsed_s": round(self.elapsed_s, 3),
            "frames_per_s": round(self.frames_per_s, 1),
        }


def resample_indices(pts: npt.ArrayLike, time_base: Fraction, fps: int) -> npt.NDArray[np.int64]:
    """For each row ``k`` at ``t = k / fps``: the last source frame presented at or before ``t``.

    Exact: frame ``i`` is at ``(pts[i] - pts[0]) * time_base`` and the comparison
    ``(pts[i] - pts[0]) * num * fps <= k * den`` is done on integers. Rows run from
    ``k = 0`` while ``k / fps`` is at most the last frame's time.

    Args:
        pts: the source frames' pts in presentation order (strictly increasing).
        time_base: seconds per pts tick.
        fps: the row rate.

    Returns:
        Per row, the index of the source frame it shows (non-decreasing, starts at 0).

    Raises:
        ConfigError: no frames, pts not increasing, or values too large for int64.
    """
    ticks = np.asarray(pts, dtype=np.int64)
    if ticks.size == 0:
        raise ConfigError("a recording without frames cannot be resampled")
    if ticks.size > 1 and not bool(np.all(np.diff(ticks) > 0)):
        raise ConfigError("frame pts must be strictly increasing")
    rel = ticks - ticks[0]
    num, den = time_base.numerator, time_base.denominator
    span = int(rel[-1]) * num * fps
    rows = span // den + 1
    if span >= 1 << 62 or rows * den >= 1 << 62:
        raise ConfigError("the recording is too long for its time base and this fps")
    scaled = rel * np.int64(num * fps)
    times = np.arange(rows, dtype=np.int64) * np.int64(den)
    return (np.searchsorted(scaled, times, side="right") - 1).astype(np.int64)


# -- statistics -------------------------------------------------------------------------
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


def _image_stats(samples: Sequence[npt.NDArray[np.uint8]]) -> dict[str, npt.NDArray[np.float64]]:
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


def _jsonable(stats: Mapping[str, Mapping[str, npt.NDArray[Any]]]) -> dict[str, Any]:
    return {
        feature: {
            key: ([int(v) for v in value.reshape(-1)] if key == "count" else value.tolist())
            for key, value in values.items()
        }
        for feature, values in stats.items()
    }


# -- the episode ------------------------------------------------------------------------
@dataclass(slots=True)
class _Recording:
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
class _Episode:
    """One converted recording: its rows, stats and metadata."""

    index: int
    recording: _Recording
    table: pa.Table
    tasks: list[str]
    stats: dict[str, dict[str, npt.NDArray[np.float64]]]
    length: int
    source_frames: int
    repeats: int


def _language_types(json_type: pa.DataType | None = None) -> tuple[pa.DataType, pa.DataType]:
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


def _scalar_features() -> dict[str, str]:
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


def _features(width: int, height: int, fps: int, gop: int, language: bool) -> dict[str, Any]:
    features: dict[str, Any] = {
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
    for name, dtype in _scalar_features().items():
        features[name] = {"dtype": dtype, "shape": [1], "names": None}
    if language:
        for name in ("language_persistent", "language_events"):
            features[name] = {"dtype": "language", "shape": [1], "names": None}
    return features


class _Tasks:
    """Task strings to indices, in order of first use."""

    def __init__(self) -> None:
        self.index: dict[str, int] = {}

    def get(self, task: str) -> int:
        return self.index.setdefault(task, len(self.index))


def _episode_rows(
    recording: _Recording,
    frames: pl.DataFrame,
    segments: pl.DataFrame,
    *,
    episode: int,
    first_index: int,
    fps: int,
    time_base: Fraction,
    tasks: _Tasks,
    language: bool,
) -> tuple[pa.Table, npt.NDArray[np.int64], list[str], int]:
    """The episode's data table, the source pts per row, its tasks and repeat count."""
    pts = frames["pts"].to_numpy().astype(np.int64)
    source = resample_indices(pts, time_base, fps)
    rows = int(source.shape[0])
    k = np.arange(rows, dtype=np.int64)
    times = k.astype(np.float64) / fps
    ordered = segments.sort("prompt_index")
    timeline = PromptTimeline(
        ordered["start_s"].to_numpy().astype(np.float64), tuple(ordered["prompt"].to_list())
    )
    prompt, prompt_index, _ = align_frames(times, timeline)
    prompts: list[str | None] = prompt.to_pylist()
    task_names = [p if p is not None else "" for p in prompts]
    task_index = np.array([tasks.get(t) for t in task_names], dtype=np.int64)
    repeat = np.zeros(rows, dtype=np.bool_)
    repeat[1:] = source[1:] == source[:-1]
    columns: dict[str, pa.Array] = {
        "timestamp": pa.array(times.astype(np.float32)),
        "frame_index": pa.array(k),
        "episode_index": pa.array(np.full(rows, episode, dtype=np.int64)),
        "index": pa.array(k + first_index),
        "task_index": pa.array(task_index),
        "prompt_index": pa.array(prompt_index.fill_null(-1).to_numpy(zero_copy_only=False)),
        "odyssey.source_frame_index": pa.array(
            frames["frame_index"].to_numpy()[source].astype(np.int32)
        ),
        "odyssey.source_pts": pa.array(pts[source]),
        "odyssey.is_repeat": pa.array(repeat),
    }
    columns["prompt_index"] = columns["prompt_index"].cast(pa.int32())
    if language:
        persistent_type, events_type = _language_types()
        persistent_storage, events_storage = _language_types(pa.string())
        said = [
            {
                "role": "user",
                "content": text,
                "style": "subtask",
                "timestamp": float(np.float32(at)),
                "camera": None,
                "tool_calls": None,
            }
            for at, text in zip(timeline.times_s.tolist(), timeline.prompts, strict=True)
        ]
        columns["language_persistent"] = pa.array([said] * rows, type=persistent_storage).cast(
            persistent_type
        )
        events: list[list[dict[str, Any]]] = [[] for _ in range(rows)]
        for number, (at, text) in enumerate(
            zip(timeline.times_s.tolist(), timeline.prompts, strict=True)
        ):
            if number == 0:
                continue  # the starting prompt is not an interaction
            row = int(np.searchsorted(times, at - TIME_TOLERANCE_S, side="left"))
            if row < rows:
                events[row].append(
                    {
                        "role": "user",
                        "content": text,
                        "style": "interjection",
                        "camera": None,
                        "tool_calls": None,
                    }
                )
        columns["language_events"] = pa.array(events, type=events_storage).cast(events_type)
    table = pa.table(columns)
    used = list(dict.fromkeys(task_names))
    return table, pts[source], used, int(repeat.sum())


def _episode_stats(
    table: pa.Table, samples: list[npt.NDArray[np.uint8]]
) -> dict[str, dict[str, npt.NDArray[np.float64]]]:
    stats = {
        name: _scalar_stats(table[name].to_numpy(zero_copy_only=False))
        for name in _scalar_features()
    }
    if samples:
        stats[VIDEO_KEY] = _image_stats(samples)
    return stats


def _stats_size(width: int, height: int) -> tuple[int, int]:
    """The size image statistics are taken at: about 150 pixels on the long side."""
    step = max(1, math.ceil(max(width, height) / 150))
    return max(2, width // step), max(2, height // step)


# -- writing ----------------------------------------------------------------------------
def _chunk_file(number: int) -> tuple[int, int]:
    return number // CHUNKS_SIZE, number % CHUNKS_SIZE


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


def _stats_columns(stats: Mapping[str, Mapping[str, npt.NDArray[np.float64]]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for feature, values in stats.items():
        for key, value in values.items():
            out[f"stats/{feature}/{key}"] = (
                [int(v) for v in value.reshape(-1)] if key == "count" else value.tolist()
            )
    return out


class _Writer:
    """Puts the conversion's files into the output store and remembers them."""

    def __init__(self, store: DatasetStore, report: LeRobotReport) -> None:
        self.store = store
        self.report = report

    def table(self, rel: str, table: pa.Table) -> None:
        self.store.write_table(rel, table, kind="lerobot")
        self.report.files.append(rel)

    def json(self, rel: str, data: Any) -> None:
        self.store.write_bytes(rel, json.dumps(data, indent=2).encode())
        self.report.files.append(rel)

    def text(self, rel: str, text: str) -> None:
        self.store.write_bytes(rel, text.encode())
        self.report.files.append(rel)

    def file(self, rel: str, local: str) -> None:
        self.store.put_file(rel, local, kind="video")
        self.report.files.append(rel)


def _prepare_output(store: DatasetStore, overwrite: bool) -> None:
    """Refuse a non-empty output unless it is an earlier conversion and ``overwrite``.

    With ``overwrite``, only the files that conversion's ``meta/odyssey.json`` lists
    are deleted; anything else in the folder stays.
    """
    present = store.list_files("")
    if not present:
        return
    record = store.read_json(RECORD_PATH) if RECORD_PATH in present else None
    if not overwrite or not isinstance(record, dict):
        what = "an earlier conversion" if isinstance(record, dict) else "files"
        raise ConfigError(
            f"{store.url} already holds {what} ({len(present)} files); convert into a new "
            "folder" + (", or pass --overwrite to replace it" if isinstance(record, dict) else "")
        )
    listed = {str(rel) for rel in record.get("files", []) if isinstance(rel, str)}
    listed.add(RECORD_PATH)
    doomed = sorted(rel for rel in present if rel in listed)
    store.remove(doomed, owned=listed.__contains__)


def _readme(repo_id: str, fps: int, report: LeRobotReport) -> str:
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
            f"from an Odyssey recordings dataset: {report.episodes} episodes (one per "
            f"recording), {report.frames:,} frames at exactly {fps} fps, {report.tasks} tasks "
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


def _recordings(dataset: Dataset, stream_ids: Sequence[str] | None) -> list[_Recording]:
    table = dataset.recordings.collect()
    if stream_ids is not None:
        missing = set(stream_ids) - set(table["stream_id"].to_list())
        if missing:
            raise ConfigError(
                f"recording {sorted(missing)[0]!r} is not in the dataset at {dataset.url}"
            )
        table = table.filter(pl.col("stream_id").is_in(list(stream_ids)))
    table = table.sort(["started_at", "stream_id"], nulls_last=True)

    def get(row: Mapping[str, Any], key: str) -> Any:
        return row.get(key)

    return [
        _Recording(
            stream_id=str(row["stream_id"]),
            width=int(row["width"] or 0),
            height=int(row["height"] or 0),
            time_base=get(row, "time_base"),
            video_path=str(row["video_path"]),
            source=str(get(row, "source") or "stream"),
            job_id=get(row, "job_id"),
            script_index=get(row, "script_index"),
            duration_s=get(row, "video_duration_s"),
        )
        for row in table.iter_rows(named=True)
    ]


def _output_size(recordings: Sequence[_Recording], size: tuple[int, int] | None) -> tuple[int, int]:
    if size is not None:
        width, height = size
        if width < 2 or height < 2 or width % 2 or height % 2:
            raise ConfigError(f"--size needs even sizes of at least 2 pixels, not {width}x{height}")
        return width, height
    sizes = sorted({(r.width, r.height) for r in recordings})
    if len(sizes) > 1:
        listed = ", ".join(f"{w}x{h}" for w, h in sizes)
        raise ConfigError(
            f"the recordings have different frame sizes ({listed}) and a LeRobot video "
            "feature has one; pass --size WxH"
        )
    width, height = sizes[0]
    if width % 2 or height % 2:
        raise ConfigError(f"the frames are {width}x{height}; pass an even --size WxH")
    return width, height


def _parse_time_base(text: str | None) -> Fraction | None:
    if not text:
        return None
    try:
        value = Fraction(text)
    except (ValueError, ZeroDivisionError):
        return None
    return value if value > 0 else None


def convert_to_lerobot(
    dataset: Dataset,
    output: str,
    *,
    fps: int,
    size: tuple[int, int] | None = None,
    repo_id: str | None = None,
    storage_options: Mapping[str, Any] | None = None,
    stream_ids: Sequence[str] | None = None,
    gop: int = 2,
    crf: int = 23,
    language: bool = True,
    overwrite: bool = False,
    progress: ProgressCallback | None = None,
) -> LeRobotReport:
    """Write a LeRobot v3.0 dataset of ``dataset``'s exported recordings to ``output``.

    Args:
        dataset: the exported dataset (see :func:`~odyssey_data.dataset.open_dataset`).
        output: the LeRobot dataset root: a folder or an fsspec URL.
        fps: the constant frame rate of every episode (an integer, as LeRobot's).
        size: ``(width, height)`` of the episodes' videos (even); required when the
            recordings differ in size, else their own size.
        repo_id: the name written into the card (default: the output folder's name).
        storage_options: fsspec options of the output's filesystem.
        stream_ids: convert only these recordings (default: every exported one).
        gop: key frame interval of the videos (short: fast random access).
        crf: x264 quality (lower: better and bigger).
        language: also write LeRobot's ``language_persistent``/``language_events``.
        overwrite: replace an earlier conversion at ``output`` (only the files its
            ``meta/odyssey.json`` lists are deleted).
        progress: called with ``(done, total, stream_id)`` after each recording.

    Returns:
        What was written; recordings that failed are listed there, the others are
        converted.

    Raises:
        ConfigError: bad options, an output that is not empty, or no recording converted.
        StorageError: the output cannot be written.
    """
    started = time.perf_counter()
    if isinstance(fps, bool) or not isinstance(fps, int) or not 1 <= fps <= MAX_FPS:
        raise ConfigError(f"--fps must be a whole number of frames per second in 1..{MAX_FPS}")
    if not 1 <= gop <= 1000:
        raise ConfigError(f"the key frame interval must be within 1..1000, not {gop}")
    if not 0 <= crf <= 51:
        raise ConfigError(f"crf must be within 0..51, not {crf}")
    recordings = _recordings(dataset, stream_ids)
    if not recordings:
        raise ConfigError(f"the dataset at {dataset.url} has no exported recording to convert")
    width, height = _output_size(recordings, size)
    store = DatasetStore(output, storage_options)
    _prepare_output(store, overwrite)
    name = repo_id or (output.rstrip("/").rsplit("/", 1)[-1] or "odyssey")
    report = LeRobotReport(output=output)
    writer = _Writer(store, report)
    tasks = _Tasks()
    episodes: list[_Episode] = []
    scratch = store.scratch_dir()
    with tempfile.TemporaryDirectory(prefix=f"{TMP_PREFIX}lerobot-", dir=scratch) as tmp:
        for done, recording in enumerate(recordings, start=1):
            try:
                episode = _convert_one(
                    dataset,
                    recording,
                    episode=len(episodes),
                    first_index=sum(e.length for e in episodes),
                    fps=fps,
                    size=(width, height),
                    gop=gop,
                    crf=crf,
                    tasks=tasks,
                    language=language,
                    folder=tmp,
                    writer=writer,
                )
            except StorageError:
                raise
            except OdysseyDataError as exc:
                log.warning("recording %r not converted: %s", recording.stream_id, exc)
                report.failed.append((recording.stream_id, str(exc)))
            else:
                episodes.append(episode)
            if progress is not None:
                progress(done, len(recordings), recording.stream_id)
    if not episodes:
        reasons = "; ".join(f"{sid}: {why}" for sid, why in report.failed[:3])
        raise ConfigError(f"no recording could be converted ({reasons})")
    _write_meta(writer, episodes, tasks, fps=fps)
    report.episodes = len(episodes)
    report.frames = sum(e.length for e in episodes)
    report.tasks = len(tasks.index)
    report.source_frames = sum(e.source_frames for e in episodes)
    report.repeated_rows = sum(e.repeats for e in episodes)
    writer.text("README.md", _readme(name, fps, report))
    record = {
        "producer": {"name": "odyssey-data", "version": __version__},
        "created_at": utc_now_iso(),
        "source": {"url": redact_url(dataset.url), "generation": dataset.manifest.generation},
        "options": {
            "fps": fps,
            "size": [width, height],
            "repo_id": name,
            "gop": gop,
            "crf": crf,
            "language": language,
        },
        "episodes": [
            {"episode_index": e.index, "stream_id": e.recording.stream_id} for e in episodes
        ],
        "failed": [{"stream_id": s, "reason": r} for s, r in report.failed],
        "files": [*report.files, INFO_PATH],
    }
    writer.json(RECORD_PATH, record)
    info = {
        "codebase_version": CODEBASE_VERSION,
        "robot_type": None,
        "total_episodes": len(episodes),
        "total_frames": report.frames,
        "total_tasks": report.tasks,
        "chunks_size": CHUNKS_SIZE,
        "data_files_size_in_mb": DATA_FILES_SIZE_IN_MB,
        "video_files_size_in_mb": VIDEO_FILES_SIZE_IN_MB,
        "fps": fps,
        "splits": {"train": f"0:{len(episodes)}"},
        "data_path": DATA_PATH,
        "video_path": VIDEO_PATH,
        "features": _features(width, height, fps, gop, language),
    }
    writer.json(INFO_PATH, info)  # last: the conversion is complete once it exists
    report.elapsed_s = time.perf_counter() - started
    return report


def _convert_one(
    dataset: Dataset,
    recording: _Recording,
    *,
    episode: int,
    first_index: int,
    fps: int,
    size: tuple[int, int],
    gop: int,
    crf: int,
    tasks: _Tasks,
    language: bool,
    folder: str,
    writer: _Writer,
) -> _Episode:
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
        time_base = _parse_time_base(recording.time_base)
        if time_base is None:
            time_base = stream_params(source, what)[0]
            if handle is not None:
                handle.seek(0)
        # Tasks are only kept once the episode is written: a failed recording adds none.
        trial = _Tasks()
        trial.index = dict(tasks.index)
        table, source_pts, used, repeats = _episode_rows(
            recording,
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
        step = max(1, math.ceil(rows / STATS_FRAMES))
        wanted = set(range(0, rows, step))
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
            sample_rows=wanted,
            sample_size=_stats_size(*size),
            what=what,
        )
    finally:
        if handle is not None:
            handle.close()
    chunk, number = _chunk_file(episode)
    writer.file(VIDEO_PATH.format(video_key=VIDEO_KEY, chunk_index=chunk, file_index=number), video)
    tasks.index = trial.index
    return _Episode(
        index=episode,
        recording=recording,
        table=table,
        tasks=used,
        stats=_episode_stats(table, samples),
        length=rows,
        source_frames=frames.height,
        repeats=repeats,
    )


def _data_files(episodes: Sequence[_Episode]) -> Iterator[tuple[int, list[_Episode]]]:
    """Episodes grouped into data files of about ``DATA_FILES_SIZE_IN_MB`` each."""
    limit = DATA_FILES_SIZE_IN_MB * 1_000_000
    group: list[_Episode] = []
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


def _write_meta(
    writer: _Writer,
    episodes: Sequence[_Episode],
    tasks: _Tasks,
    *,
    fps: int,
) -> None:
    rows: list[dict[str, Any]] = []
    offset = 0
    for number, group in _data_files(episodes):
        chunk, file_index = _chunk_file(number)
        writer.table(
            DATA_PATH.format(chunk_index=chunk, file_index=file_index),
            pa.concat_tables([e.table for e in group]),
        )
        for e in group:
            video_chunk, video_file = _chunk_file(e.index)
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
            row.update(_stats_columns(e.stats))
            rows.append(row)
            offset += e.length
    episodes_table = pa.Table.from_pylist(rows)
    writer.table("meta/episodes/chunk-000/file-000.parquet", episodes_table)
    names = list(tasks.index)
    task_table = pa.table(
        {
            "task_index": pa.array([tasks.index[n] for n in names], pa.int64()),
            "task": pa.array(names, pa.string()),
        }
    )
    task_table = task_table.replace_schema_metadata(_pandas_index_metadata(task_table, "task"))
    writer.table("meta/tasks.parquet", task_table)
    features = {
        name: [e.stats[name] for e in episodes if name in e.stats] for name in episodes[0].stats
    }
    writer.json("meta/stats.json", _jsonable({k: _aggregate(v) for k, v in features.items() if v}))
