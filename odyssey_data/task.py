"""What flows between the stages of the export: the task, its fetched files, its result.

:class:`RecordingTask` is what the driver (:mod:`odyssey_data.pipeline`) hands an
executor for one recording; :class:`Fetched` is what :mod:`odyssey_data.fetch` made of
it on this machine; :class:`RecordingResult` is what the unit of work
(:mod:`odyssey_data.work`) hands back, and what the shard writer
(:mod:`odyssey_data.shards`) writes. :class:`RecordingStats` is what one recording's
export counted and timed; a run's totals are its recordings' stats added up. Plain
records: no I/O here beyond reading a spilled frames file back.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, fields
from typing import Any

import pyarrow as pa

from odyssey_data.errors import (
    StorageAccessError,
    StorageFullError,
    StorageNotFoundError,
    StorageUnreachableError,
)
from odyssey_data.manifest import Status
from odyssey_data.measure import QCOptions
from odyssey_data.models import Recording, RecordingInfo, ScriptEntry
from odyssey_data.options import ClientOptions, FrameOptions, ShapeOptions
from odyssey_data.storage import DatasetStore, FileEntry

__all__ = [
    "STOPS_THE_RUN",
    "Fetched",
    "RecordingResult",
    "RecordingStats",
    "RecordingTask",
    "SpilledFrames",
]


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
    """What a worker needs to export one recording (pickled to the worker).

    The option groups travel whole: ``client`` (how the API is reached; its URL and key
    already resolved by the driver, so a worker elsewhere needs no environment),
    ``shape`` (what the rows hold) and ``qc``.
    """

    info: RecordingInfo
    client: ClientOptions
    store: DatasetStore
    shape: ShapeOptions = field(default_factory=ShapeOptions)
    qc: QCOptions = field(default_factory=QCOptions)
    #: A folder on this machine where materialised frames go as Arrow IPC files instead
    #: of travelling back in memory (the local executor); ``None`` keeps them in memory.
    spill_dir: str | None = None
    #: The recording's files, already fetched by the driver (download-ahead); ``None``:
    #: the worker fetches them.
    prefetched: Fetched | None = None
    #: The options that shaped the rows (``export_options`` column), compact JSON.
    options_json: str = "{}"

    @property
    def frame_options(self) -> FrameOptions:
        """What the worker does with the frames (from ``shape``)."""
        return self.shape.frame_options()


@dataclass(frozen=True, slots=True)
class RecordingStats:
    """What the export of one recording counted and timed; ``a + b`` adds two up.

    Every field adds: a run's totals are its recordings' stats summed (:meth:`total`),
    which is how the export's report counts retries, URL refreshes, bad event lines,
    video bytes and recordings not ready. The ``fetched``, ``exported`` and
    ``not_ready`` fields count recordings (1 or 0 for one, how many in a sum); they also
    say which of the counts a recording's manifest entry keeps (:meth:`details`).
    """

    #: Recordings whose files were fetched (their downloads counted here), as opposed
    #: to those decided before (selection, a lost worker).
    fetched: int = 0
    #: Download attempts, each download's first included.
    attempts: int = 0
    #: Repeated downloads and API calls.
    retries: int = 0
    #: Expired presigned URLs replaced.
    url_refreshes: int = 0
    #: Recordings exported (their rows built).
    exported: int = 0
    #: Bad events log lines skipped (of exported recordings).
    bad_event_lines: int = 0
    #: Frames quality control decoded (of exported recordings).
    qc_decoded_frames: int = 0
    #: Bytes of the videos exported.
    video_bytes: int = 0
    #: Recordings skipped as not ready yet (active streams, jobs not completed, no
    #: video URL yet); a later run exports them.
    not_ready: int = 0
    #: Seconds the downloads of exported recordings took.
    download_s: float = 0.0
    #: Seconds from the start of the fetch to the result.
    total_s: float = 0.0

    def __add__(self, other: RecordingStats) -> RecordingStats:
        if not isinstance(other, RecordingStats):
            return NotImplemented
        return RecordingStats(
            *(getattr(self, f.name) + getattr(other, f.name) for f in fields(RecordingStats))
        )

    @classmethod
    def total(cls, stats: Iterable[RecordingStats]) -> RecordingStats:
        """The sum of ``stats`` (all zero for none)."""
        out = cls()
        for one in stats:
            out += one
        return out

    def details(self) -> dict[str, Any]:
        """What a recording's manifest entry keeps of these (JSON keys users read):
        the download counts once its files were fetched, the bad event lines once it
        was exported, ``not_ready`` when it was skipped as not ready."""
        out: dict[str, Any] = {}
        if self.fetched:
            out.update(
                attempts=self.attempts, retries=self.retries, url_refreshes=self.url_refreshes
            )
        if self.exported:
            out["bad_event_lines"] = self.bad_event_lines
        if self.not_ready:
            out["not_ready"] = True
        return out


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
        stats: what its export counted and timed (attempts, URL refreshes, bad event
            lines, bytes, seconds).
        warnings: human-readable warnings (bad event lines…).
        probe: how its frame timing was read (``demux`` or ``decode``), once exported.
        stretched: why ``--resize WxH`` stretched its frames, when it did.
        streamed: whether its images were made while the video downloaded (``None``:
            not tried; materialised frames try).
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
    stats: RecordingStats = field(default_factory=RecordingStats)
    warnings: tuple[str, ...] = ()
    probe: str | None = None
    stretched: str | None = None
    streamed: bool | None = None

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
    stats: RecordingStats = field(default_factory=RecordingStats)
    download_s: float = 0.0
