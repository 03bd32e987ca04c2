"""Typed records of the Odyssey REST API, parsed and validated from JSON (pure).

Field names and types follow the public Odyssey client (``StreamRecordingInfo``,
``Recording``, ``SimulationJobInfo``, ``SimulationJobDetail``).

Parse leniently what the export does not use, check strictly what it does:

* A field the export uses that is missing, mistyped or out of range (a width that does
  not fit the int32 column, a non-finite duration, a URL that is not http(s) or has a
  bad port) raises :class:`~odyssey_data.errors.ApiResponseError` naming the field, so
  one bad answer never turns into a ``KeyError`` deep in the export.
* A field it does not use (a job's ``priority``, ``assigned_region``, ``retry_count``…)
  of an unexpected type is kept as text (or dropped, for times and numbers), never fatal.
* In a list page, one bad entry does not sink the page: it comes back with
  ``problem`` set (see :attr:`RecordingInfo.problem`), and the export records that one
  recording as failed with the reason.
"""

from __future__ import annotations

import ipaddress
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit

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
    "is_metadata_host",
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


#: The largest value of the int32 columns API numbers land in (width, height…).
INT32_MAX = 2**31 - 1
#: Longest text kept of a field the export does not use.
_TEXT_CAP = 200


def _bounded_int(
    data: Mapping[str, Any], name: str, what: str, low: int = 0, high: int = INT32_MAX
) -> int | None:
    """An optional integer field the export stores: checked to lie in ``[low, high]``."""
    value = _optional(data, name, (int,), what)
    if value is not None and not low <= value <= high:
        raise ApiResponseError(
            f"{what}: the field {name!r} is {value}, outside {low}..{high}"
            if abs(value) < 10**30
            else f"{what}: the field {name!r} is a number outside {low}..{high}"
        )
    return None if value is None else int(value)


def _seconds(data: Mapping[str, Any], name: str, what: str) -> float | None:
    """An optional duration the export uses: a finite number of seconds, not negative."""
    value = _optional(data, name, (int, float), what)
    if value is None:
        return None
    try:
        seconds = float(value)
    except OverflowError:  # an integer too large for a float
        seconds = math.inf
    if not (math.isfinite(seconds) and seconds >= 0):
        raise ApiResponseError(f"{what}: the field {name!r} is not a finite duration >= 0")
    return seconds


#: Host names of cloud instance metadata services (they hand out credentials).
_METADATA_HOSTS = frozenset({"metadata", "metadata.google.internal", "instance-data"})


def is_metadata_host(host: str) -> bool:
    """Whether ``host`` is a link-local address or a cloud metadata service's name.

    An artifact URL (or a redirect) pointing there would copy the machine's cloud
    credentials into the dataset: never fetched.
    """
    name = host.strip("[]").rstrip(".").lower()
    if name in _METADATA_HOSTS:
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return bool(address.is_link_local or (mapped is not None and mapped.is_link_local))


def _url(data: Mapping[str, Any], name: str, what: str) -> str | None:
    """An optional artifact URL: absolute http(s), with a host and a valid port, not a
    link-local or metadata-service host (see :func:`is_metadata_host`)."""
    value = _optional(data, name, (str,), what)
    if value is None or value == "":
        return None
    try:
        parts = urlsplit(value)
        port_ok = parts.port is None or parts.port > 0  # .port raises past 65535
    except ValueError:
        port_ok = False
        parts = None
    if parts is None or parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        port_ok = False
    if not port_ok or any(ch.isspace() or not ch.isprintable() for ch in value):
        raise ApiResponseError(
            f"{what}: the field {name!r} is not an http(s) URL with a valid host and port"
        )
    if is_metadata_host(parts.hostname or ""):
        raise ApiResponseError(
            f"{what}: the field {name!r} points at a link-local or cloud metadata address; "
            "never fetched"
        )
    return str(value)


def _text(data: Mapping[str, Any], name: str) -> str | None:
    """A text field the export does not rely on: any JSON value, kept as (capped) text."""
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        try:
            value = json.dumps(value, ensure_ascii=False, allow_nan=True)
        except (TypeError, ValueError, RecursionError):
            value = type(value).__name__
    return value[:_TEXT_CAP]


def _loose(data: Mapping[str, Any], name: str, kinds: tuple[type, ...]) -> Any:
    """A field the export does not use: its value when of ``kinds``, else ``None``."""
    value = data.get(name)
    if isinstance(value, bool) and bool not in kinds:
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 2**53:
        return None  # beyond what a float holds exactly: not a count or a time
    return value if isinstance(value, kinds) else None


def _loose_time(data: Mapping[str, Any], name: str) -> datetime | None:
    """A time the export does not use: parsed when it can be, else ``None``."""
    value = data.get(name)
    if not isinstance(value, str):
        return None
    try:
        return parse_datetime(value)
    except (ValueError, OverflowError):
        return None


def _time(data: Mapping[str, Any], name: str, what: str, required: bool) -> datetime | None:
    raw = (_field if required else _optional)(data, name, (str, type(None)), what)
    if raw is None:
        return None
    try:
        return parse_datetime(raw)
    except (ValueError, OverflowError) as exc:
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
        problem: why this entry of a list page cannot be exported (a field missing, of
            the wrong type or out of range), or ``None``. The export records such a
            recording as failed with this reason; the rest of the page is unaffected.
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
    problem: str | None = None

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
        what = f"recording {str(_text(data, 'stream_id'))!r}"
        stream_id = _stream_id(data, "stream_id", what)
        return cls(
            stream_id=stream_id,
            width=_bounded_int(data, "width", what, 1),
            height=_bounded_int(data, "height", what, 1),
            started_at=_time(data, "started_at", what, required=False),
            ended_at=_time(data, "ended_at", what, required=False),
            duration_seconds=_seconds(data, "duration_seconds", what),
        )

    @classmethod
    def from_entry(cls, data: object, where: str) -> RecordingInfo:
        """Like :meth:`from_json`, but an entry that does not validate comes back with
        :attr:`problem` set instead of raising, when it has a usable ``stream_id``.

        Raises:
            ApiResponseError: the entry has no usable ``stream_id`` (it cannot even be
                named).
        """
        try:
            return cls.from_json(data)
        except ApiResponseError as exc:
            if not isinstance(data, Mapping):
                raise
            try:
                stream_id = _stream_id(data, "stream_id", where)
            except ApiResponseError:
                raise exc from None
            # Ended: an entry that cannot be read is not taken for a live stream.
            return cls(stream_id=stream_id, ended_at=datetime.now(UTC), problem=str(exc))


#: Longest id kept (ids become file names and keys; longer ones are not ids).
MAX_ID_CHARS = 1024


def _stream_id(data: Mapping[str, Any], name: str, what: str) -> str:
    """An id the export uses as a key: a non-empty string of at most MAX_ID_CHARS."""
    value = _field(data, name, (str,), what)
    if not value:
        raise ApiResponseError(f"{what}: the field {name!r} is empty")
    if len(value) > MAX_ID_CHARS:
        raise ApiResponseError(f"{what}: the field {name!r} is longer than {MAX_ID_CHARS}")
    return str(value)


def _page(
    data: object, key: str, parse: Callable[[object, str], _T], what: str
) -> tuple[tuple[_T, ...], int, int, int | None]:
    """Validate a list page: ``(items, total, limit, offset)``; errors name the page.

    ``offset`` is the one the server says it served (``None`` when it does not say).
    """
    if not isinstance(data, Mapping):
        raise ApiResponseError(f"{what}: the answer is not a JSON object")
    entries = _field(data, key, (list,), what)
    total = _field(data, "total", (int,), what)
    if total < 0:
        raise ApiResponseError(f"{what}: the field 'total' is negative")
    limit = _loose(data, "limit", (int,))
    offset = _loose(data, "offset", (int,))
    try:
        items = tuple(parse(entry, what) for entry in entries)
    except ApiResponseError as exc:
        raise ApiResponseError(f"{what}: {exc}") from exc
    return items, total, len(items) if limit is None else limit, offset


@dataclass(frozen=True, slots=True)
class RecordingPage:
    """One page of ``GET /stream-recordings``."""

    recordings: tuple[RecordingInfo, ...]
    total: int
    limit: int
    #: The offset the server says it served (``None`` when it does not say).
    offset: int | None

    @classmethod
    def from_json(cls, data: object, *, where: str) -> RecordingPage:
        """Validate a page; ``where`` names the page in errors (e.g. ``offset=100``).

        Raises:
            ApiResponseError: the page is not of the documented shape.
        """
        items, total, limit, offset = _page(
            data, "recordings", RecordingInfo.from_entry, f"recordings page at {where}"
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
        got = _stream_id(data, "stream_id", what)
        if got != stream_id:
            # Its URLs are another recording's media: never stored under this one.
            raise ApiResponseError(f"{what}: the API answered for another recording ({got[:80]!r})")
        return cls(
            stream_id=got,
            video_url=_url(data, "video_url", what),
            events_url=_url(data, "events_url", what),
            thumbnail_url=_url(data, "thumbnail_url", what),
            preview_url=_url(data, "preview_url", what),
            frame_count=_bounded_int(data, "frame_count", what),
            duration_seconds=_seconds(data, "duration_seconds", what),
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
        if isinstance(stamp, int) and stamp > 2**53:
            stamp = math.inf  # an integer a float cannot hold (math.isfinite would raise)
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
        priority: the job's priority, if given, as text (the official client types it
            ``str``; a number is kept as its text).
        created_at: when the job was submitted.
        completed_at: when it completed, if it has.
        error_message: why it failed, if it did.
    """

    job_id: str
    status: str
    priority: str | None = None
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
        what = f"simulation job {str(_text(data, 'job_id'))!r}"
        return cls(**_job_fields(data, what))


def _job_fields(data: Mapping[str, Any], what: str) -> dict[str, Any]:
    # Used: job_id (a key) and status (decides what is exported). The rest is
    # informative (completed_at only fills the recordings' nullable ended_at): lenient.
    return {
        "job_id": _stream_id(data, "job_id", what),
        "status": _field(data, "status", (str,), what)[:_TEXT_CAP],
        "priority": _text(data, "priority"),
        "created_at": _loose_time(data, "created_at"),
        "completed_at": _loose_time(data, "completed_at"),
        "error_message": _text(data, "error_message"),
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
        if job.job_id != job_id:
            raise ApiResponseError(f"{what}: the API answered for another job")
        wait = _loose(data, "estimated_wait_minutes", (int, float))
        retries = _loose(data, "retry_count", (int,))
        streams = []
        for i, entry in enumerate(_optional(data, "streams", (list,), what) or ()):
            where = f"{what} stream {i}"
            if not isinstance(entry, Mapping):
                raise ApiResponseError(f"{where}: not a JSON object")
            sid = _stream_id(entry, "stream_id", where)
            streams.append(
                SimulationStream(
                    Recording.from_json(entry, stream_id=sid),
                    _bounded_int(entry, "script_index", where),
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
            dispatched_at=_loose_time(data, "dispatched_at"),
            started_at=_time(data, "started_at", what, required=False),
            assigned_region=_text(data, "assigned_region"),
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
    #: The offset the server says it served (``None`` when it does not say).
    offset: int | None

    @classmethod
    def from_json(cls, data: object, *, where: str) -> SimulationJobPage:
        """Validate a page; ``where`` names the page in errors.

        Raises:
            ApiResponseError: the page is not of the documented shape.
        """
        items, total, limit, offset = _page(
            data,
            "jobs",
            lambda entry, _: SimulationJob.from_json(entry),
            f"simulation jobs page at {where}",
        )
        return cls(jobs=items, total=total, limit=limit, offset=offset)
