"""The manifest: the commit record of a dataset (pure; storage does the I/O).

``manifest.json`` lists every file of the dataset (path, kind, row count, size,
SHA-256), every recording's status (``exported``, ``failed`` with the reason, ``skipped``
with the reason) and the export options, never a secret. Readers read only what it
lists; a re-run skips the recordings it marks ``exported``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from odyssey_data._version import __version__
from odyssey_data.errors import DatasetDamagedError, StorageError

if TYPE_CHECKING:
    from odyssey_data.storage import DatasetStore

#: The manifest's name at the dataset root.
MANIFEST_NAME = "manifest.json"
#: What a manifest's ``format`` field says, and the version of that format.
FORMAT = "odyssey-data"
FORMAT_VERSION = 1
#: The tables, in the order they are written and listed in the manifest.
TABLES = ("frames", "recordings", "events", "segments", "qc")


def utc_now_iso() -> str:
    """The current UTC time as ISO 8601 with a ``Z``."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class FileEntry:
    """A file the manifest lists: where, what, how big, and its checksum."""

    path: str
    kind: str
    num_rows: int | None
    bytes: int
    sha256: str

    def to_json(self) -> dict[str, Any]:
        """The manifest's JSON form."""
        return {
            "path": self.path,
            "kind": self.kind,
            "num_rows": self.num_rows,
            "bytes": self.bytes,
            "sha256": self.sha256,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FileEntry:
        """Parse the manifest's JSON form."""
        return cls(
            path=str(data["path"]),
            kind=str(data["kind"]),
            num_rows=None if data.get("num_rows") is None else int(data["num_rows"]),
            bytes=int(data["bytes"]),
            sha256=str(data["sha256"]),
        )


__all__ = ["STATUSES", "Manifest", "RecordingStatus", "Status", "parse_status"]

_SHARD = re.compile(r"^(frames|recordings|events|segments)/part-(\d+)\.parquet$")


#: What became of a recording: ``exported``; ``failed`` (with the reason: a re-run tries
#: again); ``skipped`` (with the reason: not ready yet, a job not completed…).
Status = Literal["exported", "failed", "skipped"]
STATUSES: tuple[Status, ...] = ("exported", "failed", "skipped")


def parse_status(value: object) -> Status:
    """``value`` as a :data:`Status`.

    Raises:
        ValueError: not one of :data:`STATUSES` (a damaged manifest).
    """
    if value not in STATUSES:
        raise ValueError(f"unknown recording status {value!r}")
    return value


@dataclass(slots=True)
class RecordingStatus:
    """One recording's line in the manifest."""

    status: Status
    reason: str | None = None
    shard: int | None = None
    video_path: str | None = None
    frames: int = 0
    details: dict[str, Any] = field(default_factory=dict)
    updated_at: str = field(default_factory=utc_now_iso)

    def to_json(self) -> dict[str, Any]:
        """The manifest's JSON form."""
        out: dict[str, Any] = {"status": self.status, "reason": self.reason}
        if self.shard is not None:
            out["shard"] = self.shard
        if self.video_path is not None:
            out["video_path"] = self.video_path
        out["frames"] = self.frames
        out.update(self.details)
        out["updated_at"] = self.updated_at
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RecordingStatus:
        """Parse the manifest's JSON form."""
        known = {"status", "reason", "shard", "video_path", "frames", "updated_at"}
        return cls(
            status=parse_status(data["status"]),
            reason=data.get("reason"),
            shard=data.get("shard"),
            video_path=data.get("video_path"),
            frames=int(data.get("frames", 0)),
            details={k: v for k, v in data.items() if k not in known},
            updated_at=str(data.get("updated_at", "")),
        )


@dataclass(slots=True)
class Manifest:
    """The dataset's commit record.

    Attributes:
        files: every file of the dataset by relative path.
        recordings: every recording's status by ``stream_id``.
        options: the export options (no secrets).
        generation: incremented at every commit.
        runs: what each export run added, with its version and options.
    """

    files: dict[str, FileEntry] = field(default_factory=dict)
    recordings: dict[str, RecordingStatus] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    created_at: str = field(default_factory=utc_now_iso)
    updated_at: str = field(default_factory=utc_now_iso)
    generation: int = 0
    stats: dict[str, Any] = field(default_factory=dict)
    #: One entry per export run (see :mod:`odyssey_data.runs`), oldest first.
    runs: list[dict[str, Any]] = field(default_factory=list)
    #: Serialised lines of entries, reused by :meth:`dumps` while an entry is unchanged.
    _lines: dict[tuple[str, str], tuple[Any, str]] = field(
        default_factory=dict, repr=False, compare=False
    )

    def table_files(self, table: str) -> list[str]:
        """Relative paths of the Parquet files of ``table``, in shard order."""
        return sorted(e.path for e in self.files.values() if e.kind == table)

    def next_shard(self) -> int:
        """The next free shard number (deterministic: one past the highest listed)."""
        numbers = [int(m.group(2)) for p in self.files if (m := _SHARD.match(p))]
        return max(numbers, default=-1) + 1

    def exported(self) -> set[str]:
        """Stream ids already exported (a re-run skips them)."""
        return {sid for sid, st in self.recordings.items() if st.status == "exported"}

    def counts(self) -> dict[str, int]:
        """How many recordings have each status."""
        out: dict[str, int] = {}
        for st in self.recordings.values():
            out[st.status] = out.get(st.status, 0) + 1
        return out

    def problems(self) -> list[str]:
        """Inconsistencies of the manifest with itself (pure: no file is read).

        Every exported recording must name a listed shard and video, and each shard's
        ``recordings`` and ``frames`` row counts must equal what the recordings it holds
        add up to: a recording written twice, or a shard that lost one, shows here.
        """
        problems: list[str] = []
        per_shard: dict[int, list[RecordingStatus]] = {}
        for sid, st in sorted(self.recordings.items()):
            if st.status != "exported":
                continue
            if st.shard is None:
                problems.append(f"recording {sid!r}: exported, but no shard is named")
                continue
            per_shard.setdefault(st.shard, []).append(st)
            if st.video_path not in self.files:
                problems.append(f"recording {sid!r}: exported, but its video is not listed")
        shards = {int(m.group(2)) for p in self.files if (m := _SHARD.match(p))}
        for shard in sorted(shards | set(per_shard)):
            held = per_shard.get(shard, [])
            expected = {"recordings": len(held), "frames": sum(st.frames for st in held)}
            for table, rows in expected.items():
                rel = f"{table}/part-{shard:06d}.parquet"
                entry = self.files.get(rel)
                if entry is None:
                    problems.append(f"{rel}: recordings name this shard, but it is not listed")
                elif entry.num_rows != rows:
                    problems.append(
                        f"{rel}: {entry.num_rows} rows listed, but the recordings of shard "
                        f"{shard} add up to {rows}"
                    )
        return problems

    def dumps(self) -> bytes:
        """``manifest.json``'s bytes: :meth:`to_json` with one line per file and per
        recording.

        A commit rewrites the whole manifest, so its cost grows with the dataset; the
        line of a file or recording entry is kept between calls and made again only for
        entries added or replaced since (entries are replaced, never changed in place),
        so a checkpoint of a 10,000-recording dataset serialises only what is new and
        joins the rest (see benchmarks/checkpoints.py).
        """
        cache = self._lines
        files = []
        for path in sorted(self.files):
            entry = self.files[path]
            hit = cache.get(("f", path))
            if hit is None or hit[0] is not entry:
                hit = (entry, json.dumps(entry.to_json(), ensure_ascii=False))
                cache[("f", path)] = hit
            files.append(hit[1])
        recordings = []
        for sid in sorted(self.recordings):
            status = self.recordings[sid]
            hit = cache.get(("r", sid))
            if hit is None or hit[0] is not status:
                line = f"{json.dumps(sid, ensure_ascii=False)}: " + json.dumps(
                    status.to_json(), ensure_ascii=False
                )
                hit = (status, line)
                cache[("r", sid)] = hit
            recordings.append(hit[1])
        # Entries removed since (an --overwrite) drop out of the cache.
        if len(cache) > len(files) + len(recordings):
            live = {("f", p) for p in self.files} | {("r", r) for r in self.recordings}
            for stale in [k for k in cache if k not in live]:
                del cache[stale]
        later = ("files", "recordings", "counts", "options", "stats", "runs")
        head = {k: v for k, v in self.to_json(entries=False).items() if k not in later}
        tail = {"counts": self.counts(), "options": self.options, "stats": self.stats}
        parts = ["{"]
        for name, value in head.items():
            parts.append(f" {json.dumps(name)}: {json.dumps(value, ensure_ascii=False)},")
        parts.append(' "files": [')
        parts.append(",\n".join(f"  {line}" for line in files))
        parts.append(" ],")
        parts.append(' "recordings": {')
        parts.append(",\n".join(f"  {line}" for line in recordings))
        parts.append(" },")
        for name, value in tail.items():
            parts.append(f" {json.dumps(name)}: {json.dumps(value, ensure_ascii=False)},")
        parts.append(f' "runs": {json.dumps(self.runs, ensure_ascii=False)}')
        parts.append("}")
        return "\n".join(p for p in parts if p).encode("utf-8")

    def to_json(self, *, entries: bool = True) -> dict[str, Any]:
        """The JSON document written as ``manifest.json`` (without the ``files`` and
        ``recordings`` entries when ``entries`` is False)."""
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "producer": {"name": "odyssey-data", "version": __version__},
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "generation": self.generation,
            "tables": {t: self.table_files(t) for t in TABLES},
            "files": [self.files[p].to_json() for p in sorted(self.files)] if entries else [],
            "recordings": (
                {sid: self.recordings[sid].to_json() for sid in sorted(self.recordings)}
                if entries
                else {}
            ),
            "counts": self.counts(),
            "options": self.options,
            "stats": self.stats,
            "runs": self.runs,
        }

    @classmethod
    def load(cls, store: DatasetStore) -> Manifest | None:
        """The dataset's ``manifest.json``, or ``None`` when there is none.

        Raises:
            DatasetDamagedError: the file is not a readable odyssey-data manifest; the
                message names it and the two ways out.
            StorageError: it cannot be read, or is of a newer format version.
        """
        where = f"{store.url.rstrip('/')}/{MANIFEST_NAME}"
        data = store.read_bytes(MANIFEST_NAME)
        if data is None:
            return None
        try:
            parsed = json.loads(data)
        except ValueError as exc:
            raise _damaged(where, f"not valid JSON: {exc}") from exc
        return cls.from_json(parsed, where=where)

    @classmethod
    def from_json(cls, data: Any, *, where: str) -> Manifest:
        """Parse ``manifest.json``.

        Raises:
            DatasetDamagedError: not an odyssey-data manifest, or damaged.
            StorageError: of a newer format version.
        """
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise _damaged(where, "not an odyssey-data manifest")
        version = data.get("format_version")
        if version != FORMAT_VERSION:
            raise StorageError(
                f"{where} has format_version {version}; this odyssey-data reads "
                f"{FORMAT_VERSION} (upgrade the package, or export to a new folder)"
            )
        try:
            return cls(
                files={e["path"]: FileEntry.from_json(e) for e in data.get("files", [])},
                recordings={
                    sid: RecordingStatus.from_json(st)
                    for sid, st in data.get("recordings", {}).items()
                },
                options=dict(data.get("options", {})),
                created_at=str(data.get("created_at", utc_now_iso())),
                updated_at=str(data.get("updated_at", utc_now_iso())),
                generation=int(data.get("generation", 0)),
                stats=dict(data.get("stats", {})),
                runs=[dict(run) for run in data.get("runs", []) if isinstance(run, dict)],
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise _damaged(where, f"{type(exc).__name__}: {exc}") from exc


def _damaged(where: str, why: str) -> DatasetDamagedError:
    return DatasetDamagedError(
        f"{where} is damaged ({' '.join(why.split())[:120]}): the dataset cannot be read or "
        "added to; run the export again with --overwrite to start it afresh, or restore "
        "that file from a backup"
    )
