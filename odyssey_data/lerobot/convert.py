"""The conversion driver: which recordings, checked options, one episode each, then meta.

:func:`convert_to_lerobot` checks the options, refuses an output it does not own
(:mod:`.output`), converts each recording into an episode (:mod:`.episode`; one that
fails is listed in the report and the others still convert), then writes the data
files and ``meta/`` (:mod:`.meta`), the card, ``meta/odyssey.json`` (the record of
files written) and last ``meta/info.json``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import polars as pl

from odyssey_data._version import __version__
from odyssey_data.errors import ConfigError, OdysseyDataError, StorageError, redact_url
from odyssey_data.lerobot.episode import Episode, ExportedRecording, convert_episode
from odyssey_data.lerobot.layout import INFO_PATH, RECORD_PATH
from odyssey_data.lerobot.meta import info, readme, write_meta
from odyssey_data.lerobot.output import Writer, prepare_output
from odyssey_data.lerobot.rows import Tasks
from odyssey_data.storage import DatasetStore, utc_now_iso

if TYPE_CHECKING:
    from odyssey_data.dataset import Dataset

# The package's logger, as when the converter was one module.
log = logging.getLogger("odyssey_data.lerobot")

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


def _recordings(dataset: Dataset, stream_ids: Sequence[str] | None) -> list[ExportedRecording]:
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
        ExportedRecording(
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


def _output_size(
    recordings: Sequence[ExportedRecording], size: tuple[int, int] | None
) -> tuple[int, int]:
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
    prepare_output(store, overwrite)
    name = repo_id or (output.rstrip("/").rsplit("/", 1)[-1] or "odyssey")
    report = LeRobotReport(output=output)
    writer = Writer(store, report.files)
    tasks = Tasks()
    episodes: list[Episode] = []
    with store.scratch_folder() as tmp:
        for done, recording in enumerate(recordings, start=1):
            try:
                episode = convert_episode(
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
    write_meta(writer, episodes, tasks, fps=fps)
    report.episodes = len(episodes)
    report.frames = sum(e.length for e in episodes)
    report.tasks = len(tasks.index)
    report.source_frames = sum(e.source_frames for e in episodes)
    report.repeated_rows = sum(e.repeats for e in episodes)
    card = readme(name, fps=fps, episodes=report.episodes, frames=report.frames, tasks=report.tasks)
    writer.text("README.md", card)
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
    summary = info(
        episodes=len(episodes),
        frames=report.frames,
        tasks=report.tasks,
        fps=fps,
        size=(width, height),
        gop=gop,
        language=language,
    )
    writer.json(INFO_PATH, summary)  # last: the conversion is complete once it exists
    report.elapsed_s = time.perf_counter() - started
    return report
