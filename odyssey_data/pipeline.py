"""The export's driver: the options, then select → unit of work → shards → report.

The stages, one module each, data flowing one way (docs/architecture.md draws them):

1. :mod:`odyssey_data.selection`: which recordings to process, skip, or have already;
2. :mod:`odyssey_data.work`: the unit of work every executor runs on one recording
   (:func:`~odyssey_data.work.process_recording`: :mod:`~odyssey_data.fetch` →
   timing → events → :mod:`~odyssey_data.tables` (pure) → store), handing back a
   :class:`~odyssey_data.task.RecordingResult`; never raises for one bad recording;
3. :mod:`odyssey_data.shards`: the :class:`~odyssey_data.shards.ShardWriter` writes
   exported results into size-capped shards and commits the manifest;
4. here: :func:`export` holds the writer lock, hands tasks to the executor, commits at
   checkpoints (so a crash late in a long run loses little) and builds the
   :class:`ExportReport`. It asks the executor (:mod:`odyssey_data.executors`) what
   it can do rather than its name; the local one fetches ahead, one download thread
   per worker, so the next recordings download while the workers process.

Two sources feed the same unit of work (``ExportConfig.source``): stream recordings, and
the output streams of completed simulation jobs (see :mod:`odyssey_data.fetch` and
:func:`odyssey_data.tables.align_recording` for how a job's script is used).
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from odyssey_data._version import __version__
from odyssey_data.api import OdysseyClient, RetryPolicy
from odyssey_data.card import write_card
from odyssey_data.errors import (
    ConfigError,
    OdysseyDataError,
    redact_url,
)
from odyssey_data.executors import Executor, make_executor
from odyssey_data.fetch import close_clients, fetch
from odyssey_data.images import FORMATS, image_encoder
from odyssey_data.manifest import Manifest, RecordingStatus
from odyssey_data.measure import QCOptions
from odyssey_data.models import (
    JOB_STATUSES,
    RecordingInfo,
)
from odyssey_data.progress import LIVE, ProgressSink, ProgressUpdate, make_sink
from odyssey_data.runs import (
    check_options,
    data_options,
    options_json,
    recorded_options,
    start_run,
)
from odyssey_data.selection import select_recordings
from odyssey_data.shards import ShardWriter, commit_manifest, remove_leftovers, status_details
from odyssey_data.storage import (
    DatasetStore,
    WriterLock,
    scratch_prefix,
    utc_now_iso,
)
from odyssey_data.task import Fetched, RecordingResult, RecordingTask
from odyssey_data.video import ProbeMode
from odyssey_data.work import fetch_ahead, lost, process_recording, release_fetched

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
    checks that no other writer committed since (see :func:`commit_manifest`).

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
        **options: :class:`ExportConfig` fields, when ``config`` is not given. Also,
            with or without ``config``: ``executor=`` an
            :class:`~odyssey_data.executors.Executor` object (rather than the name of
            one) to run the recordings on; the export closes it when done.

    Returns:
        The report; ``report.exit_code()`` is what the CLI exits with.

    Raises:
        ConfigError: invalid options, or (:class:`~odyssey_data.runs.OptionsMismatchError`)
            options that differ from those of the recordings already in the dataset.
        ApiError: the listing failed (authentication, network).
        StorageError: the dataset cannot be written, another export holds its lock, or
            another writer committed while this one ran.
    """
    given: Executor | None = None
    if not isinstance(options.get("executor"), str | None):
        given = options.pop("executor")
    config = _as_config(config, options)
    sink = make_sink(progress)
    started = time.perf_counter()
    store = DatasetStore(config.output, config.storage_options)
    workers = config.workers
    if not store.shared_between_processes and given is not None:
        if not given.capabilities.in_process:
            given.close()
            raise ConfigError(
                f"{store.url} exists only in this process, so an executor whose workers "
                "run elsewhere cannot write to it: use one that runs in this process, or "
                "a shared target (a folder, s3://, gs://)"
            )
    elif not store.shared_between_processes:
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
        return _export_locked(config, store, lock, given or workers, sink, started)
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
            commit_manifest(store, manifest, lock)
        return manifest, wanted
    manifest = Manifest.load(store) or Manifest()
    recorded = recorded_options(manifest.recordings, manifest.options)
    check_options(config.output, recorded, wanted, mix=config.mix_options)
    return manifest, wanted


def _export_locked(
    config: ExportConfig,
    store: DatasetStore,
    lock: WriterLock,
    executor_or_workers: Executor | int | None,
    sink: ProgressSink,
    started: float,
) -> ExportReport:
    """The export once this process holds the dataset's writer lock.

    ``executor_or_workers``: the executor given to :func:`export`, else the workers of
    the one the options name (made here).
    """
    manifest, wanted = _prepare(config, store, lock)
    manifest.options = config.public_options()
    run = start_run(wanted)
    manifest.runs.append(run)
    if store.manifest_generation() is None:
        # A new dataset is committed (empty) before any other file is written: from
        # now on the folder is provably the export's, even if this run is killed.
        commit_manifest(store, manifest, lock)
    report = ExportReport(output=config.output)
    removed = remove_leftovers(store, manifest)
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
    executor = (
        make_executor(
            config.executor,
            executor_or_workers,
            threads=config.local_threads(),
            address=config.ray_address,
        )
        if executor_or_workers is None or isinstance(executor_or_workers, int)
        else executor_or_workers
    )
    # Workers on this machine hand heavy materialised frames over as files here (in a
    # temp folder the next run removes if this one is killed).
    spill = (
        tempfile.TemporaryDirectory(prefix=scratch_prefix(), dir=store.scratch_dir())
        if executor.capabilities.same_machine and config.frame_options().materialised
        else None
    )
    exported_details = {"options": wanted, "exporter": __version__}
    buffer = ShardWriter(store, manifest, lock, config.shard_rows, exported_details)
    checkpoints = _Checkpoints(config.checkpoint_every, config.checkpoint_seconds)
    stretched: set[str] = set()

    def checkpoint() -> None:
        began = time.perf_counter()
        with LIVE.phase("committing"):
            _update_run(run, report)
            if buffer.commit() is not None:
                report.shards += 1
        report.commits += 1
        checkpoints.committed(time.perf_counter() - began)
        log.info(
            "checkpoint: %d recordings committed (%.2f s)",
            len(manifest.recordings),
            time.perf_counter() - began,
        )

    interrupted = finished = False
    try:
        todo, skipped, report.already = select_recordings(client, config, manifest)
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
        if not config.frame_options().streams():
            # Fetched ahead where the executor gains by it (the local one: its workers
            # share this disk). Not when the workers decode while they download
            # (materialised frames, see work._stream).
            tasks = executor.ahead(fetch_ahead, tasks, release_fetched)
        for result in executor.map_unordered(process_recording, tasks, lost):
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
        executor.close(wait=not interrupted)  # its download-ahead too
        if spill is not None and not finished and not interrupted:
            spill.cleanup()  # failed: nothing more is written
        client.close()
        if not interrupted:
            close_clients()  # the pool of in-process work (workers=1), never left open
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
        manifest = Manifest.load(store) or Manifest()
    with OdysseyClient(
        config.api_url,
        config.api_key,
        retry=config.retry,
        max_download_bytes=config.max_download_bytes,
        timeout_s=config.timeout_s,
    ) as client:
        todo, skipped, result.already = select_recordings(client, config, manifest)
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
        status=result.status, reason=result.reason, details=status_details(result)
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
