"""The export's options, each declared once: the Python API, the CLI and pipeline files
are derived from these declarations.

An option is a field of one of six small frozen groups (:class:`ClientOptions`,
:class:`SelectionOptions`, :class:`ShapeOptions`, :class:`TargetOptions`,
:class:`RunOptions`, :class:`QCSettings`), declared with :func:`option`: its Python name,
type (a :class:`Kind`: how a value is read from command-line text, from TOML and from
Python), default, bounds, help, CLI flag and pipeline-file key, or the reason a surface
deliberately lacks it. :class:`ExportConfig` is the union of the groups (flat:
``config.fps``; the groups whole: ``config.client``, ``config.selection``…).

:data:`OPTIONS` lists every declaration. :func:`read_options` is the one place values
are read and checked, whichever surface they came from; an error names the option the
way the user wrote it: ``--fps`` on the command line, ``[frames] fps`` in a pipeline file,
``fps`` in Python (:class:`Surface`).

Pure: no I/O library is imported here (the quality-control rules and the image encoder
check are imported when an option is checked, not when this module is).
"""

from __future__ import annotations

import difflib
import math
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import MISSING, Field, dataclass, field, fields
from datetime import UTC, date, datetime, time
from typing import TYPE_CHECKING, Any, Final, Generic, Literal, TypeVar

from odyssey_data.errors import ConfigError, redact_url
from odyssey_data.models import JOB_STATUSES, RecordingInfo, parse_datetime

if TYPE_CHECKING:
    from odyssey_data.measure import QCOptions
    from odyssey_data.video import ProbeMode

__all__ = [
    "FORMATS",
    "GROUPS",
    "OPTION",
    "OPTIONS",
    "PROBE_MODES",
    "QC_MODES",
    "SOURCES",
    "ClientOptions",
    "ExportConfig",
    "FrameOptions",
    "Option",
    "QCSettings",
    "RetryPolicy",
    "RunOptions",
    "SelectionOptions",
    "ShapeOptions",
    "Surface",
    "TargetOptions",
    "parse_resize",
    "read_options",
]

#: Frame formats: reference rows, or an image format materialised in the ``image`` column.
FORMATS: Final = ("reference", "jpeg", "png", "webp")
#: What an export reads: stream recordings, simulation job outputs, or both.
SOURCES: Final = ("streams", "simulations", "all")
#: How frame timing is read (see :mod:`odyssey_data.video`).
PROBE_MODES: Final = ("auto", "demux", "decode")
#: Quality control modes (see :mod:`odyssey_data.qc`).
QC_MODES: Final = ("off", "reference", "response", "decode")
EXECUTORS: Final = ("local", "ray")

#: Bounds of options (refused up front outside them: every loop and download must end).
MAX_FPS = 1000.0
MAX_IMAGE_SIDE = 16384
MAX_EVENT_OFFSET_MS = 7 * 86_400_000.0  # a week either way
MAX_SECONDS = 366 * 86_400.0  # timeouts and durations: a year
MAX_WORKERS = 1024


class Invalid(ValueError):
    """A value an option refuses; the message is the predicate (``must be …, not …``)
    that :class:`Surface` completes with the option's name as the user wrote it."""


# -- how values are read -------------------------------------------------------------


def _number_kind(value: Any, integer: bool) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int) if integer else isinstance(value, int | float)


@dataclass(frozen=True)
class Kind:
    """An option's type: how a value is read from each surface.

    Attributes:
        name: what the value must be, for messages (``a number``).
        text: read command-line text (a flag's value; ``None``: not from text).
        native: read a TOML or Python value (already typed).
        cli: how argparse takes it: ``value``, ``flag`` (store_true) or ``append``.
    """

    name: str
    text: Callable[[str], Any] | None
    native: Callable[[Any], Any]
    cli: Literal["value", "flag", "append"] = "value"


def _typed(kind: type, name: str) -> Callable[[Any], Any]:
    def read(value: Any) -> Any:
        if kind is float and _number_kind(value, False):
            return float(value)
        if kind is int and _number_kind(value, True):
            return value
        if kind is str and isinstance(value, str | os.PathLike):
            return os.fspath(value)
        if kind is bool and isinstance(value, bool):
            return value
        raise Invalid(f"must be {name}, not {value!r}")

    return read


def _from_text(kind: type, name: str) -> Callable[[str], Any]:
    def read(text: str) -> Any:
        try:
            return kind(text)
        except ValueError:
            raise Invalid(f"must be {name}, not {text!r}") from None

    return read


def parse_resize(text: str) -> tuple[int, int | None]:
    """Parse a frame size: ``WxH`` (a fixed size) or ``W`` / ``Wx`` (keep the aspect ratio).

    Raises:
        ConfigError: not of that form, or not positive.
    """
    width_text, _, height_text = text.lower().partition("x")
    try:
        width = int(width_text)
        height = int(height_text) if height_text.strip() else None
    except ValueError as exc:
        raise ConfigError(f"--resize takes WxH or W (keep aspect), not {text!r}") from exc
    if width < 2 or (height is not None and height < 2):
        raise ConfigError(f"--resize needs sizes of at least 2 pixels, not {text!r}")
    return width, height


def _size(value: Any) -> tuple[int, int | None]:
    if _number_kind(value, True):
        value = str(value)
    if isinstance(value, str):
        try:
            return parse_resize(value)
        except ConfigError:
            raise Invalid(f'must be "WxH" or "W" (keep aspect), not {value!r}') from None
    if (
        isinstance(value, tuple | list)
        and len(value) == 2
        and _number_kind(value[0], True)
        and (value[1] is None or _number_kind(value[1], True))
    ):
        return value[0], value[1]
    raise Invalid(f'must be "WxH", "W" or (width, height), not {value!r}')


def _moment(value: Any) -> datetime:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise Invalid("must be a time with a time zone (e.g. ...Z)")
        return value
    if isinstance(value, date):
        return datetime.combine(value, time(), tzinfo=UTC)
    if isinstance(value, str):
        try:
            return parse_datetime(value)
        except ValueError:
            pass
    raise Invalid(f"must be an ISO 8601 time such as 2026-01-31T00:00:00Z, not {value!r}")


def _toml_moment(value: Any) -> datetime:
    # TOML's local date-times are read as UTC (as the pipeline files always did).
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return _moment(value)


def _texts(value: Any) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise Invalid(f'must be a list of strings such as ["a", "b"], not {value!r}')
    items = tuple(value)
    if not all(isinstance(item, str) and item for item in items):
        raise Invalid(f"must be a list of non-empty strings, not {list(items)!r}")
    return items


def _mapping(value: Any) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise Invalid(f"must be a table of KEY = VALUE, not {value!r}")
    return dict(value)


def _storage_pair(text: str) -> tuple[str, Any]:
    import json

    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise Invalid(f"takes KEY=VALUE, not {text!r}")
    try:
        return key, json.loads(raw)
    except ValueError:
        return key, raw


def _anything(value: Any) -> Any:
    return value


BOOL = Kind("true or false", None, _typed(bool, "true or false"), "flag")
INT = Kind("an integer", _from_text(int, "an integer"), _typed(int, "an integer"))
FLOAT = Kind("a number", _from_text(float, "a number"), _typed(float, "a number"))
TEXT = Kind("a string", str, _typed(str, "a string"))
SIZE = Kind('"WxH" or "W"', _size, _size)
MOMENT = Kind("an ISO 8601 time", _moment, _moment)
TEXTS = Kind("a list of strings", str, _texts, "append")
MAPPING = Kind("a table", _storage_pair, _mapping, "append")
OBJECT = Kind("an object", None, _anything)


# -- the checks ----------------------------------------------------------------------


def bounded(
    low: float, high: float, *, low_open: bool = False, span: bool = False
) -> Callable[[Any], None]:
    """Check: a finite number within ``[low, high]`` (``(low, high]`` with ``low_open``).

    ``span`` words a refusal as ``must be within low..high`` (small closed ranges).
    """

    def check(value: Any) -> None:
        if not math.isfinite(value):
            raise Invalid(f"must be a finite number, not {value}")
        too_low = value <= low if low_open else value < low
        if span and (too_low or value > high):
            raise Invalid(f"must be within {low:g}..{high:g}, not {value}")
        if too_low:
            if low == 0:
                words = "must be positive" if low_open else "must not be negative"
            else:
                words = f"must be {'more than' if low_open else 'at least'} {low:g}"
            raise Invalid(f"{words}, not {value}")
        if value > high:
            raise Invalid(f"must be at most {high:g}, not {value}")

    return check


def _check_size(value: tuple[int, int | None]) -> None:
    for side in value:
        if side is not None and not 2 <= side <= MAX_IMAGE_SIDE:
            raise Invalid(f"sides must be within 2..{MAX_IMAGE_SIDE} pixels, not {value}")


def _check_rules(rules: tuple[str, ...]) -> None:
    if not rules:
        return
    from odyssey_data.qc import parse_rule

    for rule in rules:
        try:
            parse_rule(rule)
        except ConfigError as exc:
            raise Invalid(str(exc)) from None


# -- the declaration -----------------------------------------------------------------


@dataclass(frozen=True)
class Option:
    """One export option, as every surface sees it.

    Attributes:
        name: the Python keyword (``ExportConfig`` field, ``export(name=...)``).
        group: the frozen group that holds it (``client``, ``selection``, …).
        kind: its type.
        default: its default (``None`` for "not set").
        help: one line of help (the CLI's ``--help``, the pipeline README).
        cli: the command-line flag (``--fps``), or ``OUTPUT`` for the operand.
        toml: the pipeline-file key as ``section.key`` (``frames.fps``).
        no_cli: why the command line deliberately lacks it (when ``cli`` is ``None``).
        no_toml: why pipeline files deliberately lack it (when ``toml`` is ``None``).
        check: refuses a value (raises :class:`Invalid`); the same for every surface.
        metavar: the CLI's placeholder for the value.
    """

    name: str
    group: str
    kind: Kind
    default: Any
    help: str
    cli: str | None
    toml: str | None
    no_cli: str | None = None
    no_toml: str | None = None
    check: Callable[[Any], None] | None = None
    metavar: str | None = None
    choices: tuple[str, ...] | None = None
    zero_means_none: bool = False

    def read(self, value: Any, surface: Surface) -> Any:
        """``value`` as given on ``surface``, read and checked; ``None`` stays not set.

        Raises:
            ConfigError: naming the option as it was written on ``surface``.
        """
        if value is None:
            return None
        try:
            if surface.kind == "cli" and self.kind.text is not None:
                if self.kind.cli == "append":
                    items = [self.kind.text(item) for item in value]
                    value = dict(items) if self.kind is MAPPING else tuple(items)
                elif isinstance(value, str):
                    value = self.kind.text(value)
            elif surface.kind == "toml" and self.kind is MOMENT:
                value = _toml_moment(value)
            value = self.kind.native(value)
            if self.zero_means_none and surface.kind != "python" and value <= 0:
                return None
            if self.choices is not None and value not in self.choices:
                close = difflib.get_close_matches(str(value), self.choices, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise Invalid(f"must be one of {', '.join(self.choices)}, not {value!r}{hint}")
            if self.check is not None:
                self.check(value)
        except Invalid as exc:
            raise surface.error(self.name, str(exc)) from None
        return value


def option(
    default: Any,
    kind: Kind,
    help: str,
    *,
    cli: str | None = None,
    toml: str | None = None,
    no_cli: str | None = None,
    no_toml: str | None = None,
    check: Callable[[Any], None] | None = None,
    metavar: str | None = None,
    choices: tuple[str, ...] | None = None,
    zero_means_none: bool = False,
    factory: Callable[[], Any] | None = None,
    repr: bool = True,
) -> Any:
    """Declare an option as a field of its group (see :class:`Option`)."""
    if (cli is None) == (no_cli is None) or (toml is None) == (no_toml is None):
        raise TypeError("give each surface's name, or the reason it lacks the option")
    spec = {
        "kind": kind,
        "help": help,
        "cli": cli,
        "toml": toml,
        "no_cli": no_cli,
        "no_toml": no_toml,
        "check": check,
        "metavar": metavar,
        "choices": choices,
        "zero_means_none": zero_means_none,
    }
    if factory is not None:
        return field(default_factory=factory, metadata={"option": spec}, repr=repr, kw_only=True)
    return field(default=default, metadata={"option": spec}, repr=repr, kw_only=True)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How hard to retry a transient failure (per request or download).

    Attributes:
        attempts: tries in all, the first included.
        timeout_s: give up retrying after this long in all.
        wait_initial_s: first backoff wait.
        wait_max_s: cap of one backoff wait (a ``Retry-After`` above it is capped too).
        max_url_refreshes: fresh presigned URLs asked for one download at most.
    """

    attempts: int = 6
    timeout_s: float = 120.0
    wait_initial_s: float = 0.2
    wait_max_s: float = 10.0
    max_url_refreshes: int = 3

    def __post_init__(self) -> None:
        # Every retry loop must end: finite, bounded values only.
        bounds = (
            ("attempts", self.attempts, 1, 100),
            ("timeout_s", self.timeout_s, 0, 86_400),
            ("wait_initial_s", self.wait_initial_s, 0, 3_600),
            ("wait_max_s", self.wait_max_s, 0, 3_600),
            ("max_url_refreshes", self.max_url_refreshes, 0, 100),
        )
        for name, value, low, high in bounds:
            if not (
                isinstance(value, int | float) and math.isfinite(value) and low <= value <= high
            ):
                raise ConfigError(f"retry {name} must be within [{low}, {high}], not {value}")


_PROGRAMS_ONLY = "an object for programs and tests; the CLI and pipeline files use the default"


@dataclass(frozen=True, kw_only=True)
class ClientOptions:
    """How the API is reached and downloads are bounded."""

    api_url: str | None = option(
        None,
        TEXT,
        "API base URL (default: $ODYSSEY_API_URL or the public API)",
        cli="--api-url",
        toml="source.api_url",
    )
    api_key: str | None = option(
        None,
        TEXT,
        "API key ody_... (default: $ODYSSEY_API_KEY)",
        cli="--api-key",
        no_toml="a secret is never written in a file: [source] api_key_env names the "
        "environment variable that holds it",
        repr=False,
    )
    timeout_s: float = option(
        30.0,
        FLOAT,
        "connect/read timeout of one HTTP request in seconds; a stalled answer is retried",
        cli="--timeout",
        toml="source.timeout_s",
        check=bounded(0.0, MAX_SECONDS, low_open=True),
        metavar="SECONDS",
    )
    max_download_bytes: int = option(
        16 << 30,
        INT,
        "refuse larger downloads, in bytes (default 16 GiB)",
        cli="--max-download-bytes",
        toml="source.max_download_bytes",
        check=bounded(1, 2**50),
        metavar="N",
    )
    min_download_rate: float = option(
        16 << 10,
        FLOAT,
        "a download slower than this on average (after its first read timeout) is "
        "retried, then fails",
        cli="--min-download-rate",
        toml="source.min_download_rate",
        check=bounded(1, 1e12),
        metavar="BYTES_PER_S",
    )
    retry: RetryPolicy = option(
        None,
        OBJECT,
        "retry policy of the API and downloads (a RetryPolicy)",
        no_cli=_PROGRAMS_ONLY,
        no_toml=_PROGRAMS_ONLY,
        factory=RetryPolicy,
    )


@dataclass(frozen=True, kw_only=True)
class SelectionOptions:
    """Which recordings an export takes."""

    limit: int | None = option(
        None,
        INT,
        "export at most N recordings that can be exported (most recent first; "
        "still-active streams do not count)",
        cli="--limit",
        toml="source.limit",
        check=bounded(1, 2**62),
        metavar="N",
    )
    stream_ids: tuple[str, ...] = option(
        (),
        TEXTS,
        "only this recording (repeatable)",
        cli="--stream-id",
        toml="source.stream_ids",
        metavar="ID",
    )
    source: str = option(
        "streams",
        TEXT,
        "stream recordings, simulation job outputs, or both into one dataset",
        cli="--source",
        toml="source.from",
        choices=SOURCES,
    )
    job_ids: tuple[str, ...] = option(
        (),
        TEXTS,
        "only this simulation job (repeatable)",
        cli="--job-id",
        toml="source.job_ids",
        metavar="ID",
    )
    job_status: str | None = option(
        None,
        TEXT,
        "list only simulation jobs of this status (default: all; those not completed "
        "are recorded as skipped)",
        cli="--status",
        toml="source.job_status",
        choices=JOB_STATUSES,
    )
    started_after: datetime | None = option(
        None,
        MOMENT,
        "export only recordings that started at or after this time (ISO 8601)",
        cli="--started-after",
        toml="source.started_after",
        metavar="TIME",
    )
    started_before: datetime | None = option(
        None,
        MOMENT,
        "export only recordings that started before this time (ISO 8601)",
        cli="--started-before",
        toml="source.started_before",
        metavar="TIME",
    )
    min_duration_s: float | None = option(
        None,
        FLOAT,
        "export only recordings at least this long (by the API's duration)",
        cli="--min-duration",
        toml="source.min_duration_s",
        check=bounded(0.0, MAX_SECONDS),
        metavar="SECONDS",
    )

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
class FrameOptions:
    """What each worker does with the frames: reference rows only, or materialised images
    (``mode``, ``resize``, ``fps``, ``quality``: see :class:`ShapeOptions`)."""

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
        """Raise :class:`ConfigError` for options that need what is not installed."""
        if self.materialised:
            from odyssey_data.images import image_encoder

            image_encoder(self.mode, self.quality)  # fails early on a missing extra


@dataclass(frozen=True, kw_only=True)
class ShapeOptions:
    """What the rows hold: the options that shape the data."""

    frames: str = option(
        "reference",
        TEXT,
        "reference (rows point into the videos) or an image format to materialise each "
        "frame in the image column (needs odyssey-data[images])",
        cli="--frames",
        toml="frames.mode",
        choices=FORMATS,
    )
    resize: tuple[int, int | None] | None = option(
        None,
        SIZE,
        "size of materialised frames; W alone keeps the aspect ratio (WxH warns when it stretches)",
        cli="--resize",
        toml="frames.resize",
        check=_check_size,
        metavar="WxH",
    )
    fps: float | None = option(
        None,
        FLOAT,
        "keep only the frame nearest to each tick of this rate",
        cli="--fps",
        toml="frames.fps",
        check=bounded(0.0, MAX_FPS, low_open=True),
    )
    image_quality: int = option(
        90,
        INT,
        "JPEG/WebP quality 1..100",
        cli="--image-quality",
        toml="frames.quality",
        check=bounded(1, 100, span=True),
        metavar="Q",
    )
    probe: ProbeMode = option(
        "auto",
        TEXT,
        "how frame timing is read (auto: demux, checked against a decode)",
        cli="--probe",
        toml="frames.probe",
        choices=PROBE_MODES,
    )
    event_offset_ms: float = option(
        0.0,
        FLOAT,
        "added to every event time (events clock to video clock)",
        cli="--event-offset-ms",
        toml="frames.event_offset_ms",
        check=bounded(-MAX_EVENT_OFFSET_MS, MAX_EVENT_OFFSET_MS),
        metavar="MS",
    )
    with_thumbnails: bool = option(
        False,
        BOOL,
        "also store each recording's thumbnail JPEG and preview MP4 beside its video",
        cli="--with-thumbnails",
        toml="frames.with_thumbnails",
    )

    def frame_options(self) -> FrameOptions:
        """What each worker does with the frames (reference rows or encoded images)."""
        return FrameOptions(self.frames, self.resize, self.fps, self.image_quality)


@dataclass(frozen=True, kw_only=True)
class TargetOptions:
    """Where the dataset goes and how it is written."""

    output: str = option(
        MISSING,
        TEXT,
        "dataset root: a folder or fsspec URL (s3://, gs://, memory://)",
        cli="OUTPUT",
        toml="target.url",
    )
    storage_options: Mapping[str, Any] = option(
        None,
        MAPPING,
        "fsspec option of the dataset's filesystem, e.g. endpoint_url=http://host:9000 "
        "(repeatable; VALUE is JSON if it parses)",
        cli="--storage-option",
        toml="target.storage_options",
        metavar="KEY=VALUE",
        factory=dict,
        repr=False,
    )
    overwrite: bool = option(
        False,
        BOOL,
        "start a fresh dataset (also the way out of a damaged manifest.json)",
        cli="--overwrite",
        toml="target.overwrite",
    )
    mix_options: bool = option(
        False,
        BOOL,
        "add recordings even though the dataset holds recordings exported with other "
        "data-shaping options (frames, resize, fps, quality, source, event offset)",
        cli="--mix-options",
        toml="target.mix_options",
    )
    allow_foreign_files: bool = option(
        False,
        BOOL,
        "add a new dataset to a folder that already holds other files (they are never "
        "deleted or overwritten; a file named like one the export writes is refused)",
        cli="--allow-foreign-files",
        toml="target.allow_foreign_files",
    )
    shard_rows: int = option(
        1_000_000,
        INT,
        "frame rows per shard at most",
        cli="--shard-rows",
        toml="target.shard_rows",
        check=bounded(1, 2**31 - 1),
        metavar="N",
    )
    checkpoint_every: int = option(
        100,
        INT,
        "commit the dataset at least every N finished recordings",
        cli="--checkpoint-every",
        toml="target.checkpoint_every",
        check=bounded(1, 2**62),
        metavar="N",
    )
    checkpoint_seconds: float = option(
        30.0,
        FLOAT,
        "... or at least every T seconds, whichever comes first: an interrupted run loses "
        "at most that much work",
        cli="--checkpoint-seconds",
        toml="target.checkpoint_seconds",
        check=bounded(0.0, MAX_SECONDS, low_open=True),
        metavar="T",
    )
    break_lock: bool = option(
        False,
        BOOL,
        "take the dataset's writer lock even if another export seems to hold it (only "
        "when you know that export is dead; also the way out of a damaged lock)",
        cli="--break-lock",
        no_toml="a one-off decision after checking that the other export is dead, not a "
        "standing setting: run `odyssey-data export OUTPUT --break-lock` once",
    )
    lock_timeout_s: float | None = option(
        6 * 3600.0,
        FLOAT,
        "a writer lock idle for longer is stale and broken (0: never by age, only when "
        "its process is gone from this machine)",
        cli="--lock-timeout",
        toml="target.lock_timeout_s",
        check=bounded(0.0, 10 * MAX_SECONDS, low_open=True),
        metavar="SECONDS",
        zero_means_none=True,
    )


@dataclass(frozen=True, kw_only=True)
class RunOptions:
    """Where and how wide the recordings run."""

    workers: int | None = option(
        None,
        INT,
        "recordings in parallel (default: the number of cores)",
        cli="--workers",
        toml="executor.workers",
        check=bounded(1, MAX_WORKERS),
        metavar="N",
    )
    executor: str = option(
        "local",
        TEXT,
        "where recordings run: this machine (threads for reference mode, processes for "
        "materialised frames) or Ray (extra odyssey-data[ray])",
        cli="--executor",
        toml="executor.name",
        choices=EXECUTORS,
    )
    ray_address: str | None = option(
        None,
        TEXT,
        "Ray cluster for the ray executor (default: $RAY_ADDRESS or a new local Ray)",
        cli="--ray-address",
        toml="executor.ray_address",
        metavar="ADDR",
    )


@dataclass(frozen=True, kw_only=True)
class QCSettings:
    """Quality control during the export: the ``qc`` table and its gate."""

    qc: str = option(
        "reference",
        TEXT,
        "quality control into the qc table: reference (frame timing and prompts, no pixel "
        "decoded), response (also each interaction's visual response latency, decoding a "
        "short window after it), decode (also frozen stretches, decoding every frame at "
        "low resolution) or off",
        cli="--qc",
        toml="qc.mode",
        choices=QC_MODES,
    )
    qc_fail_on: tuple[str, ...] = option(
        (),
        TEXTS,
        "fail a recording whose qc value breaks this rule, e.g. 'gaps>0' or "
        "'response_latency_max_s>1.5' (repeatable; it is not exported, a re-run checks "
        "it again)",
        cli="--qc-fail-on",
        toml="qc.fail_on",
        check=_check_rules,
        metavar="EXPR",
    )

    def qc_options(self) -> QCOptions:
        """The quality control each worker runs, and its gate."""
        from odyssey_data.measure import QCOptions

        return QCOptions(self.qc, tuple(self.qc_fail_on))


#: The groups, by the name :class:`Option` gives them.
GROUPS: dict[str, type] = {
    "client": ClientOptions,
    "selection": SelectionOptions,
    "shape": ShapeOptions,
    "target": TargetOptions,
    "run": RunOptions,
    "qc": QCSettings,
}


def _declared(group: str, spec: Field[Any]) -> Option:
    meta = dict(spec.metadata["option"])
    default: Any = None if spec.default is MISSING else spec.default
    if spec.default_factory is not MISSING:
        default = spec.default_factory()
    return Option(name=spec.name, group=group, default=default, **meta)


#: Every export option, group by group.
OPTIONS: tuple[Option, ...] = tuple(
    _declared(name, spec) for name, cls in GROUPS.items() for spec in fields(cls)
)
OPTION: dict[str, Option] = {o.name: o for o in OPTIONS}


_G = TypeVar("_G")


class _GroupOf(Generic[_G]):
    """``config.client`` and the like: one group of the options, whole (a new frozen
    object of the group's class holding the config's values)."""

    def __init__(self, cls: type[_G]) -> None:
        self.cls = cls

    def __get__(self, config: Any, owner: Any = None) -> _G:
        values = {spec.name: getattr(config, spec.name) for spec in fields(self.cls)}  # type: ignore[arg-type]
        return self.cls(**values)


# -- surfaces ------------------------------------------------------------------------


@dataclass(frozen=True)
class Surface:
    """Where options were written: names them in errors as the user wrote them.

    Attributes:
        kind: ``python`` (``fps``), ``cli`` (``--fps``) or ``toml`` (``[frames] fps``).
        where: what errors start with (a pipeline file's path), if anything.
    """

    kind: Literal["python", "cli", "toml"]
    where: str = ""

    def spell(self, name: str) -> str:
        """The option ``name`` as written on this surface."""
        spec = OPTION[name]
        if self.kind == "cli" and spec.cli:
            return spec.cli
        if self.kind == "toml" and spec.toml:
            section, _, key = spec.toml.partition(".")
            return f"[{section}] {key}"
        return name

    def spell_value(self, name: str, value: str) -> str:
        """``name`` set to ``value`` as written on this surface."""
        spec = OPTION[name]
        if self.kind == "cli" and spec.cli:
            return f"{spec.cli} {value}"
        if self.kind == "toml" and spec.toml:
            return f'{self.spell(name)} = "{value}"'
        return f"{name}={value!r}"

    def error(self, name: str, message: str) -> ConfigError:
        """An error about option ``name``: ``<where>: <spelling> <message>``."""
        return self.problem(f"{self.spell(name)} {message}")

    def problem(self, message: str) -> ConfigError:
        """An error about the options together."""
        return ConfigError(f"{self.where}: {message}" if self.where else message)


PYTHON = Surface("python")
CLI = Surface("cli")


def read_options(given: Mapping[str, Any], surface: Surface) -> dict[str, Any]:
    """Read and check the options ``given`` on ``surface``: the one place options are
    validated, alone and together.

    Args:
        given: option name → value as the surface holds it (``None``: not set).
        surface: where they were written (names them in errors).

    Returns:
        The values read (typed), the ones not set left out.

    Raises:
        ConfigError: an unknown option, a value of the wrong type or out of bounds, or
            options that do not go together.
    """
    values: dict[str, Any] = {}
    for name, raw in given.items():
        if name not in OPTION:
            raise surface.problem(f"unknown option {name!r}")
        value = OPTION[name].read(raw, surface)
        if value is not None:
            values[name] = value
    _check_together(values, surface)
    return values


def _check_together(values: Mapping[str, Any], surface: Surface) -> None:
    def get(name: str) -> Any:
        return values.get(name, OPTION[name].default)

    spell, spell_value = surface.spell, surface.spell_value
    if get("resize") is not None and get("frames") == "reference":
        raise surface.problem(
            f"{spell('resize')} applies to materialised frames: add {spell_value('frames', 'jpeg')}"
        )
    if (get("job_ids") or get("job_status")) and get("source") == "streams":
        raise surface.problem(
            f"{spell('job_ids')} and {spell('job_status')} need "
            f"{spell_value('source', 'simulations')} or {spell_value('source', 'all')}"
        )
    if get("ray_address") is not None and get("executor") != "ray":
        raise surface.error("ray_address", f"needs {spell_value('executor', 'ray')}")
    if get("executor") == "ray" and str(get("output") or "").startswith("memory://"):
        raise surface.problem("memory:// lives in this process; Ray workers cannot write to it")
    after, before = get("started_after"), get("started_before")
    if after is not None and before is not None and not after < before:
        raise surface.error("started_after", f"must be earlier than {spell('started_before')}")
    if get("qc_fail_on"):  # which rules the mode can check (imports the measuring code)
        try:
            QCSettings(qc=get("qc"), qc_fail_on=tuple(get("qc_fail_on"))).qc_options()
        except ConfigError as exc:
            raise surface.problem(str(exc)) from None


@dataclass(frozen=True, kw_only=True)
class ExportConfig(
    QCSettings, RunOptions, TargetOptions, ShapeOptions, SelectionOptions, ClientOptions
):
    """Options of one export: every field of the groups, flat (``config.fps``), and each
    group whole (``config.client``, ``config.selection``, ``config.shape``,
    ``config.target``, ``config.run``, ``config.qc_settings``). Each option's meaning,
    default and bounds are in its group's declaration (:data:`OPTIONS`). Secrets (the
    API key, storage credentials) are never written anywhere.

    Raises:
        ConfigError: at construction, for an option of the wrong type, out of bounds, or
            options that do not go together (named as Python names them).
    """

    def __post_init__(self) -> None:
        given = {spec.name: getattr(self, spec.name) for spec in fields(self)}
        for name, value in read_options(given, PYTHON).items():
            object.__setattr__(self, name, value)  # typed: "256x144" -> (256, 144)
        self.frame_options().validate()

    client = _GroupOf(ClientOptions)
    selection = _GroupOf(SelectionOptions)
    shape = _GroupOf(ShapeOptions)
    target = _GroupOf(TargetOptions)
    run = _GroupOf(RunOptions)
    qc_settings = _GroupOf(QCSettings)

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
