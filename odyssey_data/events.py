"""Parse an Odyssey events log (JSONL) into the ``events`` table (pure: no I/O).

The schema of the log is not published, so the parser accepts the three shapes seen in
the wild, mixed freely within one log::

    1. flat, ms since the stream started
       {"type": "stream_started", "timestamp_ms": 0, "prompt": "A cat"}
       {"type": "interact", "timestamp_ms": 5230, "prompt": "The cat yawns"}
    2. wall-clock ISO 8601 time and a payload object
       {"event": "interact", "timestamp": "2026-11-20T10:00:05.230Z", "data": {"prompt": "..."}}
    3. the shape of simulation scripts: the kind is a key whose value is an object
       {"timestamp_ms": 0, "start": {"prompt": "..."}}
       {"timestamp_ms": 10000, "end": {}}

How each field is read, first match wins:

- **kind**: ``type``, else ``event``, else ``kind`` (a string; ``null`` or ``""`` count as
  absent), else the one key among ``start``/``interact``/``end`` whose value is an object.
  No kind at all gives ``"unknown"``. Known names are normalised, case-insensitively:
  ``stream_started``/``start``/``started`` → ``start``, ``interact`` → ``interact``,
  ``interact_acknowledged`` → ``interact_acknowledged``, ``stream_ended``/``end``/
  ``ended`` → ``end``. Any other name is kept verbatim.
- **time**: ``timestamp_ms``, else ``time_ms`` (a JSON number, ms since the stream
  started), else ``timestamp`` as an ISO 8601 string (``Z``, an offset, or none for UTC).
  ``null`` counts as absent. Two magnitude rules, safe because the ranges cannot overlap:
  an ms value of at least :data:`EPOCH_MS_THRESHOLD` (about 3.2 years, longer than any
  stream) is a Unix time in ms, i.e. a wall-clock time; a *numeric* ``timestamp`` is a
  Unix time only when its magnitude names the unit, 1e9–1e10 for seconds and 1e12–1e13
  for ms (both years 2001–2286). Any other numeric ``timestamp`` (for instance a small
  relative value: seconds or ms?) is a bad line rather than a guess.
- **prompt**: top-level ``prompt``, else ``data.prompt``, else the shape-3 payload's
  ``prompt``. Every one of these that is present must be a string or ``null``.

Wall-clock times are made relative to an origin: the earliest ``start`` event that has a
wall-clock time, else the recording's ``started_at``, else (with a warning) the earliest
wall-clock time in the log. ``time_s`` is that relative time plus the user's ``offset_s``
(events clock → video clock, where 0 is the first presented frame).

A bad line is counted, warned about (1-based line number and reason) and skipped; it
never raises: invalid UTF-8, longer than ``max_line_bytes``, not JSON (``NaN`` and
``Infinity`` are not JSON), not an object, no usable time, a non-finite time, or a field of
the wrong type. Blank lines are ignored. Rows are sorted by time, stably, and ``raw`` keeps
each kept line's original JSON text.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import numpy as np
import pyarrow as pa

from odyssey_data.errors import ConfigError
from odyssey_data.models import parse_datetime
from odyssey_data.schema import EVENTS_SCHEMA

__all__ = [
    "DEFAULT_MAX_LINE_BYTES",
    "EPOCH_MS_THRESHOLD",
    "KIND_ALIASES",
    "MAX_WARNINGS",
    "ParsedEvents",
    "normalize_kind",
    "parse_events",
]

#: Lines longer than this (bytes, without the newline) are skipped unparsed.
DEFAULT_MAX_LINE_BYTES: Final = 1_048_576

#: At most this many per-line warnings are kept; the rest are summarised in one message.
MAX_WARNINGS: Final = 20

#: Known event names (lower case) and their normalised kind.
KIND_ALIASES: Final[Mapping[str, str]] = {
    "stream_started": "start",
    "start": "start",
    "started": "start",
    "interact": "interact",
    "interact_acknowledged": "interact_acknowledged",
    "stream_ended": "end",
    "end": "end",
    "ended": "end",
}

_KIND_FIELDS: Final = ("type", "event", "kind")
_SCRIPT_KEYS: Final = ("start", "interact", "end")
_MS_FIELDS: Final = ("timestamp_ms", "time_ms")
_SNIPPET_CHARS: Final = 72
_UNIX_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)

#: ``timestamp_ms``/``time_ms`` at or above this (about 3.2 years) are Unix times in ms.
EPOCH_MS_THRESHOLD: Final = 1e11


def _reject_constant(name: str) -> float:
    # json accepts NaN/Infinity by default; they are not JSON, and ``raw`` must stay
    # readable by strict JSON parsers (Arrow, polars, browsers).
    raise ValueError(f"{name} is not valid JSON")


@dataclass(frozen=True, slots=True)
class ParsedEvents:
    """The result of :func:`parse_events`.

    Attributes:
        table: the events, exactly :data:`~odyssey_data.schema.EVENTS_SCHEMA`, sorted by
            ``time_s`` (stably), ``event_index`` 0, 1, 2 … in that order.
        bad_lines: how many non-blank lines were skipped.
        warnings: readable messages naming the 1-based line number and the reason, at
            most :data:`MAX_WARNINGS` for lines plus a summary and the origin warning.
    """

    table: pa.Table
    bad_lines: int
    warnings: tuple[str, ...]

    @property
    def count(self) -> int:
        """The number of events kept (rows of :attr:`table`)."""
        return int(self.table.num_rows)


class _BadLine(Exception):
    """One line cannot be used; the message is the reason."""


@dataclass(frozen=True, slots=True)
class _Event:
    line_no: int
    kind: str
    prompt: str | None
    rel_s: float  # seconds since the stream started (ms fields); unused when ``wall`` is set
    wall: datetime | None  # wall-clock time (ISO ``timestamp``)
    raw: str


def normalize_kind(name: str) -> str:
    """Normalise an event name: ``stream_started`` → ``start`` and so on.

    Matching ignores case and surrounding spaces; an unknown name is returned unchanged.

    Args:
        name: the event name found in the log.

    Returns:
        ``start``, ``interact``, ``interact_acknowledged``, ``end``, or ``name`` itself.
    """
    return KIND_ALIASES.get(name.strip().lower(), name)


def _snippet(text: str) -> str:
    """At most ``_SNIPPET_CHARS`` characters of line content, quoted, for a warning."""
    quoted = repr(text)
    if len(quoted) <= _SNIPPET_CHARS:
        return quoted
    return quoted[: _SNIPPET_CHARS - 1] + "…"


def _check_text(value: str, what: str) -> str:
    # JSON "\ud800" decodes to a lone surrogate, which Arrow cannot store as UTF-8.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise _BadLine(f"{what} is not valid Unicode (lone surrogate)") from None
    return value


def _string_field(obj: Mapping[str, Any], name: str, where: str = "") -> str | None:
    value = obj.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _BadLine(f"'{where}{name}' is {type(value).__name__}, not a string")
    return _check_text(value, f"'{where}{name}'")


def _script_key(obj: Mapping[str, Any]) -> str | None:
    """The shape-3 key: the one of start/interact/end whose value is an object."""
    found = [key for key in _SCRIPT_KEYS if isinstance(obj.get(key), Mapping)]
    if len(found) > 1:
        raise _BadLine(f"ambiguous kind: {', '.join(found)} are all objects")
    return found[0] if found else None


def _kind_and_payload(obj: Mapping[str, Any]) -> tuple[str, str | None]:
    """The kind, and the key of the shape-3 payload object to read a prompt from."""
    for name in _KIND_FIELDS:
        value = _string_field(obj, name)
        if value is not None and value.strip():
            kind = normalize_kind(value)
            # {"type": "interact", "interact": {"prompt": ...}}: the payload that matches.
            if kind in _SCRIPT_KEYS and isinstance(obj.get(kind), Mapping):
                return kind, kind
            return kind, None
    key = _script_key(obj)
    return (key or "unknown"), key


def _prompt(obj: Mapping[str, Any], payload_key: str | None) -> str | None:
    top = _string_field(obj, "prompt")
    data = obj.get("data")
    nested = _string_field(data, "prompt", "data.") if isinstance(data, Mapping) else None
    script = None
    if payload_key is not None:
        script = _string_field(obj[payload_key], "prompt", f"{payload_key}.")
    if top is not None:
        return top
    return nested if nested is not None else script


def _epoch(value: float, unit: str) -> datetime:
    try:
        return _UNIX_EPOCH + timedelta(**{unit: value})
    except OverflowError:
        raise _BadLine(f"time {value!r} {unit} since 1970 is out of range") from None


def _time(obj: Mapping[str, Any]) -> tuple[float, datetime | None]:
    """``(seconds since the stream started, None)`` or ``(0.0, wall-clock time)``."""
    for name in _MS_FIELDS:
        value = obj.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _BadLine(f"'{name}' is {type(value).__name__}, not a number")
        try:
            finite = math.isfinite(value)
        except OverflowError:  # an int too large for a float
            finite = False
        if not finite:
            raise _BadLine(f"'{name}' is not a finite number")
        if value >= EPOCH_MS_THRESHOLD:
            # No stream lasts three years: this is a Unix time in ms, i.e. a wall clock.
            return 0.0, _epoch(value, "milliseconds")
        return value / 1000.0, None
    stamp = obj.get("timestamp")
    if stamp is None:
        raise _BadLine("no time (timestamp_ms, time_ms or timestamp)")
    if isinstance(stamp, bool) or not isinstance(stamp, int | float | str):
        raise _BadLine(f"'timestamp' is {type(stamp).__name__}, not a string")
    if isinstance(stamp, str):
        try:
            return 0.0, parse_datetime(stamp)
        except (ValueError, OverflowError):
            raise _BadLine(f"'timestamp' is not ISO 8601: {_snippet(stamp)}") from None
    # Numbers: only a Unix time whose magnitude names its unit (years 2001-2286).
    if 1e9 <= stamp < 1e10:
        return 0.0, _epoch(stamp, "seconds")
    if 1e12 <= stamp < 1e13:
        return 0.0, _epoch(stamp, "milliseconds")
    raise _BadLine(
        "numeric 'timestamp' is ambiguous (neither Unix seconds nor ms); "
        "use timestamp_ms or an ISO 8601 string"
    )


def _parse_line(line_no: int, text: str) -> _Event:
    try:
        obj = json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise _BadLine("not JSON (nested too deeply)") from None
    except ValueError as exc:
        reason = getattr(exc, "msg", None) or str(exc)
        raise _BadLine(f"not JSON ({reason}): {_snippet(text)}") from None
    if not isinstance(obj, dict):
        raise _BadLine(f"not a JSON object ({type(obj).__name__}): {_snippet(text)}")
    kind, payload_key = _kind_and_payload(obj)
    prompt = _prompt(obj, payload_key)
    rel_s, wall = _time(obj)
    return _Event(line_no, kind, prompt, rel_s, wall, text)


def _decode(line: bytes, line_no: int, max_line_bytes: int) -> str | None:
    """The line as text without its line break, or None for a blank line."""
    if not line or line.isspace():
        return None
    size = len(line)
    if line.endswith(b"\n"):
        size -= 2 if line.endswith(b"\r\n") else 1
    if size > max_line_bytes:
        raise _BadLine(f"longer than {max_line_bytes} bytes ({size} bytes), not parsed")
    try:
        # A byte order mark is only legitimate at the very start of the file.
        text = line.decode("utf-8-sig" if line_no == 1 else "utf-8")
    except UnicodeDecodeError as exc:
        raise _BadLine(f"invalid UTF-8 at byte {exc.start}") from None
    return text.rstrip()


def _origin(
    events: list[_Event], started_at: datetime | None, warnings: list[str]
) -> datetime | None:
    walls = [event.wall for event in events if event.wall is not None]
    if not walls:
        return None
    starts = [event.wall for event in events if event.wall is not None and event.kind == "start"]
    if starts:
        return min(starts)
    if started_at is not None:
        if started_at.tzinfo is None:
            return started_at.replace(tzinfo=UTC)
        return started_at.astimezone(UTC)
    origin = min(walls)
    warnings.insert(
        0,
        "events: no stream_started event with a wall-clock time and no started_at; "
        f"wall-clock times are relative to the earliest one ({origin.isoformat()})",
    )
    return origin


def _repeat_origin(origin: str, n: int) -> pa.Array:
    return pa.array([origin] * n, pa.string())


def parse_events(
    lines: Iterable[bytes],
    *,
    stream_id: str,
    started_at: datetime | None = None,
    offset_s: float = 0.0,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    event_origin: str = "log",
) -> ParsedEvents:
    """Parse an events log into the ``events`` table.

    Bad lines are counted and skipped, never raised; an empty log gives an empty table.
    See the module docstring for the accepted shapes and how fields are read.

    Args:
        lines: the log's lines as bytes, with or without their line break (iterating a
            file opened in binary mode gives exactly this).
        stream_id: the recording, written in every row.
        started_at: the recording's start (wall clock), the origin of ISO ``timestamp``
            times when the log has no ``stream_started`` event with one. A naive datetime
            is taken as UTC.
        offset_s: seconds added to every event time to put it on the video clock, whose
            zero is the first presented frame.
        max_line_bytes: longer lines are skipped without being parsed.
        event_origin: written in the ``origin`` column: ``"log"`` for an events log,
            ``"script"`` for a simulation job's script.

    Returns:
        The table, the number of bad lines, and warnings about them.

    Raises:
        ConfigError: ``offset_s`` is not finite or ``max_line_bytes`` is not positive.
    """
    if not math.isfinite(offset_s):
        raise ConfigError(f"offset_s must be a finite number of seconds, not {offset_s!r}")
    if max_line_bytes < 1:
        raise ConfigError(f"max_line_bytes must be positive, not {max_line_bytes!r}")

    events: list[_Event] = []
    line_warnings: list[str] = []
    bad = 0
    for line_no, line in enumerate(lines, start=1):
        try:
            text = _decode(line, line_no, max_line_bytes)
            if text is None:
                continue
            events.append(_parse_line(line_no, text))
        except _BadLine as exc:
            bad += 1
            if len(line_warnings) < MAX_WARNINGS:
                line_warnings.append(f"events line {line_no}: {exc}")
    if bad > len(line_warnings):
        line_warnings.append(f"events: {bad - len(line_warnings)} more bad lines not listed")

    warnings = list(line_warnings)
    origin = _origin(events, started_at, warnings)
    times = np.empty(len(events), dtype=np.float64)
    for i, event in enumerate(events):
        # ``origin`` is None only when no line has a wall-clock time.
        if event.wall is None or origin is None:
            times[i] = event.rel_s
        else:
            times[i] = (event.wall - origin).total_seconds()
    times += offset_s
    order = np.argsort(times, kind="stable")
    kept = [events[i] for i in order.tolist()]
    table = pa.Table.from_arrays(
        [
            pa.array([stream_id] * len(kept), pa.string()),
            pa.array(np.arange(len(kept), dtype=np.int32)),
            pa.array(times[order]),
            pa.array([event.kind for event in kept], pa.string()),
            pa.array([event.prompt for event in kept], pa.string()),
            pa.array([event.raw for event in kept], pa.string()),
            _repeat_origin(event_origin, len(kept)),
        ],
        schema=EVENTS_SCHEMA,
    )
    return ParsedEvents(table=table, bad_lines=bad, warnings=tuple(warnings))
