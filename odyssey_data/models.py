"""Typed records of the Odyssey REST API, parsed and validated from JSON (pure).

Field names follow the public Odyssey client (``StreamRecordingInfo``, ``Recording``).
A missing or mistyped field raises :class:`~odyssey_data.errors.ApiResponseError`
naming the field, so one bad answer never turns into a ``KeyError`` deep in the export.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from odyssey_data.errors import ApiResponseError

__all__ = ["Recording", "RecordingInfo", "RecordingPage", "parse_datetime"]


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
    """

    stream_id: str
    width: int | None = None
    height: int | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    duration_seconds: float | None = None
    source: str = "stream"

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
        what = f"recordings page at {where}"
        if not isinstance(data, Mapping):
            raise ApiResponseError(f"{what}: the answer is not a JSON object")
        entries = _field(data, "recordings", (list,), what)
        total = _field(data, "total", (int,), what)
        limit = _optional(data, "limit", (int,), what)
        offset = _optional(data, "offset", (int,), what)
        try:
            items = tuple(RecordingInfo.from_json(entry) for entry in entries)
        except ApiResponseError as exc:
            raise ApiResponseError(f"{what}: {exc}") from exc
        return cls(
            recordings=items,
            total=total,
            limit=len(items) if limit is None else limit,
            offset=0 if offset is None else offset,
        )


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
