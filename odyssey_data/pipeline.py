"""The export: list recordings, run the unit of work on each, write shards, commit.

``process_recording`` is the one unit of work every executor runs: fetch the video and
events log to temp files (streamed, byte count verified), read frame timing with PyAV,
parse the events, align frames to prompts, copy the video into the dataset, and return
Arrow tables. It never raises for bad data in one recording; it returns a failure with
the reason. The driver (:func:`export`) writes the tables into size-capped shards and
commits the manifest after every shard, so a crash late in a long run loses little.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa

from odyssey_data.align import align_frames, build_segments, prompt_timeline
from odyssey_data.api import DownloadStats, OdysseyClient, RetryPolicy
from odyssey_data.clips import resample_positions
from odyssey_data.errors import (
    ConfigError,
    DecodeError,
    NotFoundError,
    OdysseyDataError,
    RecordingError,
    StorageError,
    redact_url,
)
from odyssey_data.events import parse_events
from odyssey_data.executors import make_executor
from odyssey_data.images import FORMATS, image_encoder, target_size
from odyssey_data.manifest import Manifest, RecordingStatus
from odyssey_data.models import Recording, RecordingInfo
from odyssey_data.schema import (
    EVENTS_SCHEMA,
    FRAMES_SCHEMA,
    IMAGE_FIELD,
    RECORDINGS_SCHEMA,
    SEGMENTS_SCHEMA,
    TABLES,
)
from odyssey_data.storage import (
    LOCK_NAME,
    MANIFEST_NAME,
    TMP_PREFIX,
    DatasetStore,
    FileEntry,
    WriterLock,
    safe_name,
    utc_now_iso,
)
from odyssey_data.video import FrameTiming, ProbeMode, decode_frames, probe_frames

__all__ = [
    "ExportConfig",
    "ExportReport",
    "RecordingResult",
    "RecordingTask",
    "export",
    "process_recording",
]

log = logging.getLogger(__name__)

#: A shard is written once its frames reach this many bytes in memory (or shard_rows).
SHARD_BYTES = 192 << 20


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

    def validate(self) -> None:
        """Raise :class:`ConfigError` for impossible options (before any work starts)."""
        if self.mode not in FORMATS:
            raise ConfigError(f"frames must be one of {', '.join(FORMATS)}, not {self.mode!r}")
        if self.fps is not None and not self.fps > 0:
            raise ConfigError(f"fps must be positive, not {self.fps}")
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
        limit: export at most this many recordings (most recent first).
        stream_ids: export only these recordings.
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
    """

    output: str
    api_url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    limit: int | None = None
    stream_ids: tuple[str, ...] = ()
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
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    timeout_s: float = 30.0
    frames: str = "reference"
    resize: tuple[int, int | None] | None = None
    fps: float | None = None
    image_quality: int = 90

    def __post_init__(self) -> None:
        self.frame_options().validate()
        if not self.timeout_s > 0:
            raise ConfigError(
                f"timeout_s must be a positive number of seconds, not {self.timeout_s}"
            )
        if self.max_download_bytes < 1:
            raise ConfigError("max_download_bytes must be at least 1")
        if self.limit is not None and self.limit < 1:
            raise ConfigError(f"limit must be at least 1, not {self.limit}")
        if self.shard_rows < 1:
            raise ConfigError("shard_rows must be at least 1")
        if self.lock_timeout_s is not None and not self.lock_timeout_s > 0:
            raise ConfigError(
                f"lock_timeout_s must be a positive number of seconds, not {self.lock_timeout_s}"
            )
        if self.ray_address is not None and self.executor != "ray":
            raise ConfigError("ray_address needs executor='ray'")
        if self.executor == "ray" and self.output.startswith("memory://"):
            raise ConfigError("memory:// lives in this process; Ray workers cannot write to it")
        if self.probe not in ("auto", "demux", "decode"):
            raise ConfigError(f"probe must be auto, demux or decode, not {self.probe!r}")

    def frame_options(self) -> FrameOptions:
        """What each worker does with the frames (reference rows or encoded images)."""
        return FrameOptions(self.frames, self.resize, self.fps, self.image_quality)

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
            "executor": self.executor,
            "event_offset_ms": self.event_offset_ms,
            "probe": self.probe,
            "shard_rows": self.shard_rows,
            "storage_option_keys": sorted(self.storage_options),
        }


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
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    timeout_s: float = 30.0
    frame_options: FrameOptions = field(default_factory=FrameOptions)


@dataclass
class RecordingResult:
    """The outcome of the unit of work for one recording.

    Attributes:
        stream_id: the recording.
        status: ``exported``, ``failed`` or ``skipped``.
        reason: why it failed or was skipped.
        frames: frames table rows (``FRAMES_SCHEMA``), when exported.
        events: events table rows.
        segments: segments table rows.
        recording: the one-row recordings table.
        video: the dataset file of the copied video.
        stats: attempts, URL refreshes, bad event lines, timings.
        warnings: human-readable warnings (bad event lines…).
    """

    stream_id: str
    status: str
    reason: str | None = None
    frames: pa.Table | None = None
    events: pa.Table | None = None
    segments: pa.Table | None = None
    recording: pa.Table | None = None
    video: FileEntry | None = None
    stats: dict[str, Any] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()

    @property
    def frame_count(self) -> int:
        """Frames exported (0 unless exported)."""
        return 0 if self.frames is None else self.frames.num_rows


_CLIENTS: dict[tuple[Any, ...], OdysseyClient] = {}


def _close_clients() -> None:
    """Close the pooled clients this process made for the unit of work."""
    while _CLIENTS:
        _CLIENTS.popitem()[1].close()


def _client(task: RecordingTask) -> OdysseyClient:
    # One pooled client per worker process, API and client settings: connections are
    # reused across tasks, and an export with other limits never gets a stale client.
    key = (task.api_url, task.api_key, task.retry, task.max_download_bytes, task.timeout_s)
    client = _CLIENTS.get(key)
    if client is None:
        client = OdysseyClient(
            task.api_url,
            task.api_key,
            retry=task.retry,
            max_download_bytes=task.max_download_bytes,
            timeout_s=task.timeout_s,
        )
        _CLIENTS[key] = client
    return client


def _repeat(value: str, n: int) -> pa.Array:
    return pa.array([value], pa.string()).take(pa.array(np.zeros(n, dtype=np.int32)))


def process_recording(task: RecordingTask) -> RecordingResult:
    """Export one recording: fetch, probe, parse, align, copy the video.

    Never raises for bad data or a failed download of this recording: the result then
    has ``status="failed"`` and the reason. Only programming errors propagate. Either
    way ``stats`` counts the download ``attempts``, the ``retries`` (repeated downloads
    and API calls) and the ``url_refreshes`` (expired presigned URLs replaced).
    """
    info = task.info
    sid = info.stream_id
    what = f"recording {sid!r}"
    started = time.perf_counter()
    downloads: list[DownloadStats] = []
    client: OdysseyClient | None = None
    api_retries = 0
    try:
        client = _client(task)
        api_retries = client.api_retries
        recording = client.get_recording(sid)
        if not recording.video_url:
            result = RecordingResult(
                sid, "skipped", "the API gives no video URL (still processing?)"
            )
        else:
            # Removed on every path, success or failure (the with block).
            with tempfile.TemporaryDirectory(prefix="odyssey-data-") as tmp:
                api = client

                def fetch(url: str, name: str, kind: str, field_name: str) -> DownloadStats:
                    got = DownloadStats()
                    downloads.append(got)
                    with open(os.path.join(tmp, name), "w+b") as handle:
                        api.download(
                            url,
                            handle,
                            what=f"{what} {kind}",
                            refresh_url=lambda: getattr(api.get_recording(sid), field_name),
                            stats=got,
                        )
                    return got

                video = fetch(recording.video_url, "video.mp4", "video", "video_url")
                if video.bytes == 0:
                    raise RecordingError(
                        f"{what}: the video file is empty (0 bytes); the recording may "
                        "still be processing, re-run the export later",
                        stream_id=sid,
                    )
                events_file = None
                if recording.events_url:
                    fetch(recording.events_url, "events.jsonl", "events log", "events_url")
                    events_file = os.path.join(tmp, "events.jsonl")
                download_s = round(time.perf_counter() - started, 4)
                result = _build(task, recording, os.path.join(tmp, "video.mp4"), events_file)
                result.stats["video_bytes"] = video.bytes
                result.stats["download_s"] = download_s
    except NotFoundError:
        result = RecordingResult(
            sid,
            "failed",
            f"{what}: the API no longer knows this recording (HTTP 404); it was listed but "
            "may have been deleted since",
        )
    except OdysseyDataError as exc:
        result = RecordingResult(sid, "failed", str(exc))
    attempts = sum(d.attempts for d in downloads)
    api_retried = client.api_retries - api_retries if client is not None else 0
    result.stats["attempts"] = attempts
    result.stats["retries"] = attempts - len(downloads) + api_retried
    result.stats["url_refreshes"] = sum(d.refreshes for d in downloads)
    result.stats["total_s"] = round(time.perf_counter() - started, 4)
    return result


def _build(
    task: RecordingTask, recording: Recording, video_file: str, events_file: str | None
) -> RecordingResult:
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
    else:
        events, bad_lines = EVENTS_SCHEMA.empty_table(), 0
        warnings = (f"{what}: the API gives no events log; prompts are null",)
    timeline = prompt_timeline(events)
    prompt, prompt_index, prompt_time = align_frames(ts, timeline)
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
    if options.fps is not None:
        frames = frames.take(pa.array(resample_positions(ts, options.fps, unique=True)))
    if options.materialised:
        frames = _materialise(frames, timing, video_file, options, what)
    interval = float(np.median(np.diff(ts))) if n > 1 else 0.0
    video_end = float(ts[-1]) + interval
    segments = build_segments(sid, ts, timeline, video_end)

    with open(video_file, "rb") as handle:
        video = task.store.put_stream(video_rel, handle, kind="video")

    row = {
        "stream_id": sid,
        "width": info.width if info.width is not None else timing.width,
        "height": info.height if info.height is not None else timing.height,
        "started_at": info.started_at,
        "ended_at": info.ended_at,
        "duration_seconds": info.duration_seconds
        if info.duration_seconds is not None
        else recording.duration_seconds,
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
    }
    recording_table = pa.Table.from_pylist([row], schema=RECORDINGS_SCHEMA)
    return RecordingResult(
        stream_id=sid,
        status="exported",
        frames=frames,
        events=events,
        segments=segments,
        recording=recording_table,
        video=video,
        stats={"bad_event_lines": bad_lines, "probe": timing.method},
        warnings=warnings,
    )


def _materialise(
    frames: pa.Table, timing: FrameTiming, video_file: str, options: FrameOptions, what: str
) -> pa.Table:
    """Add the ``image`` column: decode the video once, encode the kept frames.

    Frames stream through one at a time; only the encoded bytes are kept.
    """
    encode = image_encoder(options.mode, options.quality)
    size = target_size(options.resize, timing.width, timing.height)
    keep = frames.column("pts").to_numpy()
    wanted = set(int(p) for p in keep)
    encoded: dict[int, bytes] = {}
    # Recordings run one per core in parallel, so each decoder keeps to one thread.
    for pts, rgb in decode_frames(video_file, size=size, keep=wanted, threads=1, what=what):
        encoded[pts] = encode(rgb)
    missing = wanted.difference(encoded)
    if missing:
        raise DecodeError(f"{what}: {len(missing)} frames could not be decoded for their images")
    images = pa.array([encoded[int(p)] for p in keep], pa.binary())
    # width/height stay the decoded frame's size (what a reference decodes to); the
    # image's own size gets columns of its own.
    n = frames.num_rows
    return (
        frames.append_column(IMAGE_FIELD, images)
        .append_column("image_width", pa.array(np.full(n, size[0], dtype=np.int32)))
        .append_column("image_height", pa.array(np.full(n, size[1], dtype=np.int32)))
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

    @property
    def ok(self) -> bool:
        """True when every recording was exported (none failed or skipped)."""
        return self.failed == 0 and self.skipped == 0

    @property
    def frames_per_s(self) -> float:
        """Frames exported per second of wall time."""
        return self.frames / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        """A JSON-able summary."""
        out = asdict(self)
        out["frames_per_s"] = round(self.frames_per_s, 1)
        return out


class ProgressSink:
    """Receives progress from :func:`export`; the CLI draws a bar with it."""

    def start(self, total: int) -> None:
        """``total`` recordings are about to be processed."""

    def advance(self, result: RecordingResult) -> None:
        """One recording is done (exported, failed or skipped)."""

    def finish(self, report: ExportReport) -> None:
        """The export is committed."""


class _ShardBuffer:
    """Collects results until a shard is full, then writes one part of each table."""

    def __init__(self, store: DatasetStore, manifest: Manifest, shard_rows: int) -> None:
        self.store = store
        self.manifest = manifest
        self.shard_rows = shard_rows
        self.results: list[RecordingResult] = []
        self.rows = 0
        self.bytes = 0

    def add(self, result: RecordingResult) -> bool:
        """Buffer an exported result; True when the shard is full.

        A recording already exported (in the manifest or in this buffer) is dropped: one
        recording's rows must never appear twice in the dataset.
        """
        sid = result.stream_id
        if sid in self.manifest.exported() or any(r.stream_id == sid for r in self.results):
            log.warning("recording %r was exported twice in one run; keeping the first", sid)
            return False
        self.results.append(result)
        self.rows += result.frame_count
        # Materialised frames are heavy: cap a shard by bytes too (dataset-format.md
        # asks for 64-256 MB shards).
        self.bytes += result.frames.nbytes if result.frames is not None else 0
        return self.rows >= self.shard_rows or self.bytes >= SHARD_BYTES

    def flush(self) -> int | None:
        """Write the buffered results as shard files; returns the shard number."""
        if not self.results:
            return None
        shard = self.manifest.next_shard()
        ordered = sorted(self.results, key=lambda r: r.stream_id)
        parts: dict[str, list[pa.Table]] = {t: [] for t in TABLES}
        for r in ordered:
            assert r.frames is not None
            assert r.recording is not None
            parts["frames"].append(r.frames)
            parts["recordings"].append(r.recording)
            parts["events"].append(
                r.events if r.events is not None else EVENTS_SCHEMA.empty_table()
            )
            parts["segments"].append(
                r.segments if r.segments is not None else SEGMENTS_SCHEMA.empty_table()
            )
        entries = []
        for table in TABLES:
            rel = f"{table}/part-{shard:06d}.parquet"
            entries.append(self.store.write_table(rel, pa.concat_tables(parts[table]), table))
        for entry in entries:
            self.manifest.files[entry.path] = entry
        for r in ordered:
            assert r.video is not None
            self.manifest.files[r.video.path] = r.video
            self.manifest.recordings[r.stream_id] = RecordingStatus(
                status="exported",
                shard=shard,
                video_path=r.video.path,
                frames=r.frame_count,
                details=_status_details(r),
            )
        self.results = []
        self.rows = 0
        self.bytes = 0
        return shard


def _status_details(result: RecordingResult) -> dict[str, Any]:
    keys = ("attempts", "retries", "url_refreshes", "bad_event_lines", "probe")
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
    import json

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
    data = json.dumps(manifest.to_json(), indent=1, sort_keys=False).encode()
    store.write_bytes(MANIFEST_NAME, data)
    lock.refresh(force=True)


def _load_manifest(store: DatasetStore) -> Manifest | None:
    data = store.read_json(MANIFEST_NAME)
    if data is None:
        return None
    return Manifest.from_json(data, where=f"{MANIFEST_NAME} under {store.url}")


def _remove_leftovers(store: DatasetStore, manifest: Manifest) -> int:
    """Delete files no manifest lists (an interrupted run's leftovers).

    Only the dataset's own places are cleaned: the table and video folders and the temp
    files at the root; other files at the root are left alone.
    """
    leftovers = []
    for folder in (*TABLES, "videos"):
        for rel in store.list_files(folder):
            if rel not in manifest.files:
                leftovers.append(rel)
    for name in store.list_root_files():
        if name.startswith(TMP_PREFIX) and name != LOCK_NAME:
            leftovers.append(name)
    store.remove(leftovers)
    return len(leftovers)


def _select(
    client: OdysseyClient, config: ExportConfig, manifest: Manifest
) -> tuple[list[RecordingInfo], list[RecordingResult], int]:
    """Recordings to process, recordings skipped up front, and how many were done before."""
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
        infos: Iterable[RecordingInfo] = [
            found.get(sid, RecordingInfo(stream_id=sid, ended_at=datetime.now(UTC)))
            for sid in wanted
        ]
    else:
        infos = client.list_recordings(limit=config.limit)
    for info in infos:
        if info.stream_id in done:
            already += 1
        elif info.is_active:
            skipped.append(
                RecordingResult(
                    info.stream_id, "skipped", "the stream is still active (no end time)"
                )
            )
        else:
            todo.append(info)
    return todo, skipped, already


def export(
    config: ExportConfig | None = None,
    /,
    *,
    progress: ProgressSink | None = None,
    **options: Any,
) -> ExportReport:
    """Export recordings into a dataset at ``config.output``.

    A re-run adds only the recordings the manifest does not list as exported; failed
    and skipped ones are tried again. One export at a time writes a dataset: this one
    holds its writer lock (``_odyssey.lock``) from start to end, and before every commit
    checks that no other writer committed since (see :func:`_commit`).

    Args:
        config: the options; or pass them as keywords (``export(output="out", ...)``).
        progress: receives progress updates (the CLI's progress bar).
        **options: :class:`ExportConfig` fields, when ``config`` is not given.

    Returns:
        The report; ``report.ok`` is False when recordings failed or were skipped.

    Raises:
        ConfigError: invalid options.
        ApiError: the listing failed (authentication, network).
        StorageError: the dataset cannot be written, another export holds its lock, or
            another writer committed while this one ran.
    """
    if config is None:
        if "stream_ids" in options and options["stream_ids"] is not None:
            options["stream_ids"] = tuple(options["stream_ids"])
        config = ExportConfig(**options)
    elif options:
        raise ConfigError("pass either an ExportConfig or keyword options, not both")
    sink = progress or ProgressSink()
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
        if workers != 1:
            log.info("%s is visible only in this process: exporting with one worker", store.url)
            workers = 1
    lock = WriterLock(store, timeout_s=config.lock_timeout_s)
    lock.acquire(force=config.break_lock)
    try:
        return _export_locked(config, store, lock, workers, sink, started)
    finally:
        lock.release()


def _export_locked(
    config: ExportConfig,
    store: DatasetStore,
    lock: WriterLock,
    workers: int | None,
    sink: ProgressSink,
    started: float,
) -> ExportReport:
    """The export once this process holds the dataset's writer lock."""
    if config.overwrite:
        # Start fresh in two commits' worth of safety: first an empty manifest replaces
        # the old one (readers see the old dataset or an empty one), then the old files,
        # no longer listed, are removed as leftovers. Generations keep counting up.
        current = store.manifest_generation()
        manifest = Manifest(generation=current or 0)
        if current is not None:
            manifest.options = config.public_options()
            _commit(store, manifest, lock)
    else:
        manifest = _load_manifest(store) or Manifest()
    manifest.options = config.public_options()
    report = ExportReport(output=config.output)
    removed = _remove_leftovers(store, manifest)
    if removed:
        log.info("removed %d leftover files of an interrupted run", removed)

    client = OdysseyClient(
        config.api_url,
        config.api_key,
        retry=config.retry,
        max_download_bytes=config.max_download_bytes,
        timeout_s=config.timeout_s,
    )
    executor = make_executor(config.executor, workers, address=config.ray_address)
    try:
        todo, skipped, report.already = _select(client, config, manifest)
        sink.start(len(todo) + len(skipped))
        for result in skipped:
            _record(result, manifest, report)
            sink.advance(result)
        tasks = (
            RecordingTask(
                info=info,
                api_url=client.api_url,
                api_key=client._api_key,
                store=store,
                event_offset_ms=config.event_offset_ms,
                probe=config.probe,
                max_download_bytes=config.max_download_bytes,
                retry=config.retry,
                timeout_s=config.timeout_s,
                frame_options=config.frame_options(),
            )
            for info in todo
        )
        buffer = _ShardBuffer(store, manifest, config.shard_rows)
        for result in executor.map_unordered(process_recording, tasks):
            _record(result, manifest, report)
            if result.status == "exported" and buffer.add(result):
                buffer.flush()
                report.shards += 1
                _commit(store, manifest, lock)
            else:
                lock.refresh()
            sink.advance(result)
        if buffer.flush() is not None:
            report.shards += 1
    finally:
        executor.close()
        client.close()
        _close_clients()  # the pool of in-process work (workers=1), never left open
        report.retries += client.api_retries
    report.elapsed_s = time.perf_counter() - started
    manifest.stats = {
        "last_run": {k: v for k, v in report.to_json().items() if k not in ("problems", "output")}
    }
    _commit(store, manifest, lock)
    sink.finish(report)
    return report


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
