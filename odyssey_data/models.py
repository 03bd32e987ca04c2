"""Typed records of the Odyssey REST API, parsed and validated from JSON (pure).

Field names follow the public Odyssey client (``StreamRecordingInfo``, ``Recording``,
``SimulationJobInfo``, ``SimulationJobDetail``).
A missing or mistyped field raises :class:`~odyssey_data.errors.ApiResponseError`
naming the field, so one bad answer never turns into a ``KeyError`` deep in the export.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from odyssey_data.errors import ApiResponseError

__all__ = [
    "JOB_STATUSES",
    "Recording",
    "RecordingInfo",
    "RecordingPage",
    "ScriptEntry",
    "SimulationJob",
    "SimulationJobDetail",
    "SimulationJobPage",
    "SimulationStream",
    "parse_datetime",
]

#: The statuses of a simulation job (only ``completed`` jobs have output streams).
JOB_STATUSES = ("pending", "dispatched", "processing", "completed", "failed", "cancelled")


_T = TypeVar("_T")


def parse_datetime(value: str) -> datetime:
    """Parse an ISO 8601 time (``Z`` accepted) into an aware UTC datetime.

    Raises:
        ValueError: ``value`` is not ISO 8601.
    """
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _field(data: Mapping[str, Any], name: str, kinds: tuple[type, ...], what: str) -> Any:
    if name not in data:
        raise ApiResponseError(f"{what}: the field {name!r} is missing")
    value = data[name]
    if value is None and type(None) in kinds:
        return None
    # bool is an int subclass; a width of True is not a width.
    if isinstance(value, bool) and bool not in kinds:
        raise ApiResponseError(f"{what}: the field {name!r} has the wrong type (bool)")
    if not isinstance(value, kinds):
        raise ApiResponseError(
            f"{what}: the field {name!r} has the wrong type ({type(value).__name__})"
        )
    return value


def _optional(data: Mapping[str, Any], name: str, kinds: tuple[type, ...], what: str) -> Any:
    if data.get(name) is None:
        return None
    return _field(data, name, (*kinds, type(None)), what)


def _time(data: Mapping[str, Any], name: str, what: str, required: bool) -> datetime | None:
    raw = (_field if required else _optional)(data, name, (str, type(None)), what)
    if raw is None:
        return None
    try:
        return parse_datetime(raw)
    except ValueError as exc:
        raise ApiResponseError(f"{what}: the field {name!r} is not an ISO 8601 time") from exc


@dataclass(frozen=True, slots=True)
class RecordingInfo:
    """One entry of ``GET /stream-recordings`` (the official client's ``StreamRecordingInfo``).

    Attributes:
        stream_id: the recording's id, as the API gave it (untrusted as a file name).
        width: video width in pixels.
        height: video height in pixels.
        started_at: when the stream started (UTC), if known.
        ended_at: when it ended; ``None`` while the stream is still active.
        duration_seconds: the API's idea of the duration, if known.
        source: ``"stream"`` or ``"simulation"``.
        job_id: the simulation job that produced it (``None`` for a stream); its fresh
            URLs then come from ``GET /simulation-jobs/{job_id}``.
        script_index: the output stream's ``script_index`` in its job (``None`` for a
            stream).
    """

    stream_id: str
    width: int | None = None
    height: int | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    duration_seconds: float | None = None
    source: str = "stream"
    job_id: str | None = None
    script_index: int | None = None

    @property
    def is_active(self) -> bool:
        """True while the stream has not ended (no recording to export yet)."""
        return self.ended_at is None

    @classmethod
    def from_json(cls, data: object) -> RecordingInfo:
        """Validate one list entry.

        Raises:
            ApiResponseError: a field is missing or of the wrong type.
        """
        if not isinstance(data, Mapping):
            raise ApiResponseError("a recording entry is not a JSON object")
        what = f"recording {str(data.get('stream_id'))[:80]!r}"
        stream_id = _field(data, "stream_id", (str,), what)
        if not stream_id:
            raise ApiResponseError(f"{what}: the field 'stream_id' is empty")
        duration = _optional(data, "duration_seconds", (int, float), what)
        return cls(
            stream_id=stream_id,
            width=_optional(data, "width", (int,), what),
            height=_optional(data, "height", (int,), what),
            started_at=_time(data, "started_at", what, required=False),
            ended_at=_time(data, "ended_at", what, required=False),
            duration_seconds=None if duration is None else float(duration),
        )


def _page(
    data: object, key: str, parse: Callable[[object], _T], what: str
) -> tuple[tuple[_T, ...], int, int, int]:
    """Validate a list page: ``(items, total, limit, offset)``; errors name the page."""
    if not isinstance(data, Mapping):
        raise ApiResponseError(f"{what}: the answer is not a JSON object")
    entries = _field(data, key, (list,), what)
    total = _field(data, "total", (int,), what)
    limit = _optional(data, "limit", (int,), what)
    offset = _optional(data, "offset", (int,), what)
    try:
        items = tuple(parse(entry) for entry in entries)
    except ApiResponseError as exc:
        raise ApiResponseError(f"{what}: {exc}") from exc
    return items, total, len(items) if limit is None else limit, 0 if offset is None else offset


@dataclass(frozen=True, slots=True)
class RecordingPage:
    """One page of ``GET /stream-recordings``."""

    recordings: tuple[RecordingInfo, ...]
    total: int
    limit: int
    offset: int

    @classmethod
    def from_json(cls, data: object, *, where: str) -> RecordingPage:
        """Validate a page; ``where`` names the page in errors (e.g. ``offset=100``).

        Raises:
            ApiResponseError: the page is not of the documented shape.
        """
        items, total, limit, offset = _page(
            data, "recordings", RecordingInfo.from_json, f"recordings page at {where}"
        )
        return cls(recordings=items, total=total, limit=limit, offset=offset)


@dataclass(frozen=True, slots=True)
class Recording:
    """The answer of ``GET /recordings/{stream_id}``: presigned artifact URLs.

    The URLs are credentials (their query strings carry a signature); never log them
    unredacted.
    """

    stream_id: str
    video_url: str | None = None
    events_url: str | None = None
    thumbnail_url: str | None = None
    preview_url: str | None = None
    frame_count: int | None = None
    duration_seconds: float | None = None

    @classmethod
    def from_json(cls, data: object, *, stream_id: str) -> Recording:
        """Validate the answer for ``stream_id``.

        Raises:
            ApiResponseError: a field is missing or of the wrong type.
        """
        what = f"recording {stream_id!r}"
        if not isinstance(data, Mapping):
            raise ApiResponseError(f"{what}: the answer is not a JSON object")
        got = _field(data, "stream_id", (str,), what)
        duration = _optional(data, "duration_seconds", (int, float), what)
        return cls(
            stream_id=got,
            video_url=_optional(data, "video_url", (str,), what),
            events_url=_optional(data, "events_url", (str,), what),
            thumbnail_url=_optional(data, "thumbnail_url", (str,), what),
            preview_url=_optional(data, "preview_url", (str,), what),
            frame_count=_optional(data, "frame_count", (int,), what),
            duration_seconds=None if duration is None else float(duration),
        )


@dataclass(frozen=True, slots=True)
class ScriptEntry:
    """One entry of a simulation script: ``{"timestamp_ms": T, KIND: {...}}``.

    Attributes:
        timestamp_ms: when the entry is meant to happen, ms since the video's start.
        kind: ``start``, ``interact`` or ``end``.
        prompt: the payload's ``prompt`` (``None`` for ``end`` or when absent).
        raw: the entry as compact JSON text (kept in the events table).
    """

    timestamp_ms: float
    kind: str
    prompt: str | None
    raw: str

    @classmethod
    def from_json(cls, data: object, *, what: str) -> ScriptEntry:
        """Validate one script entry; ``what`` names the job and entry in errors.

        Raises:
            ApiResponseError: the entry is not of the documented shape.
        """
        if not isinstance(data, Mapping):
            raise ApiResponseError(f"{what}: the script entry is not a JSON object")
        stamp = _field(data, "timestamp_ms", (int, float), what)
        if not math.isfinite(stamp) or stamp < 0:
            raise ApiResponseError(f"{what}: the field 'timestamp_ms' is not a time >= 0")
        kinds = [k for k in ("start", "interact", "end") if isinstance(data.get(k), Mapping)]
        if len(kinds) != 1:
            raise ApiResponseError(
                f"{what}: a script entry needs exactly one of 'start', 'interact', 'end'"
            )
        prompt = _optional(data[kinds[0]], "prompt", (str,), f"{what} {kinds[0]!r}")
        return cls(float(stamp), kinds[0], prompt, json.dumps(dict(data), ensure_ascii=False))


@dataclass(frozen=True, slots=True)
class SimulationJob:
    """One entry of ``GET /simulation-jobs`` (the official client's ``SimulationJobInfo``).

    Attributes:
        job_id: the job's id (untrusted as a file name).
        status: one of :data:`JOB_STATUSES` (an unknown status is kept as given).
        priority: the job's priority, if given.
        created_at: when the job was submitted.
        completed_at: when it completed, if it has.
        error_message: why it failed, if it did.
    """

    job_id: str
    status: str
    priority: int | None = None
    created_at: datetime | None = None
    completed_at: datetime | None = None
    error_message: str | None = None

    @classmethod
    def from_json(cls, data: object) -> SimulationJob:
        """Validate one list entry.

        Raises:
            ApiResponseError: a field is missing or of the wrong type.
        """
        if not isinstance(data, Mapping):
            raise ApiResponseError("a simulation job entry is not a JSON object")
        what = f"simulation job {str(data.get('job_id'))[:80]!r}"
        return cls(**_job_fields(data, what))


def _job_fields(data: Mapping[str, Any], what: str) -> dict[str, Any]:
    job_id = _field(data, "job_id", (str,), what)
    if not job_id:
        raise ApiResponseError(f"{what}: the field 'job_id' is empty")
    return {
        "job_id": job_id,
        "status": _field(data, "status", (str,), what),
        "priority": _optional(data, "priority", (int,), what),
        "created_at": _time(data, "created_at", what, required=False),
        "completed_at": _time(data, "completed_at", what, required=False),
        "error_message": _optional(data, "error_message", (str,), what),
    }


@dataclass(frozen=True, slots=True)
class SimulationStream:
    """One output stream of a completed job: its artifact URLs and ``script_index``.

    The URLs are presigned credentials: never log them unredacted.
    """

    recording: Recording
    script_index: int | None = None

    @property
    def stream_id(self) -> str:
        """The output stream's id."""
        return self.recording.stream_id


@dataclass(frozen=True, slots=True)
class SimulationJobDetail:
    """The answer of ``GET /simulation-jobs/{job_id}``.

    Attributes:
        job: the fields shared with the list entry.
        dispatched_at: when the job was dispatched, if it was.
        started_at: when it started, if it did.
        assigned_region: where it ran, if known.
        retry_count: how many times it was retried.
        estimated_wait_minutes: the API's estimate, if any.
        streams: the output streams (filled once the job has completed).
        script: the job's script when the API returns it (``None`` when it does not).
    """

    job: SimulationJob
    dispatched_at: datetime | None = None
    started_at: datetime | None = None
    assigned_region: str | None = None
    retry_count: int = 0
    estimated_wait_minutes: float | None = None
    streams: tuple[SimulationStream, ...] = ()
    script: tuple[ScriptEntry, ...] | None = None

    @property
    def job_id(self) -> str:
        """The job's id."""
        return self.job.job_id

    def stream(self, stream_id: str) -> SimulationStream | None:
        """The output stream with this id, or ``None``."""
        return next((s for s in self.streams if s.stream_id == stream_id), None)

    @classmethod
    def from_json(cls, data: object, *, job_id: str) -> SimulationJobDetail:
        """Validate the answer for ``job_id``.

        Raises:
            ApiResponseError: a field is missing or of the wrong type.
        """
        what = f"simulation job {job_id!r}"
        if not isinstance(data, Mapping):
            raise ApiResponseError(f"{what}: the answer is not a JSON object")
        job = SimulationJob(**_job_fields(data, what))
        wait = _optional(data, "estimated_wait_minutes", (int, float), what)
        retries = _optional(data, "retry_count", (int,), what)
        streams = []
        for i, entry in enumerate(_optional(data, "streams", (list,), what) or ()):
            where = f"{what} stream {i}"
            if not isinstance(entry, Mapping):
                raise ApiResponseError(f"{where}: not a JSON object")
            streams.append(
                SimulationStream(
                    Recording.from_json(entry, stream_id=str(entry.get("stream_id"))[:80]),
                    _optional(entry, "script_index", (int,), where),
                )
            )
        raw_script = _optional(data, "script", (list,), what)
        script = None
        if raw_script is not None:
            script = tuple(
                ScriptEntry.from_json(entry, what=f"{what} script entry {i}")
                for i, entry in enumerate(raw_script)
            )
        return cls(
            job=job,
            dispatched_at=_time(data, "dispatched_at", what, required=False),
            started_at=_time(data, "started_at", what, required=False),
            assigned_region=_optional(data, "assigned_region", (str,), what),
            retry_count=0 if retries is None else retries,
            estimated_wait_minutes=None if wait is None else float(wait),
            streams=tuple(streams),
            script=script,
        )


@dataclass(frozen=True, slots=True)
class SimulationJobPage:
    """One page of ``GET /simulation-jobs``."""

    jobs: tuple[SimulationJob, ...]
    total: int
    limit: int
    offset: int

    @classmethod
    def from_json(cls, data: object, *, where: str) -> SimulationJobPage:
        """Validate a page; ``where`` names the page in errors.

        Raises:
            ApiResponseError: the page is not of the documented shape.
        """
        items, total, limit, offset = _page(
            data, "jobs", SimulationJob.from_json, f"simulation jobs page at {where}"
        )
        return cls(jobs=items, total=total, limit=limit, offset=offset)
