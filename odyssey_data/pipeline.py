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
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from odyssey_data._version import __version__
from odyssey_data.api import open_client
from odyssey_data.card import write_card
from odyssey_data.errors import (
    ConfigError,
    OdysseyDataError,
)
from odyssey_data.executors import Executor, make_executor
from odyssey_data.fetch import close_clients, fetch, with_credentials
from odyssey_data.manifest import Manifest, RecordingStatus
from odyssey_data.models import (
    RecordingInfo,
)
from odyssey_data.options import ClientOptions, ExportConfig, FrameOptions, RunOptions
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
    utc_now_iso,
)
from odyssey_data.task import Fetched, RecordingResult, RecordingStats, RecordingTask
from odyssey_data.work import fetch_ahead, lost, process_recording, release_fetched

__all__ = [
    "ExportConfig",
    "ExportPlan",
    "ExportReport",
    "Fetched",
    "FrameOptions",
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
    executor = given if given is not None else _make_executor(config.run, config)
    try:
        executor = _fit_to_store(executor, store, config if given is None else None)
        store.check_ownership(allow_foreign=config.allow_foreign_files)
        lock = WriterLock(store, timeout_s=config.lock_timeout_s)
        lock.acquire(force=config.break_lock)
    except BaseException:
        executor.close()
        raise
    try:
        return _export_locked(config, store, lock, executor, sink, started)
    finally:
        lock.release()


def _make_executor(run: RunOptions, config: ExportConfig) -> Executor:
    """The executor ``run`` names (:func:`~odyssey_data.executors.make_executor`).

    Reference mode's work runs in C without the GIL (download, hashing, demuxing, the
    first-frame decode), so a local pool of threads uses the cores without a process to
    start and import into; materialised frames run Python per frame: processes.
    """
    return make_executor(run, threads=not config.frame_options().materialised)


def _fit_to_store(executor: Executor, store: DatasetStore, made: ExportConfig | None) -> Executor:
    """``executor``, or one that can write to ``store``: by its capabilities, not its name.

    A dataset that lives in this process only (``memory://``) is lost to workers that
    run elsewhere. An executor made from the options whose workers share this machine
    (the local pool of processes) is made again with one worker, which runs here;
    otherwise the export is refused.

    Args:
        made: the options the executor was made from; ``None`` for one given to
            :func:`export`.
    """
    if store.shared_between_processes or executor.capabilities.in_process:
        return executor
    if made is not None and executor.capabilities.same_machine:
        log.info("%s is visible only in this process: exporting with one worker", store.url)
        executor.close()
        return _make_executor(replace(made.run, workers=1), made)
    raise ConfigError(
        f"{store.url} exists only in this process, so an executor whose workers "
        "run elsewhere cannot write to it: use one that runs in this process, or "
        "a shared target (a folder, s3://, gs://)"
    )


def _as_config(config: ExportConfig | None, options: dict[str, Any]) -> ExportConfig:
    if config is None:
        # Lists, "WxH" and ISO texts are read by the option schema (odyssey_data.options).
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


def _begin(
    config: ExportConfig, store: DatasetStore, lock: WriterLock
) -> tuple[Manifest, dict[str, Any], dict[str, Any]]:
    """The manifest this run commits, the options that shape its rows and its entry in
    the manifest's runs; a new dataset is committed (empty), leftovers are removed."""
    manifest, wanted = _prepare(config, store, lock)
    manifest.options = config.public_options()
    run = start_run(wanted)
    manifest.runs.append(run)
    if store.manifest_generation() is None:
        # A new dataset is committed (empty) before any other file is written: from
        # now on the folder is provably the export's, even if this run is killed.
        commit_manifest(store, manifest, lock)
    removed = remove_leftovers(store, manifest)
    if removed:
        log.info("removed %d leftover files of an interrupted run", removed)
    return manifest, wanted, run


def _export_locked(
    config: ExportConfig,
    store: DatasetStore,
    lock: WriterLock,
    executor: Executor,
    sink: ProgressSink,
    started: float,
) -> ExportReport:
    """The export once this process holds the dataset's writer lock (closes ``executor``)."""
    try:
        manifest, wanted, run = _begin(config, store, lock)
        client_options = with_credentials(config.client)
        # Workers on this machine hand heavy materialised frames over as files here (in a
        # temp folder the next run removes if this one is killed).
        spill = (
            store.make_scratch_folder()
            if executor.capabilities.same_machine and config.frame_options().materialised
            else None
        )
        client = open_client(client_options)
    except BaseException:
        executor.close()
        raise
    report = ExportReport(output=config.output)
    LIVE.reset()
    exported_details = {"options": wanted, "exporter": __version__}
    buffer = ShardWriter(store, manifest, lock, config.shard_rows, exported_details)
    checkpoints = _Checkpoints(config.checkpoint_every, config.checkpoint_seconds)
    stretched: set[str] = set()
    # The recordings' stats added up: the report's sums (see _record).
    totals = RecordingStats()

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
            totals = _record(result, manifest, report, totals)
            sink.advance(result)
        options_text = options_json(wanted)
        shape, qc = config.shape, config.qc_options()
        tasks: Iterator[RecordingTask] = (
            RecordingTask(
                info=info,
                client=client_options,
                store=store,
                shape=shape,
                qc=qc,
                spill_dir=spill,
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
            totals = _record(result, manifest, report, totals)
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
            shutil.rmtree(spill, ignore_errors=True)  # failed: nothing more is written
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
                    shutil.rmtree(spill, ignore_errors=True)
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
            shutil.rmtree(spill, ignore_errors=True)
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
    reason = result.stretched
    # The message without the recording: one warning per source size.
    if reason is not None and reason not in seen:
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
    with open_client(config.client) as client:
        todo, skipped, result.already = select_recordings(client, config, manifest)
    result.todo = [(info.stream_id, info.job_id) for info in todo]
    result.skipped = [(r.stream_id, r.status, r.reason or "") for r in skipped]
    return result


def _record(
    result: RecordingResult, manifest: Manifest, report: ExportReport, totals: RecordingStats
) -> RecordingStats:
    """Count ``result`` in the report, and record it in the manifest unless exported (the
    shard writer records those); returns ``totals`` with its stats added.

    The report's retries (the driver's own are added at the end), URL refreshes, bad
    event lines, video bytes and recordings not ready are the recordings' stats summed.
    """
    totals += result.stats
    report.retries = totals.retries
    report.url_refreshes = totals.url_refreshes
    report.bad_event_lines = totals.bad_event_lines
    report.video_bytes = totals.video_bytes
    report.not_ready = totals.not_ready
    if result.status == "exported":
        report.exported += 1
        report.frames += result.frame_count
        return totals
    if result.status == "failed":
        report.failed += 1
    else:
        report.skipped += 1
    report.problems.append((result.stream_id, result.status, result.reason or ""))
    manifest.recordings[result.stream_id] = RecordingStatus(
        status=result.status, reason=result.reason, details=status_details(result)
    )
    return totals


def iter_recordings(
    api_url: str | None = None, api_key: str | None = None, *, limit: int | None = None
) -> Iterator[RecordingInfo]:
    """Every recording the API lists, most recent first (closes the client at the end)."""
    with open_client(ClientOptions(api_url=api_url, api_key=api_key)) as client:
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
