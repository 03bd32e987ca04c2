"""The export: list recordings, run the unit of work on each, write shards, commit.

``process_recording`` is the one unit of work every executor runs: fetch the video and
events log to temp files (streamed, byte count verified, SHA-256 hashed as the bytes
arrive), read frame timing with PyAV, parse the events, align frames to prompts, put
the video into the dataset (moved into place on a local dataset, whose disk holds the
temp files; uploaded elsewhere), and return Arrow tables. It never raises for bad data
in one recording; it returns a failure with the reason. With the local executor the
driver fetches ahead (:class:`_Prefetcher`, one download thread per worker), so the
next recordings download while the workers process. The driver (:func:`export`) writes
the tables into size-capped shards and commits the manifest after every shard, so a
crash late in a long run loses little.

Two sources feed the same unit of work (``ExportConfig.source``): stream recordings, and
the output streams of completed simulation jobs. A :class:`RecordingInfo` with a
``job_id`` is a simulation output; :func:`_artifacts` gets its presigned URLs (first
and on every refresh of an expired one) from ``GET /simulation-jobs/{job_id}``, a
stream's from ``GET /recordings/{stream_id}``. When the job's script is known (the job
detail's ``script``), it is the ground truth: its entries are kept in the events table
(``origin = "script"``; the events log's lines stay too, ``origin = "log"``), frames
align to the script's prompt times (the video is rendered from the script; the log only
records when each prompt was issued), and each segment's ``prompt_lag_s`` is the
logged time minus the script's, matched by prompt order (null without a log to compare).
An events log in the script shape, without a script in the detail, is aligned to as is.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import queue
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import IO, Any, cast

import numpy as np
import pyarrow as pa

from odyssey_data._version import __version__
from odyssey_data.align import (
    TickSelector,
    align_frames,
    build_segments,
    prompt_lags,
    prompt_timeline,
    resample_positions,
)
from odyssey_data.api import DownloadStats, OdysseyClient, RetryPolicy
from odyssey_data.card import write_card
from odyssey_data.errors import (
    ApiResponseError,
    AuthError,
    ConfigError,
    DecodeError,
    NotFoundError,
    OdysseyDataError,
    RecordingError,
    StorageAccessError,
    StorageError,
    StorageFullError,
    StorageNotFoundError,
    StorageUnreachableError,
    printable,
    redact_url,
)
from odyssey_data.events import parse_events
from odyssey_data.executors import default_workers, make_executor
from odyssey_data.growing import GrowingReader, Growth, StartedOver, WatchedWriter
from odyssey_data.images import FORMATS, image_encoder, target_size
from odyssey_data.manifest import Manifest, RecordingStatus
from odyssey_data.measure import QCOptions, check, measure
from odyssey_data.models import (
    JOB_STATUSES,
    Recording,
    RecordingInfo,
    ScriptEntry,
    SimulationJob,
)
from odyssey_data.progress import LIVE, ProgressSink, ProgressUpdate, make_sink
from odyssey_data.runs import (
    check_options,
    data_options,
    options_json,
    recorded_options,
    start_run,
)
from odyssey_data.schema import (
    EVENTS_SCHEMA,
    FRAMES_SCHEMA,
    IMAGE_FIELD,
    QC_SCHEMA,
    RECORDINGS_SCHEMA,
    SEGMENTS_SCHEMA,
    TABLES,
)
from odyssey_data.storage import (
    MANIFEST_NAME,
    TMP_PREFIX,
    DatasetStore,
    FileEntry,
    WriterLock,
    is_owned,
    safe_name,
    scratch_prefix,
    utc_now_iso,
)
from odyssey_data.storage_errors import storage_error
from odyssey_data.video import (
    FrameTiming,
    ProbeMode,
    decode_frames,
    media_problem,
    probe_frames,
    stream_params,
    ticks_to_seconds,
)

__all__ = [
    "ExportConfig",
    "ExportPlan",
    "ExportReport",
    "Fetched",
    "ProgressSink",
    "ProgressUpdate",
    "RecordingResult",
    "RecordingTask",
    "export",
    "fetch",
    "plan",
    "process_recording",
]

log = logging.getLogger(__name__)

#: A shard is written once its frames reach this many bytes in memory (or shard_rows).
SHARD_BYTES = 192 << 20

#: Storage errors that stop the run instead of failing one recording: the dataset's
#: storage is full, refuses writes or cannot be reached, so no recording can be written
#: (the other StorageErrors, e.g. a refused name, stay one recording's failure).
_STOPS_THE_RUN = (
    StorageAccessError,
    StorageFullError,
    StorageNotFoundError,
    StorageUnreachableError,
)

#: What an export reads: stream recordings, simulation job outputs, or both.
SOURCES = ("streams", "simulations", "all")


#: Bounds of options (refused up front outside them: every loop and download must end).
MAX_FPS = 1000.0
MAX_IMAGE_SIDE = 16384
MAX_EVENT_OFFSET_MS = 7 * 86_400_000.0  # a week either way
MAX_SECONDS = 366 * 86_400.0  # timeouts and durations: a year
MAX_WORKERS = 1024


def _check_range(
    name: str, value: float, low: float, high: float, *, low_open: bool = False
) -> None:
    """Refuse a non-finite ``value`` or one outside ``[low, high]`` (``(low, high]``)."""
    inside = math.isfinite(value) and (value > low if low_open else value >= low) and value <= high
    if not inside:
        span = f"{'(' if low_open else '['}{low:g}, {high:g}]"
        raise ConfigError(f"{name} must be a finite number within {span}, not {value}")


@dataclass(frozen=True)
class FrameOptions:
    """Reference rows only, or materialised images: see :class:`ExportConfig`."""

    mode: str = "reference"
    resize: tuple[int, int | None] | None = None
    fps: float | None = None
    quality: int = 90

    @property
    def materialised(self) -> bool:
        """True when frames are encoded into the ``image`` column."""
        return self.mode != "reference"

    def streams(self) -> bool:
        """True when frames are decoded while the video downloads (see ``_stream``):
        materialised frames, whose images are made as the bytes arrive."""
        return self.materialised

    def validate(self) -> None:
        """Raise :class:`ConfigError` for impossible options (before any work starts)."""
        if self.mode not in FORMATS:
            raise ConfigError(f"frames must be one of {', '.join(FORMATS)}, not {self.mode!r}")
        if self.fps is not None:
            _check_range("fps", self.fps, 0.0, MAX_FPS, low_open=True)
        if self.resize is not None:
            for side in self.resize:
                if side is not None:
                    _check_range("a resize side", side, 2, MAX_IMAGE_SIDE)
        if self.resize is not None and not self.materialised:
            raise ConfigError("resize applies to materialised frames: add --frames jpeg")
        if self.materialised:
            image_encoder(self.mode, self.quality)  # fails early on a missing extra


@dataclass(frozen=True)
class ExportConfig:
    """Options of one export. Secrets (the API key) are never written anywhere.

    Attributes:
        output: dataset root URL (local path or fsspec URL).
        api_url: API base URL; default ``ODYSSEY_API_URL`` or the public API.
        api_key: ``ody_…`` key; default ``ODYSSEY_API_KEY``.
        limit: export at most this many recordings (most recent first); with
            simulations, list at most this many jobs.
        stream_ids: export only these recordings.
        source: ``"streams"`` (stream recordings, the default), ``"simulations"``
            (the output streams of simulation jobs) or ``"all"`` (both, one dataset).
        job_ids: with simulations, only these jobs.
        job_status: with simulations, list only jobs of this status (``None``: every
            job; those not completed are recorded as skipped with the reason).
        with_thumbnails: store each recording's thumbnail JPEG and preview MP4 beside
            its video (when the API gives them).
        workers: parallel recordings (default: the number of cores).
        executor: ``"local"`` (process pool) or ``"ray"`` (Ray tasks; the ray extra).
        ray_address: the Ray cluster to run on with ``executor="ray"`` (``"auto"``,
            ``"ray://head:10001"``); default ``RAY_ADDRESS`` or a new local instance.
        storage_options: fsspec options of the output filesystem.
        event_offset_ms: added to every event time (events clock → video clock).
        probe: how frame timing is read (``auto``: demux, verified; see ``video``).
        overwrite: start a fresh dataset instead of adding to the existing one.
        shard_rows: frame rows per shard before it is written (and the manifest committed).
        break_lock: take the dataset's writer lock even if another export seems to hold
            it (only when that export is known to be dead).
        lock_timeout_s: a writer lock not refreshed for this long is stale and broken
            (``None``: only a lock whose process is gone from this machine is).
        max_download_bytes: refuse a video or events log larger than this.
        min_download_rate: bytes per second a download attempt must average once it
            has run for ``timeout_s`` (slower attempts are retried, then fail).
        retry: retry policy of the API and downloads.
        timeout_s: connect/read timeout of one HTTP request (a stalled answer fails the
            attempt after this long and is retried).
        frames: ``"reference"`` (no pixels in Parquet, the default) or ``"jpeg"``,
            ``"png"``, ``"webp"``: materialise each kept frame in the ``image`` column.
        resize: ``(width, height)`` of materialised frames; ``(width, None)`` keeps the
            aspect ratio.
        fps: keep only the frame nearest to each tick of this rate (others are not
            written; ``frame_index`` keeps the video's numbering).
        image_quality: JPEG/WebP quality, 1..100.
        started_after: export only recordings that started at or after this time.
        started_before: export only recordings that started before this time.
        min_duration_s: export only recordings at least this long (by the API's duration).
        allow_foreign_files: add a new dataset to a folder that already holds other
            files (refused by default: see
            :meth:`~odyssey_data.storage.DatasetStore.check_ownership`). Those files are
            never deleted or overwritten; one whose name the export writes is refused.
        checkpoint_every: commit the manifest at least every this many recordings
            (finished ones since the last commit), so an interrupted run keeps them.
        checkpoint_seconds: ... or at least every this many seconds, whichever comes
            first. Either way commits are spaced so they take at most about 5 % of the
            run (a commit's cost grows with the dataset).
        mix_options: add recordings even when the dataset holds recordings made with
            other data-shaping options (see :mod:`odyssey_data.runs`); else refused.
        qc: quality control, one row per recording in the ``qc`` table:
            ``"reference"`` (default: timing and prompts from the frame times, no
            pixel decoded), ``"response"`` (also each interaction's visual response
            latency, decoding a short window after it), ``"decode"`` (also frozen
            stretches, decoding every frame at low resolution) or ``"off"``. See
            :mod:`odyssey_data.qc`.
        qc_fail_on: gate rules such as ``"gaps>0"`` or ``"response_latency_max_s>1.5"``:
            a recording that breaks one is recorded as failed with the rule and the
            measured value, and is not exported (a re-run checks it again).
    """

    output: str
    api_url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    limit: int | None = None
    stream_ids: tuple[str, ...] = ()
    source: str = "streams"
    job_ids: tuple[str, ...] = ()
    job_status: str | None = None
    with_thumbnails: bool = False
    workers: int | None = None
    executor: str = "local"
    ray_address: str | None = None
    storage_options: Mapping[str, Any] = field(default_factory=dict, repr=False)
    event_offset_ms: float = 0.0
    probe: ProbeMode = "auto"
    overwrite: bool = False
    shard_rows: int = 1_000_000
    break_lock: bool = False
    lock_timeout_s: float | None = 6 * 3600.0
    max_download_bytes: int = 16 << 30
    min_download_rate: float = 16 << 10
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    timeout_s: float = 30.0
    frames: str = "reference"
    resize: tuple[int, int | None] | None = None
    fps: float | None = None
    image_quality: int = 90
    started_after: datetime | None = None
    started_before: datetime | None = None
    min_duration_s: float | None = None
    allow_foreign_files: bool = False
    checkpoint_every: int = 100
    checkpoint_seconds: float = 30.0
    mix_options: bool = False
    qc: str = "reference"
    qc_fail_on: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self.frame_options().validate()
        self.qc_options()  # validates the mode and the rules
        if self.source not in SOURCES:
            raise ConfigError(f"source must be one of {', '.join(SOURCES)}, not {self.source!r}")
        if self.job_status is not None and self.job_status not in JOB_STATUSES:
            raise ConfigError(
                f"job_status must be one of {', '.join(JOB_STATUSES)}, not {self.job_status!r}"
            )
        if (self.job_ids or self.job_status) and self.source == "streams":
            raise ConfigError("job_ids and job_status need source='simulations' or 'all'")
        _check_range("timeout_s", self.timeout_s, 0.0, MAX_SECONDS, low_open=True)
        _check_range("max_download_bytes", self.max_download_bytes, 1, 2**50)
        _check_range("min_download_rate", self.min_download_rate, 1, 1e12)
        _check_range(
            "event_offset_ms", self.event_offset_ms, -MAX_EVENT_OFFSET_MS, MAX_EVENT_OFFSET_MS
        )
        if self.workers is not None:
            _check_range("workers", self.workers, 1, MAX_WORKERS)
        if self.limit is not None and self.limit < 1:
            raise ConfigError(f"limit must be at least 1, not {self.limit}")
        _check_range("shard_rows", self.shard_rows, 1, 2**31 - 1)
        if self.lock_timeout_s is not None:
            _check_range(
                "lock_timeout_s", self.lock_timeout_s, 0.0, 10 * MAX_SECONDS, low_open=True
            )
        if self.ray_address is not None and self.executor != "ray":
            raise ConfigError("ray_address needs executor='ray'")
        if self.executor == "ray" and self.output.startswith("memory://"):
            raise ConfigError("memory:// lives in this process; Ray workers cannot write to it")
        if self.probe not in ("auto", "demux", "decode"):
            raise ConfigError(f"probe must be auto, demux or decode, not {self.probe!r}")
        for name in ("started_after", "started_before"):
            moment = getattr(self, name)
            if moment is not None and moment.tzinfo is None:
                raise ConfigError(f"{name} must be a time with a time zone (e.g. ...Z)")
        if (
            self.started_after is not None
            and self.started_before is not None
            and not self.started_after < self.started_before
        ):
            raise ConfigError("started_after must be earlier than started_before")
        if self.min_duration_s is not None:
            _check_range("min_duration_s", self.min_duration_s, 0.0, MAX_SECONDS)
        if self.checkpoint_every < 1:
            raise ConfigError(f"checkpoint_every must be at least 1, not {self.checkpoint_every}")
        if not self.checkpoint_seconds > 0:
            raise ConfigError(
                f"checkpoint_seconds must be a positive number, not {self.checkpoint_seconds}"
            )

    def frame_options(self) -> FrameOptions:
        """What each worker does with the frames (reference rows or encoded images)."""
        return FrameOptions(self.frames, self.resize, self.fps, self.image_quality)

    def qc_options(self) -> QCOptions:
        """The quality control each worker runs, and its gate."""
        return QCOptions(self.qc, tuple(self.qc_fail_on))

    def local_threads(self) -> bool:
        """True when the local executor runs recordings in threads rather than processes.

        Reference mode's work runs in C without the GIL (download, hashing, demuxing,
        the first-frame decode), so threads use the cores without a process to start
        and import into; materialised frames run Python per frame, so they get processes.
        """
        return self.executor == "local" and not self.frame_options().materialised

    def public_options(self) -> dict[str, Any]:
        """The options as recorded in the manifest: no key, no storage credentials."""
        api_url = self.api_url or os.environ.get("ODYSSEY_API_URL")
        return {
            "api_url": redact_url(api_url) if api_url else None,
            "frames": self.frames,
            "resize": list(self.resize) if self.resize else None,
            "fps": self.fps,
            "limit": self.limit,
            "stream_ids": list(self.stream_ids),
            "source": self.source,
            "job_ids": list(self.job_ids),
            "job_status": self.job_status,
            "with_thumbnails": self.with_thumbnails,
            "executor": self.executor,
            "event_offset_ms": self.event_offset_ms,
            "probe": self.probe,
            "shard_rows": self.shard_rows,
            "storage_option_keys": sorted(self.storage_options),
            "started_after": self.started_after.isoformat() if self.started_after else None,
            "started_before": self.started_before.isoformat() if self.started_before else None,
            "min_duration_s": self.min_duration_s,
            "qc": self.qc,
            "qc_fail_on": [str(rule) for rule in self.qc_options().rules],
        }

    def has_filters(self) -> bool:
        """True when recordings are filtered by start time or duration."""
        return (
            self.started_after is not None
            or self.started_before is not None
            or self.min_duration_s is not None
        )

    def wants(self, info: RecordingInfo) -> bool:
        """True when ``info`` passes the start-time and duration filters.

        A recording whose start time (or duration) the API does not give fails a filter
        on it: it cannot be shown to match.
        """
        started = info.started_at
        if self.started_after is not None and (started is None or started < self.started_after):
            return False
        if self.started_before is not None and (started is None or started >= self.started_before):
            return False
        duration = info.duration_seconds
        return self.min_duration_s is None or (
            duration is not None and duration >= self.min_duration_s
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
    status: str
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


_CLIENTS: dict[tuple[Any, ...], OdysseyClient] = {}


def _close_clients() -> None:
    """Close the pooled clients this process made for the unit of work."""
    while _CLIENTS:
        _CLIENTS.popitem()[1].close()


def _client(task: RecordingTask) -> OdysseyClient:
    # One pooled client per worker process (per thread: the driver's download-ahead
    # threads count their retries apart), API and client settings: connections are
    # reused across tasks, and an export with other limits never gets a stale client.
    key = (
        threading.get_ident(),
        task.api_url,
        task.api_key,
        task.retry,
        task.max_download_bytes,
        task.min_download_rate,
        task.timeout_s,
    )
    client = _CLIENTS.get(key)
    if client is None:
        client = OdysseyClient(
            task.api_url,
            task.api_key,
            retry=task.retry,
            max_download_bytes=task.max_download_bytes,
            min_download_rate=task.min_download_rate,
            timeout_s=task.timeout_s,
        )
        _CLIENTS[key] = client
    return client


class _Prefetcher:
    """Fetches tasks' files ahead with ``ahead`` download threads in this process.

    The local executor's workers then only process: while they work on the recordings
    in flight, the next ones download (download and processing overlap instead of every
    worker downloading, then every worker processing). Downloads run on whatever the
    consumer does, up to ``2 × ahead`` recordings fetched (or fetching) and not yet
    handed on, so the link stays busy while the workers are busy and the disk holds a
    bounded number of videos. Each task's folder is removed by the worker that
    processes it; :meth:`close` (after the executor is closed) removes any left by tasks
    never processed (an error, an interrupted export).
    """

    def __init__(self, ahead: int) -> None:
        self.ahead = ahead
        self._folders: list[str] = []
        self._pool = ThreadPoolExecutor(max_workers=ahead, thread_name_prefix="odyssey-fetch")
        self._stop = threading.Event()

    def _run(self, task: RecordingTask) -> RecordingTask:
        folder = tempfile.mkdtemp(prefix=scratch_prefix(), dir=task.store.scratch_dir())
        self._folders.append(folder)
        try:
            fetched = _fetching(task, folder)
        except _STOPS_THE_RUN:
            raise
        except Exception as exc:  # as in process_recording: this recording fails alone
            fetched = Fetched(folder, result=_unexpected(task, exc))
        return replace(task, prefetched=fetched)

    def tasks(self, tasks: Iterable[RecordingTask]) -> Iterator[RecordingTask]:
        """``tasks`` in order, each with its files fetched (``prefetched``)."""
        handed: queue.Queue[Future[RecordingTask] | BaseException | None] = queue.Queue()
        slots = threading.Semaphore(2 * self.ahead)

        def feed() -> None:
            try:
                for task in tasks:
                    while not slots.acquire(timeout=0.1):
                        if self._stop.is_set():
                            return
                    if self._stop.is_set():
                        return
                    handed.put(self._pool.submit(self._run, task))
            except BaseException as exc:  # handed to the consumer, raised there
                handed.put(exc)
            finally:
                handed.put(None)

        feeder = threading.Thread(target=feed, name="odyssey-fetch-feed", daemon=True)
        feeder.start()
        try:
            while (item := handed.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                slots.release()
                yield item.result()
        finally:
            self._stop.set()

    def close(self, wait: bool = True) -> None:
        """Stop fetching and remove every folder still there (call once no worker runs).

        ``wait=False`` (an interrupted export) abandons the downloads in flight; their
        folders are ``.tmp-`` leftovers the next run removes.
        """
        self._stop.set()
        self._pool.shutdown(wait=wait, cancel_futures=True)
        if not wait:
            return
        for folder in self._folders:
            shutil.rmtree(folder, ignore_errors=True)


def _repeat(value: str, n: int) -> pa.Array:
    return pa.array([value], pa.string()).take(pa.array(np.zeros(n, dtype=np.int32)))


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


def process_recording(task: RecordingTask) -> RecordingResult:
    """Export one recording: fetch, probe, parse, align, copy the video.

    Never raises for anything in this recording's answer, files or events: the result
    then has ``status="failed"`` and the reason. Bad data the package knows to check
    fails with its own message; anything else that goes wrong in this one recording
    (a case no check foresaw) fails it too, named by its exception, with the traceback
    in the debug log: one bad recording never stops the others. Either way ``stats``
    counts the download ``attempts``, the ``retries`` (repeated downloads and API calls)
    and the ``url_refreshes`` (expired presigned URLs replaced).

    A task whose files the driver already fetched (``task.prefetched``, the local
    executor's download-ahead) skips the fetch; its folder is removed here either way.
    """
    try:
        return _process(task)
    except _STOPS_THE_RUN:
        raise  # the dataset's storage (full, refused, gone): no recording can be written
    except Exception as exc:  # the last line of "one bad recording stays one failure"
        return _unexpected(task, exc)


def _lost(task: RecordingTask, reason: str) -> RecordingResult:
    """The failed result of a recording whose worker process died running it alone."""
    return RecordingResult(
        task.info.stream_id, "failed", f"recording {task.info.stream_id!r}: {reason}"
    )


def _unexpected(task: RecordingTask, exc: Exception) -> RecordingResult:
    """The failed result of a recording whose export raised what no check foresaw."""
    log.debug("recording %r failed unexpectedly", task.info.stream_id, exc_info=True)
    reason = (
        f"recording {task.info.stream_id!r}: unexpected {type(exc).__name__} while "
        f"exporting it ({printable(str(exc))[:200]}); the others are not affected "
        "(run with --debug for the traceback, and please report it)"
    )
    return RecordingResult(task.info.stream_id, "failed", reason)


def _process(task: RecordingTask) -> RecordingResult:
    if task.prefetched is not None:
        try:
            return _finish(task, task.prefetched)
        finally:
            shutil.rmtree(task.prefetched.folder, ignore_errors=True)
    # Removed on every path, success or failure (the with block). On a local dataset
    # it lives on the dataset's disk, so the video is moved into place rather than
    # copied; an interrupted run's folder is a leftover (.tmp-).
    with tempfile.TemporaryDirectory(prefix=scratch_prefix(), dir=task.store.scratch_dir()) as tmp:
        if task.frame_options.streams():
            return _stream(task, tmp)
        return _finish(task, _fetching(task, tmp))


def _stream(task: RecordingTask, folder: str) -> RecordingResult:
    """Fetch in a thread while this one decodes and encodes the frames as they arrive.

    The images are kept by pts in a file; once the download is whole, the usual steps
    (probe, align, checks) build the rows and take their images from that file. When
    decoding the growing file fails (the download started over or failed, a decoder
    error) the images come from the finished file instead, as without streaming.
    """
    growth = Growth()
    box: dict[str, Fetched] = {}

    def download() -> None:
        try:
            box["fetched"] = _fetching(task, folder, video_growth=growth)
        except Exception:
            if not growth.abandoned:
                raise
        finally:
            growth.finish()

    thread = threading.Thread(target=download, name="odyssey-stream-fetch", daemon=True)
    thread.start()
    try:
        encoded = _encode_as_it_arrives(task, folder, growth)
    except Exception:
        thread.join()
        raise
    except BaseException:
        # Interrupted (Ctrl-C): not waiting for the download (a daemon thread); it
        # stops at its next write, quietly.
        growth.abandon()
        raise
    thread.join()
    if "fetched" not in box:  # the fetch thread died of a programming error
        raise RuntimeError(f"recording {task.info.stream_id!r}: the download thread failed")
    result = _finish(task, box["fetched"], encoded=encoded)
    result.stats["streamed"] = encoded is not None
    return result


def _encode_as_it_arrives(task: RecordingTask, folder: str, growth: Growth) -> str | None:
    """Decode the growing video, encode the frames kept; the file of (pts, image) or None.

    Every frame is kept, or with ``fps`` the ones :class:`TickSelector` picks as their
    times arrive (the rows pick the same from the whole video; _materialise checks).
    """
    options = task.frame_options
    what = f"recording {task.info.stream_id!r}"
    growth.started.wait()
    if growth.failed or (growth.finished and not growth.written):
        return None  # no video to read (the fetch failed or never got to it)
    video = os.path.join(folder, "video.mp4")
    encode = image_encoder(options.mode, options.quality)
    path = os.path.join(folder, "images.arrow")
    schema = pa.schema([pa.field("pts", pa.int64()), IMAGE_FIELD])
    pts: list[int] = []
    images: list[bytes] = []
    try:
        with GrowingReader(video, growth) as head:
            time_base, width, height = stream_params(cast("IO[bytes]", head), what)
        with GrowingReader(video, growth) as reader, pa.ipc.new_file(path, schema) as sink:

            def emit(frame_pts: int, rgb: np.ndarray) -> None:
                pts.append(frame_pts)
                images.append(encode(rgb))
                if len(images) == _IMAGE_BATCH:
                    flush()

            def flush() -> None:
                sink.write_batch(pa.record_batch([pa.array(pts, pa.int64()), images], schema))
                pts.clear()
                images.clear()

            selector = TickSelector(options.fps) if options.fps is not None else None
            held: tuple[int, np.ndarray] | None = None  # the last frame, maybe kept later
            first: int | None = None
            position = 0
            frames = decode_frames(
                cast("IO[bytes]", reader),
                size=target_size(options.resize, width, height),
                threads=1,
                what=what,
            )
            for frame_pts, rgb in frames:
                if selector is None:
                    emit(frame_pts, rgb)
                    continue
                first = frame_pts if first is None else first
                # Computed as the rows' times are (FrameTiming.timestamps_s).
                time_s = ticks_to_seconds(float(frame_pts - first), time_base)
                for kept in selector.feed(time_s):
                    if kept < position:
                        assert held is not None
                        emit(*held)
                    else:
                        emit(frame_pts, rgb)
                held, position = (frame_pts, rgb), position + 1
            if selector is not None and held is not None and selector.finish():
                emit(*held)
            if images:
                flush()
    except (StartedOver, OdysseyDataError, OSError) as exc:
        log.info("%s: decoding while downloading stopped (%s); decoding the whole file", what, exc)
        with contextlib.suppress(OSError):
            os.unlink(path)
        return None
    return path


def fetch(task: RecordingTask, folder: str, video_growth: Growth | None = None) -> Fetched:
    """Download a recording's video, events log (and media) into ``folder``.

    Never raises for a failed download or a recording the API no longer knows: the
    :class:`Fetched` then carries the failed (or skipped) result. With ``video_growth``
    the video's progress is reported there as it downloads (see :mod:`.growing`), and it
    is finished on every path, video downloaded or not.
    """
    info = task.info
    sid = info.stream_id
    what = f"recording {sid!r}"
    started = time.perf_counter()
    downloads: list[DownloadStats] = []
    client: OdysseyClient | None = None
    api_retries = 0
    fetched = Fetched(folder)
    try:
        client = _client(task)
        api_retries = client.api_retries
        recording, script = _artifacts(client, info)
        fetched.recording, fetched.script = recording, script
        if not recording.video_url:
            fetched.result = RecordingResult(
                sid,
                "skipped",
                "the API gives no video URL yet (still processing?); a later run exports it",
                stats={"not_ready": True},
            )
        else:
            api = client

            def get(url: str, name: str, kind: str, field_name: str) -> DownloadStats:
                got = DownloadStats()
                downloads.append(got)
                with open(os.path.join(folder, name), "w+b") as handle:
                    dest: Any = handle
                    if video_growth is not None and name == "video.mp4":
                        dest = WatchedWriter(handle, video_growth, lambda: got.size)
                        video_growth.started.set()
                    api.download(
                        url,
                        dest,
                        what=f"{what} {kind}",
                        refresh_url=lambda: getattr(_artifacts(api, info)[0], field_name),
                        stats=got,
                    )
                if dest is not handle:
                    assert video_growth is not None
                    video_growth.finish()
                return got

            video = get(recording.video_url, "video.mp4", "video", "video_url")
            if video.bytes == 0:
                raise RecordingError(
                    f"{what}: the video file is empty (0 bytes); the recording may "
                    "still be processing, re-run the export later",
                    stream_id=sid,
                )
            fetched.video_sha256, fetched.video_bytes = video.sha256, video.bytes
            if recording.events_url:
                get(recording.events_url, "events.jsonl", "events log", "events_url")
                fetched.events_file = os.path.join(folder, "events.jsonl")
            if task.with_thumbnails:
                for url, name, kind in (
                    (recording.thumbnail_url, "thumbnail.jpg", "thumbnail"),
                    (recording.preview_url, "preview.mp4", "preview"),
                ):
                    if url:
                        got = get(url, name, kind, f"{kind}_url")
                        fetched.media[name] = (os.path.join(folder, name), got.sha256)
    except NotFoundError:
        if info.job_id is not None:
            reason = (
                f"{what} of simulation job {info.job_id!r}: the API no longer knows it (HTTP "
                "404, or not among the job's output streams); re-run the export to try again"
            )
            fetched.result = RecordingResult(sid, "failed", reason)
        else:
            fetched.result = RecordingResult(
                sid,
                "failed",
                f"{what}: the API no longer knows this recording (HTTP 404); it was listed but "
                "may have been deleted since",
            )
    except _STOPS_THE_RUN:
        raise  # the dataset's disk, not this recording: the run stops (see export)
    except OdysseyDataError as exc:
        fetched.result = RecordingResult(sid, "failed", str(exc))
    except OSError as exc:
        # Writing the download failed (a full disk): the dataset's disk, on a local one.
        name = os.path.basename(folder)
        error = storage_error(
            exc, action="write the download of", path=f"{name}/", url=task.store.url
        )
        if isinstance(error, _STOPS_THE_RUN):
            raise error from exc
        fetched.result = RecordingResult(sid, "failed", str(error))
    if video_growth is not None:
        video_growth.finish(failed=fetched.result is not None)
    attempts = sum(d.attempts for d in downloads)
    api_retried = client.api_retries - api_retries if client is not None else 0
    fetched.stats = {
        "attempts": attempts,
        "retries": attempts - len(downloads) + api_retried,
        "url_refreshes": sum(d.refreshes for d in downloads),
    }
    fetched.download_s = round(time.perf_counter() - started, 4)
    return fetched


def _fetching(task: RecordingTask, folder: str, video_growth: Growth | None = None) -> Fetched:
    """:func:`fetch`, counted as ``downloading`` by the live progress."""
    with LIVE.phase("downloading"):
        return fetch(task, folder, video_growth) if video_growth else fetch(task, folder)


def _finish(task: RecordingTask, fetched: Fetched, encoded: str | None = None) -> RecordingResult:
    """:func:`_finish_fetched`, counted as ``processing`` by the live progress."""
    with LIVE.phase("processing"):
        return _finish_fetched(task, fetched, encoded)


def _finish_fetched(
    task: RecordingTask, fetched: Fetched, encoded: str | None = None
) -> RecordingResult:
    """The unit of work after :func:`fetch`: build the result from the fetched files.

    ``encoded``: the frames' images already made while the video downloaded (a file
    of pts and image, see :func:`_stream`).
    """
    started = time.perf_counter()
    result = fetched.result
    if result is None:
        assert fetched.recording is not None
        try:
            result = _build(
                task,
                fetched.recording,
                os.path.join(fetched.folder, "video.mp4"),
                fetched.events_file,
                fetched.script,
                fetched.media,
                video_sha256=fetched.video_sha256,
                encoded=encoded,
            )
            result.stats["video_bytes"] = fetched.video_bytes
            result.stats["download_s"] = fetched.download_s
        except _STOPS_THE_RUN:
            raise  # writing the dataset failed: not this recording's fault, the run stops
        except OdysseyDataError as exc:
            result = RecordingResult(task.info.stream_id, "failed", str(exc))
    result.stats.update(fetched.stats)
    result.stats["total_s"] = round(fetched.download_s + time.perf_counter() - started, 4)
    return result


def _build(
    task: RecordingTask,
    recording: Recording,
    video_file: str,
    events_file: str | None,
    script: tuple[ScriptEntry, ...] | None = None,
    media: Mapping[str, tuple[str, str | None]] | None = None,
    *,
    video_sha256: str | None = None,
    encoded: str | None = None,
) -> RecordingResult:
    """Probe, parse, align; then move (or copy) the video and media into the dataset.

    ``video_file`` and the media files are consumed (moved into place on a local
    dataset); ``video_sha256`` and each media file's hash, when known from the
    download, spare reading them again.
    """
    info = task.info
    sid = info.stream_id
    what = f"recording {sid!r}"
    timing = probe_frames(video_file, what=what, mode=task.probe)
    ts = timing.timestamps_s()
    n = timing.frame_count
    expected = recording.frame_count
    if expected is not None and n < expected:
        # A complete-looking file with fewer frames than announced: never export it as
        # a shorter recording.
        raise RecordingError(
            f"{what}: the video holds {n} frames but the API announces {expected}; the file "
            "is incomplete (re-run the export; if it persists, the recording is damaged)",
            stream_id=sid,
        )

    warnings: tuple[str, ...] = ()
    if events_file is not None:
        with open(events_file, "rb") as lines:
            parsed = parse_events(
                lines,
                stream_id=sid,
                started_at=info.started_at,
                offset_s=task.event_offset_ms / 1000.0,
            )
        events, bad_lines, warnings = parsed.table, parsed.bad_lines, parsed.warnings
        if bad_lines:
            warnings = (f"{what}: {bad_lines} bad events log lines skipped", *warnings)
    elif script is None:
        events, bad_lines = EVENTS_SCHEMA.empty_table(), 0
        warnings = (f"{what}: the API gives no events log; prompts are null",)
    else:
        events, bad_lines = EVENTS_SCHEMA.empty_table(), 0
    timeline = prompt_timeline(events)
    lags = None
    if script is not None:
        # The script is the ground truth: frames align to it, the log's lag is kept.
        script_events = _script_events(script, sid)
        logged, timeline = timeline, prompt_timeline(script_events)
        lags = prompt_lags(timeline, logged) if events_file is not None else None
        events = _merge_events(script_events, events)
    prompt, prompt_index, prompt_time = align_frames(ts, timeline)
    interval = float(np.median(np.diff(ts))) if n > 1 else 0.0
    video_end = float(ts[-1]) + interval
    api_duration = (
        info.duration_seconds if info.duration_seconds is not None else recording.duration_seconds
    )
    # Before the video goes into the dataset: a recording the gate fails leaves nothing.
    qc = measure(
        task.qc,
        stream_id=sid,
        video_file=video_file,
        timing=timing,
        timestamps_s=ts,
        timeline=timeline,
        events=events,
        video_duration_s=video_end,
        api_duration_s=api_duration,
        prompt_lags_s=lags,
        what=what,
    )
    check(task.qc, qc, what, sid)
    if expected is not None and n > expected:
        warnings = (*warnings, f"{what}: the video holds {n} frames, the API announces {expected}")

    video_rel = f"videos/{safe_name(sid)}.mp4"
    frames = pa.Table.from_arrays(
        [
            _repeat(sid, n),
            pa.array(np.arange(n, dtype=np.int32)),
            pa.array(timing.pts),
            pa.array(ts),
            pa.array(timing.is_keyframe),
            _repeat(video_rel, n),
            pa.array(np.full(n, timing.width, dtype=np.int32)),
            pa.array(np.full(n, timing.height, dtype=np.int32)),
            prompt,
            prompt_index,
            prompt_time,
        ],
        schema=FRAMES_SCHEMA,
    )
    options = task.frame_options
    stretched = _stretched(options, timing.width, timing.height)
    if stretched is not None:
        warnings = (*warnings, f"{what}: {stretched}")
    if options.fps is not None:
        frames = frames.take(pa.array(resample_positions(ts, options.fps, unique=True)))
    spilled = None
    if options.materialised:
        frames, spilled = _materialise(
            frames, timing, video_file, options, what, task.spill_dir, encoded
        )
    segments = build_segments(sid, ts, timeline, video_end, lags, qc.latencies)

    video = task.store.put_file(video_rel, video_file, kind="video", sha256=video_sha256)
    extra_files: list[FileEntry] = []
    for name, (local, digest) in (media or {}).items():
        # Checked to be what it claims (an error page is not a thumbnail).
        problem = media_problem(local, name.partition(".")[0], what)
        if problem is not None:
            warnings = (*warnings, problem)
            continue
        extra_files.append(
            task.store.put_file(
                f"videos/{safe_name(sid)}.{name}",
                local,
                kind=name.partition(".")[0],
                sha256=digest,
            )
        )
    stored = {entry.kind: entry.path for entry in extra_files}

    row = {
        "stream_id": sid,
        "width": info.width if info.width is not None else timing.width,
        "height": info.height if info.height is not None else timing.height,
        "started_at": info.started_at,
        "ended_at": info.ended_at,
        "duration_seconds": api_duration,
        "frame_count": n,
        "video_path": video_rel,
        "video_bytes": video.bytes,
        "video_sha256": video.sha256,
        "codec": timing.codec,
        "time_base": f"{timing.time_base.numerator}/{timing.time_base.denominator}",
        "events_count": events.num_rows,
        "bad_event_lines": bad_lines,
        "prompts_count": len(timeline),
        "first_pts": timing.first_pts,
        "video_duration_s": video_end,
        "source": info.source,
        "exported_at": datetime.now(UTC),
        "job_id": info.job_id,
        "script_index": info.script_index,
        "thumbnail_path": stored.get("thumbnail"),
        "preview_path": stored.get("preview"),
        "exporter_version": __version__,
        "export_options": task.options_json,
    }
    recording_table = pa.Table.from_pylist([row], schema=RECORDINGS_SCHEMA)
    return RecordingResult(
        stream_id=sid,
        status="exported",
        frames=None if spilled is not None else frames,
        spilled=spilled,
        events=events,
        segments=segments,
        recording=recording_table,
        qc=qc.table(),
        video=video,
        extra_files=tuple(extra_files),
        stats={
            "bad_event_lines": bad_lines,
            "probe": timing.method,
            **({"stretched": stretched} if stretched is not None else {}),
            "qc_decoded_frames": qc.decoded_frames,
        },
        warnings=warnings,
    )


def _stretched(options: FrameOptions, width: int, height: int) -> str | None:
    """Why ``--resize WxH`` distorts frames of ``width``×``height``, or ``None``."""
    if not options.materialised or options.resize is None or options.resize[1] is None:
        return None
    new_w, new_h = options.resize[0], options.resize[1]
    if not width or not height or abs(new_w / new_h - width / height) <= 0.01 * width / height:
        return None
    return (
        f"--resize {new_w}x{new_h} changes the aspect ratio of its {width}x{height} frames "
        f"(stretched); give the width alone (--resize {new_w}) to keep the aspect ratio"
    )


def _script_events(script: tuple[ScriptEntry, ...], sid: str) -> pa.Table:
    """The job's script as events rows (``origin`` = ``"script"``), on the video clock."""
    lines = [entry.raw.encode("utf-8") for entry in script]
    return parse_events(lines, stream_id=sid, event_origin="script").table


def _merge_events(script_events: pa.Table, logged: pa.Table) -> pa.Table:
    """Script and log rows in one events table, sorted by time (script first on ties)."""
    merged = pa.concat_tables([script_events, logged])
    order = np.argsort(merged["time_s"].to_numpy(), kind="stable")
    merged = merged.take(pa.array(order))
    index = merged.schema.get_field_index("event_index")
    numbers = pa.array(np.arange(merged.num_rows, dtype=np.int32))
    return merged.set_column(index, EVENTS_SCHEMA.field("event_index"), numbers)


def _artifacts(
    client: OdysseyClient, info: RecordingInfo
) -> tuple[Recording, tuple[ScriptEntry, ...] | None]:
    """Fresh artifact URLs of a recording, and its job's script when there is one.

    A stream's come from ``GET /recordings/{stream_id}``; a simulation output's from
    ``GET /simulation-jobs/{job_id}`` (with the script, when the API returns it).

    Raises:
        NotFoundError: the API does not know the recording, the job, or the job has no
            such output stream.
    """
    if info.job_id is None:
        return client.get_recording(info.stream_id), None
    detail = client.get_simulation_job(info.job_id)
    output = detail.stream(info.stream_id)
    if output is None:
        raise NotFoundError(
            f"simulation job {info.job_id!r} has no output stream {info.stream_id!r}"
        )
    return output.recording, detail.script


def _materialise(
    frames: pa.Table,
    timing: FrameTiming,
    video_file: str,
    options: FrameOptions,
    what: str,
    spill_dir: str | None = None,
    encoded: str | None = None,
) -> tuple[pa.Table, SpilledFrames | None]:
    """Add the ``image`` column: decode the video once, encode the kept frames.

    With ``encoded`` (a file of pts and image made while the video downloaded) the
    images come from there instead, checked pts by pts against the rows.

    Frames stream through one at a time and rows are finished in batches of
    ``_IMAGE_BATCH``. With ``spill_dir`` each batch goes to an Arrow IPC file there as it
    is made, so memory stays flat however long the recording (the result then carries
    the file, not the table); without it the batches are kept and returned as a table.
    """
    encode = image_encoder(options.mode, options.quality)
    size = target_size(options.resize, timing.width, timing.height)
    keep = frames.column("pts").to_numpy()
    n = frames.num_rows
    wanted = set(int(p) for p in keep)
    if encoded is not None and not np.array_equal(_encoded_pts(encoded), keep):
        # Made from the growing file, they are not the frames the rows want (a stream
        # whose first decoded frame is not its first packet, say): decode the file.
        log.info("%s: the images made while downloading do not match; decoding again", what)
        encoded = None
    kept: list[pa.Table] = []
    sink: Any = None
    path = None
    if spill_dir is not None:
        fd, path = tempfile.mkstemp(suffix=".arrow", dir=spill_dir)
        os.close(fd)
    images: list[bytes] = []
    done = 0

    def finish() -> None:
        nonlocal sink, done, images
        count = len(images)
        # width/height stay the decoded frame's size (what a reference decodes to); the
        # image's own size gets columns of its own.
        part = (
            frames.slice(done, count)
            .append_column(IMAGE_FIELD, pa.array(images, pa.binary()))
            .append_column("image_width", pa.array(np.full(count, size[0], dtype=np.int32)))
            .append_column("image_height", pa.array(np.full(count, size[1], dtype=np.int32)))
        )
        if path is not None:
            if sink is None:
                sink = pa.ipc.new_file(path, part.schema)
            sink.write_table(part)
        else:
            kept.append(part)
        done += count
        images = []

    try:
        # Recordings run one per core in parallel, so each decoder keeps to one thread.
        # Frames come in presentation order, as the rows are (sorted by pts).
        made = (
            _encoded_images(encoded, wanted)
            if encoded is not None
            else (
                (pts, encode(rgb))
                for pts, rgb in decode_frames(
                    video_file, size=size, keep=wanted, threads=1, what=what
                )
            )
        )
        for pts, image in made:
            if done + len(images) >= n or pts != keep[done + len(images)]:
                break
            images.append(image)
            if len(images) == _IMAGE_BATCH:
                finish()
        missing = n - done - len(images)
        if missing:
            raise DecodeError(f"{what}: {missing} frames could not be decoded for their images")
        if images or not done:
            finish()
        if sink is not None:
            sink.close()
            sink = None
    except BaseException:
        if sink is not None:
            sink.close()
        if path is not None:
            os.unlink(path)
        raise
    if path is not None:
        return frames.slice(0, 0), SpilledFrames(path, n, os.path.getsize(path))
    return pa.concat_tables(kept), None


def _encoded_pts(path: str) -> np.ndarray:
    """The pts column of a file made by :func:`_stream` (memory-mapped: the images'
    pages are never touched)."""
    with pa.memory_map(path, "r") as source:
        reader = pa.ipc.open_file(source)
        parts = [reader.get_batch(i).column(0).to_numpy() for i in range(reader.num_record_batches)]
        # Copied out before the map closes.
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def _encoded_images(path: str, wanted: set[int]) -> Iterator[tuple[int, bytes]]:
    """(pts, image) of the wanted frames from a file made by :func:`_stream`."""
    with pa.OSFile(path, "rb") as source:
        reader = pa.ipc.open_file(source)
        for i in range(reader.num_record_batches):
            batch = reader.get_batch(i)
            for pts, image in zip(
                batch.column(0).to_pylist(), batch.column(1).to_pylist(), strict=True
            ):
                if pts in wanted:
                    yield pts, image


#: Materialised rows finished (and spilled) at a time.
_IMAGE_BATCH = 256


@dataclass
class ExportReport:
    """What an export did, for the summary and the exit code."""

    output: str
    exported: int = 0
    failed: int = 0
    skipped: int = 0
    already: int = 0
    frames: int = 0
    video_bytes: int = 0
    retries: int = 0
    url_refreshes: int = 0
    bad_event_lines: int = 0
    shards: int = 0
    elapsed_s: float = 0.0
    problems: list[tuple[str, str, str]] = field(default_factory=list)
    #: Of ``skipped``: recordings not ready yet (active streams, jobs not completed, no
    #: video URL yet); a later run exports them.
    not_ready: int = 0
    #: Manifest commits made while the run went (checkpoints and shards), the last one
    #: included.
    commits: int = 0
    #: The run was interrupted (Ctrl-C, SIGTERM) after committing what had finished.
    interrupted: bool = False

    @property
    def ok(self) -> bool:
        """True when every recording was exported (none failed or skipped)."""
        return self.failed == 0 and self.skipped == 0

    def exit_code(self, *, strict: bool = False) -> int:
        """0 when nothing failed (recordings not ready yet are not failures), 3 when some
        failed; with ``strict`` any skipped recording also makes it 3."""
        return 0 if self.failed == 0 and (not strict or self.skipped == 0) else 3

    @property
    def frames_per_s(self) -> float:
        """Frames exported per second of wall time."""
        return self.frames / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        """A JSON-able summary."""
        out = asdict(self)
        out["frames_per_s"] = round(self.frames_per_s, 1)
        return out


class _ShardBuffer:
    """Collects results until a shard is full, then writes one part of each table."""

    def __init__(
        self,
        store: DatasetStore,
        manifest: Manifest,
        shard_rows: int,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        self.store = store
        self.manifest = manifest
        self.shard_rows = shard_rows
        #: Added to every exported recording's manifest entry (options, exporter).
        self.details = dict(details or {})
        self.results: list[RecordingResult] = []
        self._buffered: set[str] = set()
        self.rows = 0
        self.bytes = 0

    def add(self, result: RecordingResult) -> bool:
        """Buffer an exported result; True when the shard is full.

        A recording already exported (in the manifest or in this buffer) is dropped: one
        recording's rows must never appear twice in the dataset.
        """
        sid = result.stream_id
        # One dict lookup and one set lookup: building manifest.exported() or scanning
        # the buffer per result made a long export quadratic in its recordings.
        known = self.manifest.recordings.get(sid)
        if (known is not None and known.status == "exported") or sid in self._buffered:
            log.warning("recording %r was exported twice in one run; keeping the first", sid)
            return False
        self.results.append(result)
        self._buffered.add(sid)
        self.rows += result.frame_count
        # Materialised frames are heavy: cap a shard by bytes too (dataset-format.md
        # asks for 64-256 MB shards).
        if result.spilled is not None:
            self.bytes += result.spilled.bytes
        elif result.frames is not None:
            self.bytes += result.frames.nbytes
        return self.rows >= self.shard_rows or self.bytes >= SHARD_BYTES

    def flush(self) -> int | None:
        """Write the buffered results as shard files; returns the shard number."""
        if not self.results:
            return None
        shard = self.manifest.next_shard()
        ordered = sorted(self.results, key=lambda r: r.stream_id)
        parts: dict[str, list[pa.Table]] = {t: [] for t in TABLES}
        for r in ordered:
            assert r.frames is not None or r.spilled is not None
            assert r.recording is not None
            parts["recordings"].append(r.recording)
            parts["events"].append(
                r.events if r.events is not None else EVENTS_SCHEMA.empty_table()
            )
            parts["segments"].append(
                r.segments if r.segments is not None else SEGMENTS_SCHEMA.empty_table()
            )
            parts["qc"].append(r.qc if r.qc is not None else QC_SCHEMA.empty_table())
        entries = []
        for table in TABLES:
            rel = f"{table}/part-{shard:06d}.parquet"
            if table == "frames":
                # Streamed, one row group (or more) per recording: memory stays flat with
                # spilled images, and a reader filtering on one stream_id skips the rest.
                frames = (r.frame_batches() for r in ordered)
                entries.append(self.store.write_table(rel, frames, table, schema=FRAMES_SCHEMA))
            else:
                entries.append(self.store.write_table(rel, pa.concat_tables(parts[table]), table))
        for r in ordered:
            if r.spilled is not None:
                os.unlink(r.spilled.path)
        for entry in entries:
            self.manifest.files[entry.path] = entry
        for r in ordered:
            assert r.video is not None
            self.manifest.files[r.video.path] = r.video
            for extra in r.extra_files:
                self.manifest.files[extra.path] = extra
            self.manifest.recordings[r.stream_id] = RecordingStatus(
                status="exported",
                shard=shard,
                video_path=r.video.path,
                frames=r.frame_count,
                details={**_status_details(r), **self.details},
            )
        self.results = []
        self._buffered = set()
        self.rows = 0
        self.bytes = 0
        return shard


def _status_details(result: RecordingResult) -> dict[str, Any]:
    keys = ("attempts", "retries", "url_refreshes", "bad_event_lines", "probe", "not_ready")
    details = {k: result.stats[k] for k in keys if k in result.stats}
    if result.warnings:
        details["warnings"] = list(result.warnings[:5])
    return details


def _commit(store: DatasetStore, manifest: Manifest, lock: WriterLock) -> None:
    """Make ``manifest`` the dataset: one atomic replace of ``manifest.json``.

    Before writing, two checks that no other writer got in: this export still holds the
    lock, and the stored manifest is still the generation this export last read or wrote
    (an optimistic check: a writer that broke the lock and committed is noticed here).

    Raises:
        StorageError: the lock was lost or another writer committed; nothing is written.
    """
    lock.check()
    found = store.manifest_generation()
    if (found or 0) != manifest.generation:
        raise StorageError(
            f"another writer committed to {store.url} while this export ran (its manifest "
            f"is at generation {found}, this export expected {manifest.generation}): "
            "stopping without committing, so its work is kept. Files this export wrote are "
            "not in the dataset and the next run removes them; run the export again."
        )
    manifest.generation += 1
    manifest.updated_at = utc_now_iso()
    try:
        store.write_bytes(MANIFEST_NAME, manifest.dumps())
    except BaseException:
        # Not committed (a full disk, Ctrl-C mid-write): the stored generation is unchanged.
        manifest.generation -= 1
        raise
    lock.refresh(force=True)


def _load_manifest(store: DatasetStore) -> Manifest | None:
    return Manifest.load(store)


def _remove_leftovers(store: DatasetStore, manifest: Manifest) -> int:
    """Delete the export's own files no manifest lists (an interrupted run's leftovers).

    Only names the export writes (:func:`~odyssey_data.storage.is_owned`) are deleted;
    anything else in OUTPUT, in the dataset's folders or not, is left alone.
    """
    leftovers = []
    for folder in (*TABLES, "videos"):
        for rel in store.list_files(folder):
            if rel not in manifest.files and is_owned(rel):
                leftovers.append(rel)
    for name in store.list_root_files():
        if name.startswith(TMP_PREFIX) and is_owned(name):
            leftovers.append(name)
    store.remove(leftovers)
    # Workers' temp folders (downloads) at a local dataset's root.
    return len(leftovers) + store.remove_scratch()


def _select(
    client: OdysseyClient, config: ExportConfig, manifest: Manifest
) -> tuple[list[RecordingInfo], list[RecordingResult], int]:
    """Recordings to process, recordings skipped up front, and how many were done before."""
    jobs: tuple[list[RecordingInfo], list[RecordingResult], int] = ([], [], 0)
    if config.source != "streams":
        jobs = _select_jobs(client, config, manifest)
        if config.source == "simulations":
            return jobs
    done = manifest.exported()
    todo: list[RecordingInfo] = []
    skipped: list[RecordingResult] = []
    already = 0
    if config.stream_ids:
        wanted = dict.fromkeys(config.stream_ids)
        found: dict[str, RecordingInfo] = {}
        for info in client.list_recordings():
            if info.stream_id in wanted:
                found[info.stream_id] = info
                if len(found) == len(wanted):
                    break
        for sid in wanted:
            if sid not in found:
                reason = (
                    f"recording {sid!r}: the API does not list it; check the id "
                    "('odyssey-data list' shows them)"
                )
                skipped.append(RecordingResult(sid, "failed", reason))
        infos: Iterable[RecordingInfo] = [
            found[sid] for sid in wanted if sid in found and config.wants(found[sid])
        ]
    elif config.has_filters():
        # The limit counts the recordings that pass the filters, not the ones listed.
        infos = _limited(filter(config.wants, client.list_recordings()), config.limit)
    else:
        infos = _limited(client.list_recordings(), config.limit)
    for info in infos:
        if info.stream_id in done:
            already += 1
        elif info.problem is not None:
            skipped.append(RecordingResult(info.stream_id, "failed", info.problem))
        elif info.is_active:
            skipped.append(
                RecordingResult(
                    info.stream_id,
                    "skipped",
                    "the stream is still active (no end time); a later run exports it",
                    stats={"not_ready": True},
                )
            )
        else:
            todo.append(info)
    todo, refused = _distinct(todo + jobs[0])
    return todo, skipped + jobs[1] + refused, already + jobs[2]


#: Prefixes of manifest keys that are not stream ids (``job:<job_id>``), and the one
#: under which a stream id that starts with either is recorded (then as failed).
RESERVED_KEYS = ("job:", "stream:")


def _distinct(todo: list[RecordingInfo]) -> tuple[list[RecordingInfo], list[RecordingResult]]:
    """The recordings to process, each stream id once and none shaped like another key.

    Two entries with one stream id (a stream and a simulation output, two jobs naming
    the same output) would write one video file: the second fails instead. A stream id
    shaped like a job key (``job:…``) would share the job's manifest key: it fails,
    recorded under ``stream:<id>``.
    """
    seen: dict[str, RecordingInfo] = {}
    refused: list[RecordingResult] = []
    for info in todo:
        sid = info.stream_id
        if sid.startswith(RESERVED_KEYS):
            reason = (
                f"recording {sid!r}: a stream id starting with {sid.split(':')[0]!r}: has the "
                "form of the manifest's job keys; it cannot be exported safely"
            )
            refused.append(RecordingResult(f"stream:{sid}", "failed", reason))
        elif sid in seen:
            first = seen[sid]
            reason = (
                f"recording {sid!r}: listed twice ("
                f"{'job ' + repr(first.job_id) if first.job_id else 'a stream'} and "
                f"{'job ' + repr(info.job_id) if info.job_id else 'a stream'}); the first is "
                "exported, this one is not (one file name, one manifest key per id)"
            )
            log.warning("%s", reason)
            refused.append(RecordingResult(sid, "failed", reason))
        else:
            seen[sid] = info
    return list(seen.values()), refused


def _limited(infos: Iterable[RecordingInfo], limit: int | None) -> Iterator[RecordingInfo]:
    """``infos`` up to ``limit`` recordings that can be exported: still-active streams
    pass through (to be reported as not ready) without counting."""
    counted = 0
    for info in infos:
        if limit is not None and counted >= limit:
            return
        yield info
        if not info.is_active:
            counted += 1


#: Job statuses on the way to completed: not ready yet, not failures.
_JOB_WAITING = ("pending", "dispatched", "processing")


def _job_skipped(key: str, job: SimulationJob) -> RecordingResult:
    stats = {"not_ready": True} if job.status in _JOB_WAITING else {}
    return RecordingResult(key, "skipped", _job_skip_reason(job), stats=stats)


def _job_skip_reason(job: SimulationJob) -> str:
    if job.status == "failed":
        return f"job failed: {job.error_message or 'the API gives no error message'}"
    if job.status == "cancelled":
        return "job was cancelled"
    return f"job is {job.status}; re-run the export once it has completed"


def _select_jobs(
    client: OdysseyClient, config: ExportConfig, manifest: Manifest
) -> tuple[list[RecordingInfo], list[RecordingResult], int]:
    """The output streams of completed simulation jobs, and the jobs skipped.

    A job not completed is recorded under ``job:<job_id>`` as skipped with the reason
    (failed with the reason when ``--job-id`` names a job the API does not know); the
    key is dropped once the job's outputs are selected.
    """
    done = manifest.exported()
    todo: list[RecordingInfo] = []
    skipped: list[RecordingResult] = []
    already = 0
    if config.job_ids:
        job_ids: Iterable[str] = dict.fromkeys(config.job_ids)
    else:
        listed = client.list_simulation_jobs(status=config.job_status, limit=config.limit)
        job_ids = []
        for job in listed:
            if job.status == "completed":
                job_ids.append(job.job_id)
            else:
                skipped.append(_job_skipped(f"job:{job.job_id}", job))
    for job_id in job_ids:
        key = f"job:{job_id}"
        try:
            detail = client.get_simulation_job(job_id)
        except NotFoundError:
            reason = f"simulation job {job_id!r}: the API does not know it (HTTP 404); check the id"
            skipped.append(RecordingResult(key, "failed", reason))
            continue
        except (ApiResponseError, AuthError) as exc:
            # One job's bad answer (or one job refused) fails that job, not the export.
            skipped.append(RecordingResult(key, "failed", str(exc)))
            continue
        if detail.job.status != "completed":
            skipped.append(_job_skipped(key, detail.job))
            continue
        manifest.recordings.pop(key, None)  # skipped before, completed since
        if not detail.streams:
            skipped.append(RecordingResult(key, "skipped", "job completed without output streams"))
        for output in detail.streams:
            info = RecordingInfo(
                stream_id=output.stream_id,
                started_at=detail.started_at,
                ended_at=detail.job.completed_at,
                duration_seconds=output.recording.duration_seconds,
                source="simulation",
                job_id=job_id,
                script_index=output.script_index,
            )
            if info.stream_id in done:
                already += 1
            elif not config.has_filters() or config.wants(info):
                todo.append(info)
    return todo, skipped, already


def export(
    config: ExportConfig | None = None,
    /,
    *,
    progress: ProgressSink | Callable[[ProgressUpdate], Any] | None = None,
    **options: Any,
) -> ExportReport:
    """Export recordings into a dataset at ``config.output``.

    A re-run adds only the recordings the manifest does not list as exported; failed
    and skipped ones are tried again. One export at a time writes a dataset: this one
    holds its writer lock (``_odyssey.lock``) from start to end, and before every commit
    checks that no other writer committed since (see :func:`_commit`).

    The manifest is committed at checkpoints (``checkpoint_every`` recordings or
    ``checkpoint_seconds``, whichever first), so a crash loses at most the work since
    the last one. On ``KeyboardInterrupt`` (Ctrl-C; the CLI turns SIGTERM into one too)
    every recording that had finished is committed before the interrupt goes on; work
    in flight is abandoned, not awaited.

    Args:
        config: the options; or pass them as keywords (``export(output="out", ...)``).
        progress: a :class:`~odyssey_data.progress.ProgressSink` (the CLI's bar), or a
            callable that gets a :class:`~odyssey_data.progress.ProgressUpdate` per
            recording (``progress=print`` in a notebook).
        **options: :class:`ExportConfig` fields, when ``config`` is not given.

    Returns:
        The report; ``report.exit_code()`` is what the CLI exits with.

    Raises:
        ConfigError: invalid options, or (:class:`~odyssey_data.runs.OptionsMismatchError`)
            options that differ from those of the recordings already in the dataset.
        ApiError: the listing failed (authentication, network).
        StorageError: the dataset cannot be written, another export holds its lock, or
            another writer committed while this one ran.
    """
    config = _as_config(config, options)
    sink = make_sink(progress)
    started = time.perf_counter()
    store = DatasetStore(config.output, config.storage_options)
    workers = config.workers
    if not store.shared_between_processes:
        # memory:// lives in this process: videos written by worker processes would be lost.
        if config.executor != "local":
            raise ConfigError(
                f"{store.url} exists only in this process, so the {config.executor!r} "
                "executor cannot write to it: use executor='local', or a shared target "
                "(a folder, s3://, gs://)"
            )
        if workers != 1 and not config.local_threads():
            log.info("%s is visible only in this process: exporting with one worker", store.url)
            workers = 1
    store.check_ownership(allow_foreign=config.allow_foreign_files)
    lock = WriterLock(store, timeout_s=config.lock_timeout_s)
    lock.acquire(force=config.break_lock)
    try:
        return _export_locked(config, store, lock, workers, sink, started)
    finally:
        lock.release()


def _as_config(config: ExportConfig | None, options: dict[str, Any]) -> ExportConfig:
    if config is None:
        for name in ("stream_ids", "job_ids", "qc_fail_on"):
            if name in options and options[name] is not None:
                options[name] = tuple(options[name])
        return ExportConfig(**options)
    if options:
        raise ConfigError("pass either an ExportConfig or keyword options, not both")
    return config


class _Checkpoints:
    """When to commit: every ``every`` recordings or ``seconds``, whichever first, but
    once commits get expensive (over :attr:`CHEAP_S`), never so often that they take
    more than about ``1 / SPACING`` of the run.

    A commit rewrites the whole manifest, whose size grows with the dataset; spacing
    commits by their own cost keeps their total a bounded share of the run however many
    recordings it has (see benchmarks/checkpoints.py), whatever ``every`` is.
    """

    SPACING = 20.0
    #: Commits this quick are never held back (small datasets: ~10-50 ms).
    CHEAP_S = 0.1

    def __init__(self, every: int, seconds: float) -> None:
        self.every = every
        self.seconds = seconds
        self.pending = 0
        self.last = time.monotonic()
        self.cost = 0.0

    def due(self) -> bool:
        since = time.monotonic() - self.last
        wanted = self.pending >= self.every or (self.pending > 0 and since >= self.seconds)
        return wanted and (self.cost <= self.CHEAP_S or since >= self.SPACING * self.cost)

    def committed(self, cost_s: float) -> None:
        self.pending = 0
        self.last = time.monotonic()
        self.cost = cost_s


def _prepare(
    config: ExportConfig, store: DatasetStore, lock: WriterLock | None
) -> tuple[Manifest, dict[str, Any]]:
    """The manifest this run starts from, and the options that shape its rows.

    Raises:
        OptionsMismatchError: the dataset holds recordings made with other options.
    """
    wanted = data_options(config)
    if config.overwrite:
        # Start fresh in two commits' worth of safety: first an empty manifest replaces
        # the old one (readers see the old dataset or an empty one), then the old files,
        # no longer listed, are removed as leftovers. Generations keep counting up.
        current = store.manifest_generation()
        manifest = Manifest(generation=current or 0)
        if current is not None and lock is not None:
            manifest.options = config.public_options()
            _commit(store, manifest, lock)
        return manifest, wanted
    manifest = _load_manifest(store) or Manifest()
    recorded = recorded_options(manifest.recordings, manifest.options)
    check_options(config.output, recorded, wanted, mix=config.mix_options)
    return manifest, wanted


def _export_locked(
    config: ExportConfig,
    store: DatasetStore,
    lock: WriterLock,
    workers: int | None,
    sink: ProgressSink,
    started: float,
) -> ExportReport:
    """The export once this process holds the dataset's writer lock."""
    manifest, wanted = _prepare(config, store, lock)
    manifest.options = config.public_options()
    run = start_run(wanted)
    manifest.runs.append(run)
    if store.manifest_generation() is None:
        # A new dataset is committed (empty) before any other file is written: from
        # now on the folder is provably the export's, even if this run is killed.
        _commit(store, manifest, lock)
    report = ExportReport(output=config.output)
    removed = _remove_leftovers(store, manifest)
    if removed:
        log.info("removed %d leftover files of an interrupted run", removed)
    LIVE.reset()

    client = OdysseyClient(
        config.api_url,
        config.api_key,
        retry=config.retry,
        max_download_bytes=config.max_download_bytes,
        min_download_rate=config.min_download_rate,
        timeout_s=config.timeout_s,
    )
    executor = make_executor(
        config.executor, workers, threads=config.local_threads(), address=config.ray_address
    )
    # Local workers hand heavy materialised frames over as files on this machine (in a
    # temp folder the next run removes if this one is killed).
    spill = (
        tempfile.TemporaryDirectory(prefix=scratch_prefix(), dir=store.scratch_dir())
        if config.executor == "local" and config.frame_options().materialised
        else None
    )
    # Local workers share this machine's disk: their downloads run ahead here, one
    # thread per worker, so the next recordings arrive while the current ones process.
    # (Unless the workers decode while they download: materialised frames, see _stream.)
    prefetcher = (
        _Prefetcher(workers or default_workers())
        if config.executor == "local" and not config.frame_options().streams()
        else None
    )
    exported_details = {"options": wanted, "exporter": __version__}
    buffer = _ShardBuffer(store, manifest, config.shard_rows, exported_details)
    checkpoints = _Checkpoints(config.checkpoint_every, config.checkpoint_seconds)
    stretched: set[str] = set()

    def checkpoint() -> None:
        began = time.perf_counter()
        with LIVE.phase("committing"):
            if buffer.flush() is not None:
                report.shards += 1
            _update_run(run, report)
            _commit(store, manifest, lock)
        report.commits += 1
        checkpoints.committed(time.perf_counter() - began)
        log.info(
            "checkpoint: %d recordings committed (%.2f s)",
            len(manifest.recordings),
            time.perf_counter() - began,
        )

    interrupted = finished = False
    try:
        todo, skipped, report.already = _select(client, config, manifest)
        sink.start(len(todo) + len(skipped))
        for result in skipped:
            _record(result, manifest, report)
            sink.advance(result)
        options_text = options_json(wanted)
        tasks: Iterator[RecordingTask] = (
            RecordingTask(
                info=info,
                api_url=client.api_url,
                api_key=client._api_key,
                store=store,
                event_offset_ms=config.event_offset_ms,
                probe=config.probe,
                max_download_bytes=config.max_download_bytes,
                min_download_rate=config.min_download_rate,
                retry=config.retry,
                timeout_s=config.timeout_s,
                frame_options=config.frame_options(),
                with_thumbnails=config.with_thumbnails,
                qc=config.qc_options(),
                spill_dir=spill.name if spill is not None else None,
                options_json=options_text,
            )
            for info in todo
        )
        if prefetcher is not None:
            tasks = prefetcher.tasks(tasks)
        for result in executor.map_unordered(process_recording, tasks, _lost):
            _record(result, manifest, report)
            _warn_stretched(result, stretched)
            checkpoints.pending += 1
            if (result.status == "exported" and buffer.add(result)) or checkpoints.due():
                checkpoint()
            else:
                lock.refresh()
            sink.advance(result)
        finished = True
    except KeyboardInterrupt:
        # Ctrl-C or SIGTERM: commit what finished, abandon what is in flight.
        interrupted = report.interrupted = True
        raise
    finally:
        executor.close(wait=not interrupted)
        if prefetcher is not None:
            prefetcher.close(wait=not interrupted)
        if spill is not None and not finished and not interrupted:
            spill.cleanup()  # failed: nothing more is written
        client.close()
        if not interrupted:
            _close_clients()  # the pool of in-process work (workers=1), never left open
        report.retries += client.api_retries
        report.elapsed_s = time.perf_counter() - started
        if interrupted:
            run["state"] = "interrupted"
            run["finished_at"] = utc_now_iso()
            try:
                # The spilled frames of finished recordings are still there.
                if buffer.flush() is not None:
                    report.shards += 1
                try:
                    write_card(store, manifest)
                except OdysseyDataError as exc:  # the commit matters more than the card
                    log.warning("the dataset card was not updated: %s", exc)
                checkpoint()
            finally:
                if spill is not None:
                    spill.cleanup()
            log.warning(
                "interrupted: %d recordings committed to %s; run the export again to finish",
                report.exported,
                config.output,
            )
    manifest.stats = {
        "last_run": {k: v for k, v in report.to_json().items() if k not in ("problems", "output")}
    }
    run["state"] = "finished"
    run["finished_at"] = utc_now_iso()
    try:
        if buffer.flush() is not None:
            report.shards += 1
        # README.md, the dataset card Hugging Face datasets reads: names every shard.
        write_card(store, manifest)
        checkpoint()
    finally:
        if spill is not None:
            spill.cleanup()
    sink.finish(report)
    return report


def _update_run(run: dict[str, Any], report: ExportReport) -> None:
    run.update(
        exported=report.exported,
        failed=report.failed,
        skipped=report.skipped,
        already=report.already,
        frames=report.frames,
        video_bytes=report.video_bytes,
    )


def _warn_stretched(result: RecordingResult, seen: set[str]) -> None:
    """Say once per run (and source size) that ``--resize WxH`` stretches frames."""
    reason = result.stats.get("stretched")
    # The message without the recording: one warning per source size.
    if isinstance(reason, str) and reason not in seen:
        seen.add(reason)
        log.warning("%s (first seen in recording %r)", reason, result.stream_id)


@dataclass
class ExportPlan:
    """What an export would do (``--dry-run``): nothing is written.

    Attributes:
        output: the dataset root.
        todo: the recordings that would be exported, as (stream_id, job_id or None).
        skipped: recordings that would be skipped or fail up front: (id, status, reason).
        already: how many are already in the dataset.
        refused: why the export would be refused (options differ), else ``None``.
    """

    output: str
    todo: list[tuple[str, str | None]] = field(default_factory=list)
    skipped: list[tuple[str, str, str]] = field(default_factory=list)
    already: int = 0
    refused: str | None = None

    def to_json(self) -> dict[str, Any]:
        """A JSON-able form."""
        return {
            "output": self.output,
            "todo": [{"stream_id": sid, "job_id": job} for sid, job in self.todo],
            "skipped": [
                {"stream_id": sid, "status": status, "reason": reason}
                for sid, status, reason in self.skipped
            ],
            "already": self.already,
            "refused": self.refused,
        }


def plan(config: ExportConfig | None = None, /, **options: Any) -> ExportPlan:
    """What :func:`export` would do with these options, without writing anything.

    Reads the dataset's manifest (if any) and lists the API; takes no lock.

    Raises:
        ConfigError: invalid options.
        ApiError: the listing failed.
        StorageError: the dataset cannot be read.
    """
    from odyssey_data.runs import OptionsMismatchError

    config = _as_config(config, options)
    store = DatasetStore(config.output, config.storage_options)
    result = ExportPlan(output=config.output)
    try:
        manifest, _ = _prepare(config, store, None)
    except OptionsMismatchError as exc:
        result.refused = str(exc)
        manifest = _load_manifest(store) or Manifest()
    with OdysseyClient(
        config.api_url,
        config.api_key,
        retry=config.retry,
        max_download_bytes=config.max_download_bytes,
        timeout_s=config.timeout_s,
    ) as client:
        todo, skipped, result.already = _select(client, config, manifest)
    result.todo = [(info.stream_id, info.job_id) for info in todo]
    result.skipped = [(r.stream_id, r.status, r.reason or "") for r in skipped]
    return result


def _record(result: RecordingResult, manifest: Manifest, report: ExportReport) -> None:
    stats = result.stats
    report.retries += int(stats.get("retries", 0))
    report.url_refreshes += int(stats.get("url_refreshes", 0))
    if result.status == "exported":
        report.exported += 1
        report.frames += result.frame_count
        report.video_bytes += result.video.bytes if result.video else 0
        report.bad_event_lines += int(stats.get("bad_event_lines", 0))
        return
    if result.status == "failed":
        report.failed += 1
    else:
        report.skipped += 1
        report.not_ready += 1 if stats.get("not_ready") else 0
    report.problems.append((result.stream_id, result.status, result.reason or ""))
    manifest.recordings[result.stream_id] = RecordingStatus(
        status=result.status, reason=result.reason, details=_status_details(result)
    )


def iter_recordings(
    api_url: str | None = None, api_key: str | None = None, *, limit: int | None = None
) -> Iterator[RecordingInfo]:
    """Every recording the API lists, most recent first (closes the client at the end)."""
    with OdysseyClient(api_url, api_key) as client:
        yield from client.list_recordings(limit=limit)


def list_recordings(
    api_url: str | None = None, api_key: str | None = None, *, limit: int | None = None
) -> list[RecordingInfo]:
    """The recordings the API lists, most recent first.

    Args:
        api_url: API base URL; default ``ODYSSEY_API_URL`` or the public API.
        api_key: ``ody_…`` key; default ``ODYSSEY_API_KEY``.
        limit: at most this many.
    """
    return list(iter_recordings(api_url, api_key, limit=limit))
