"""What flows between the stages of the export: the task, its fetched files, its result.

:class:`RecordingTask` is what the driver (:mod:`odyssey_data.pipeline`) hands an
executor for one recording; :class:`Fetched` is what :mod:`odyssey_data.fetch` made of
it on this machine; :class:`RecordingResult` is what the unit of work
(:mod:`odyssey_data.work`) hands back, and what the shard writer
(:mod:`odyssey_data.shards`) writes. Plain records: no I/O here beyond reading a
spilled frames file back.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from odyssey_data.api import RetryPolicy
from odyssey_data.errors import (
    StorageAccessError,
    StorageFullError,
    StorageNotFoundError,
    StorageUnreachableError,
)
from odyssey_data.manifest import Status
from odyssey_data.measure import QCOptions
from odyssey_data.models import Recording, RecordingInfo, ScriptEntry
from odyssey_data.options import FrameOptions
from odyssey_data.storage import DatasetStore, FileEntry

if TYPE_CHECKING:
    from odyssey_data.video import ProbeMode

__all__ = ["STOPS_THE_RUN", "Fetched", "RecordingResult", "RecordingTask", "SpilledFrames"]


#: Storage errors that stop the run instead of failing one recording: the dataset's
#: storage is full, refuses writes or cannot be reached, so no recording can be written
#: (the other StorageErrors, e.g. a refused name, stay one recording's failure).
STOPS_THE_RUN = (
    StorageAccessError,
    StorageFullError,
    StorageNotFoundError,
    StorageUnreachableError,
)


@dataclass(frozen=True)
class RecordingTask:
    """What a worker needs to export one recording (pickled to the worker)."""

    info: RecordingInfo
    api_url: str
    api_key: str = field(repr=False)
    store: DatasetStore
    event_offset_ms: float = 0.0
    probe: ProbeMode = "auto"
    max_download_bytes: int = 16 << 30
    min_download_rate: float = 16 << 10
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    timeout_s: float = 30.0
    frame_options: FrameOptions = field(default_factory=FrameOptions)
    with_thumbnails: bool = False
    qc: QCOptions = field(default_factory=QCOptions)
    #: A folder on this machine where materialised frames go as Arrow IPC files instead
    #: of travelling back in memory (the local executor); ``None`` keeps them in memory.
    spill_dir: str | None = None
    #: The recording's files, already fetched by the driver (download-ahead); ``None``:
    #: the worker fetches them.
    prefetched: Fetched | None = None
    #: The options that shaped the rows (``export_options`` column), compact JSON.
    options_json: str = "{}"


@dataclass(frozen=True)
class SpilledFrames:
    """Frames rows (with images) written by a worker to an Arrow IPC file on this machine.

    Materialised frames are heavy (tens of KB a row); a long recording's would otherwise
    sit whole in the worker, in the pickle to the driver, and in the driver.
    """

    path: str
    rows: int
    bytes: int

    def batches(self) -> Iterator[pa.RecordBatch]:
        """The rows batch by batch, read as they are asked for (memory stays flat)."""
        with pa.OSFile(self.path, "rb") as source:
            reader = pa.ipc.open_file(source)
            for i in range(reader.num_record_batches):
                yield reader.get_batch(i)


@dataclass
class RecordingResult:
    """The outcome of the unit of work for one recording.

    Attributes:
        stream_id: the recording.
        status: ``exported``, ``failed`` or ``skipped``.
        reason: why it failed or was skipped.
        frames: frames table rows (``FRAMES_SCHEMA``), when exported (``None`` when
            they were spilled to a file).
        spilled: the frames rows in a file on this machine instead (see ``spill_dir``).
        events: events table rows.
        segments: segments table rows.
        recording: the one-row recordings table.
        qc: the one-row qc table (``None`` when quality control is off).
        video: the dataset file of the copied video.
        extra_files: other dataset files of the recording (thumbnail, preview).
        stats: attempts, URL refreshes, bad event lines, timings.
        warnings: human-readable warnings (bad event lines…).
    """

    stream_id: str
    status: Status
    reason: str | None = None
    frames: pa.Table | None = None
    spilled: SpilledFrames | None = None
    events: pa.Table | None = None
    segments: pa.Table | None = None
    recording: pa.Table | None = None
    qc: pa.Table | None = None
    video: FileEntry | None = None
    extra_files: tuple[FileEntry, ...] = ()
    stats: dict[str, Any] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()

    @property
    def frame_count(self) -> int:
        """Frames exported (0 unless exported)."""
        if self.spilled is not None:
            return self.spilled.rows
        return 0 if self.frames is None else self.frames.num_rows

    def frame_batches(self) -> Iterator[pa.RecordBatch]:
        """The frames rows batch by batch, from memory or from the spill file."""
        if self.spilled is not None:
            yield from self.spilled.batches()
        elif self.frames is not None:
            yield from self.frames.to_batches()


@dataclass
class Fetched:
    """A recording's files on this machine, or why there are none (see :func:`fetch`).

    Attributes:
        folder: the temp folder holding the files (its owner removes it).
        recording: the API's recording (fresh URLs), when it answered.
        script: the simulation job's script, when there is one.
        result: a failed or skipped result decided while fetching (then no files).
        video_sha256: SHA-256 of ``video.mp4``, hashed as it downloaded.
        video_bytes: its size.
        events_file: the events log's path, when the API gives one.
        media: thumbnail/preview name -> (path, SHA-256).
        stats: attempts, retries, url_refreshes of the downloads and API calls.
        download_s: seconds the fetch took.
    """

    folder: str
    recording: Recording | None = None
    script: tuple[ScriptEntry, ...] | None = None
    result: RecordingResult | None = None
    video_sha256: str | None = None
    video_bytes: int = 0
    events_file: str | None = None
    media: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)
    download_s: float = 0.0
