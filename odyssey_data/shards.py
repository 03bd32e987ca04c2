"""The shard writer: exported recordings into size-capped shards, and the commit.

:class:`ShardWriter` has a lifecycle: :meth:`~ShardWriter.add` a recording's result
(True once the shard is full), :meth:`~ShardWriter.flush` to write the buffered
results as one part of each table, :meth:`~ShardWriter.commit` to flush and make the
manifest the dataset (:func:`commit_manifest`, one atomic replace, after checking that
no other writer got in). Readers read only what the manifest lists, so files written
and not committed are leftovers the next run removes (:func:`remove_leftovers`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

import pyarrow as pa

from odyssey_data.errors import StorageError
from odyssey_data.manifest import Manifest, RecordingStatus
from odyssey_data.schema import EVENTS_SCHEMA, FRAMES_SCHEMA, QC_SCHEMA, SEGMENTS_SCHEMA, TABLES
from odyssey_data.storage import (
    MANIFEST_NAME,
    TMP_PREFIX,
    DatasetStore,
    WriterLock,
    is_owned,
    utc_now_iso,
)
from odyssey_data.task import RecordingResult

__all__ = ["ShardWriter", "commit_manifest", "remove_leftovers", "status_details"]

log = logging.getLogger(__name__)


class ShardWriter:
    """Collects exported results until a shard is full, writes it, commits the manifest.

    A shard is one Parquet part of each table (``frames/part-000007.parquet``…),
    numbered by the manifest; it is full at ``shard_rows`` frames rows or ``max_bytes``
    bytes of frames in memory (materialised frames are heavy: dataset-format.md asks
    for 64-256 MB shards), whichever first.

    Args:
        store: the dataset.
        manifest: the manifest this export commits; updated by :meth:`flush`.
        lock: the writer lock this export holds (checked before every commit).
        shard_rows: frames rows per shard.
        details: added to every exported recording's manifest entry (options, exporter).
        max_bytes: frames bytes per shard.
    """

    #: The default ``max_bytes``.
    MAX_BYTES = 192 << 20

    def __init__(
        self,
        store: DatasetStore,
        manifest: Manifest,
        lock: WriterLock,
        shard_rows: int,
        details: Mapping[str, Any] | None = None,
        *,
        max_bytes: int | None = None,
    ) -> None:
        self.store = store
        self.manifest = manifest
        self.lock = lock
        self.shard_rows = shard_rows
        self.max_bytes = self.MAX_BYTES if max_bytes is None else max_bytes
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
        return self.rows >= self.shard_rows or self.bytes >= self.max_bytes

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
                details={**status_details(r), **self.details},
            )
        self.results = []
        self._buffered = set()
        self.rows = 0
        self.bytes = 0
        return shard

    def commit(self) -> int | None:
        """Flush, then commit the manifest (:func:`commit_manifest`); the shard written.

        Raises:
            StorageError: the lock was lost or another writer committed (the shard's
                files are then leftovers the next run removes), or writing failed.
        """
        shard = self.flush()
        commit_manifest(self.store, self.manifest, self.lock)
        return shard


def status_details(result: RecordingResult) -> dict[str, Any]:
    """What a recording's manifest entry says beyond its status: its stats' details
    (:meth:`~odyssey_data.task.RecordingStats.details`), how its timing was read, its
    first warnings."""
    details = result.stats.details()
    if result.probe is not None:  # exported (never also not ready): after the counts
        details["probe"] = result.probe
    if result.warnings:
        details["warnings"] = list(result.warnings[:5])
    return details


def commit_manifest(store: DatasetStore, manifest: Manifest, lock: WriterLock) -> None:
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


def remove_leftovers(store: DatasetStore, manifest: Manifest) -> int:
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
