"""The export's options, each declared once: the Python API, the CLI and pipeline files
are derived from these declarations.

How an option is declared, read and named in errors is :mod:`odyssey_data.optionspec`;
this module holds the declarations. An option is a field of one of six small frozen
groups (:class:`ClientOptions`, :class:`SelectionOptions`, :class:`ShapeOptions`,
:class:`TargetOptions`, :class:`RunOptions`, :class:`QCSettings`), declared with
:func:`~odyssey_data.optionspec.option`: its Python name, type (a
:class:`~odyssey_data.optionspec.Kind`: how a value is read from command-line text, from
TOML and from Python), default, bounds, help, CLI flag and pipeline-file key, or the
reason a surface deliberately lacks it; how it is written into a dataset
(``manifest.json``'s options, and ``export_options`` for the options that shape the rows),
or why not. The ``[frames]`` and ``[target]`` groups are declared in
:mod:`odyssey_data.frameoptions` and :mod:`odyssey_data.targetoptions`; import every
name from here. :class:`ExportConfig` is the union of the groups (flat: ``config.fps``;
the groups whole: ``config.client``, ``config.selection``…).

:data:`OPTIONS` lists every declaration. :func:`read_options` is the one place values
are read and checked, whichever surface they came from; an error names the option the
way the user wrote it: ``--fps`` on the command line, ``[frames] fps`` in a pipeline file,
``fps=`` in Python (:class:`Surface`).

Pure: no I/O library is imported here (the quality-control rules and the image encoder
check are imported when such an option is checked, not when this module is).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import MISSING, Field, dataclass, fields
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final, Generic, TypeVar

from odyssey_data.errors import ConfigError, redact_url
from odyssey_data.frameoptions import FORMATS, PROBE_MODES, FrameOptions, ShapeOptions
from odyssey_data.models import JOB_STATUSES, RecordingInfo
from odyssey_data.optionspec import (
    FLOAT,
    INT,
    MAX_SECONDS,
    MOMENT,
    OBJECT,
    TEXT,
    TEXTS,
    Invalid,
    Option,
    Recorded,
    Surface,
    bounded,
    option,
    parse_resize,
)
from odyssey_data.targetoptions import TargetOptions

if TYPE_CHECKING:
    from odyssey_data.measure import QCOptions

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

#: What an export reads: stream recordings, simulation job outputs, or both.
SOURCES: Final = ("streams", "simulations", "all")
#: Quality control modes (see :mod:`odyssey_data.qc`).
QC_MODES: Final = ("off", "reference", "response", "decode")
EXECUTORS: Final = ("local", "ray")

#: Bounds of options (refused up front outside them: every loop and download must end).
MAX_WORKERS = 1024


def _check_rules(rules: tuple[str, ...]) -> None:
    if not rules:
        return
    from odyssey_data.qc import parse_rule

    for rule in rules:
        try:
            parse_rule(rule)
        except ConfigError as exc:
            raise Invalid(str(exc)) from None


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

# Why an option is not written in manifest.json's options (no_record), and why it leaves
# an exported recording's rows the same (no_data): each declaration says one or the other.
_NETWORK = "how this run reached the API, not what the dataset holds"
_SPREAD = "how this run spread its work, not what the dataset holds"
_API = "where and how the API is reached: a recording gives the same rows"
_PICKS = "picks which recordings are exported, not what an exported recording's rows hold"
_RUNS = "where and how wide recordings run: the same rows (tests/test_ray.py compares them)"


def _public_api_url(config: Any) -> str | None:
    api_url = config.api_url or os.environ.get("ODYSSEY_API_URL")
    return redact_url(api_url) if api_url else None


def _rules_as_written(config: Any) -> list[str]:
    return [str(rule) for rule in config.qc_options().rules]


def _same_source(before: Any, after: Any) -> bool:
    # "all" holds streams and simulations alike: either kind can be added to it, and it
    # can be added to a dataset of either kind.
    return before == after or "all" in (before, after)


@dataclass(frozen=True, kw_only=True)
class ClientOptions:
    """How the API is reached and downloads are bounded."""

    api_url: str | None = option(
        None,
        TEXT,
        "API base URL (default: $ODYSSEY_API_URL or the public API)",
        cli="--api-url",
        toml="source.api_url",
        record=Recorded(value=_public_api_url),
        no_data=_API,
    )
    api_key: str | None = option(
        None,
        TEXT,
        "API key ody_... (default: $ODYSSEY_API_KEY)",
        cli="--api-key",
        no_toml="a secret is never written in a file: [source] api_key_env names the "
        "environment variable that holds it",
        repr=False,
        no_record="a secret: never written anywhere",
        no_data=_API,
    )
    timeout_s: float = option(
        30.0,
        FLOAT,
        "connect/read timeout of one HTTP request in seconds; a stalled answer is retried",
        cli="--timeout",
        toml="source.timeout_s",
        check=bounded(0.0, MAX_SECONDS, low_open=True),
        metavar="SECONDS",
        no_record=_NETWORK,
        no_data=_API,
    )
    max_download_bytes: int = option(
        16 << 30,
        INT,
        "refuse larger downloads, in bytes (default 16 GiB)",
        cli="--max-download-bytes",
        toml="source.max_download_bytes",
        check=bounded(1, 2**50),
        metavar="N",
        no_record=_NETWORK,
        no_data=_API,
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
        no_record=_NETWORK,
        no_data=_API,
    )
    retry: RetryPolicy = option(
        None,
        OBJECT,
        "retry policy of the API and downloads (a RetryPolicy)",
        no_cli=_PROGRAMS_ONLY,
        no_toml=_PROGRAMS_ONLY,
        factory=RetryPolicy,
        no_record=_NETWORK,
        no_data=_API,
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
        record=True,
        no_data=_PICKS,
    )
    stream_ids: tuple[str, ...] = option(
        (),
        TEXTS,
        "only this recording (repeatable)",
        cli="--stream-id",
        toml="source.stream_ids",
        metavar="ID",
        record=True,
        no_data=_PICKS,
    )
    source: str = option(
        "streams",
        TEXT,
        "stream recordings, simulation job outputs, or both into one dataset",
        cli="--source",
        toml="source.from",
        choices=SOURCES,
        record=True,
        data=Recorded(same=_same_source),
    )
    job_ids: tuple[str, ...] = option(
        (),
        TEXTS,
        "only this simulation job (repeatable)",
        cli="--job-id",
        toml="source.job_ids",
        metavar="ID",
        record=True,
        no_data=_PICKS,
    )
    job_status: str | None = option(
        None,
        TEXT,
        "list only simulation jobs of this status (default: all; those not completed "
        "are recorded as skipped)",
        cli="--status",
        toml="source.job_status",
        choices=JOB_STATUSES,
        record=True,
        no_data=_PICKS,
    )
    started_after: datetime | None = option(
        None,
        MOMENT,
        "export only recordings that started at or after this time (ISO 8601)",
        cli="--started-after",
        toml="source.started_after",
        metavar="TIME",
        record=True,
        no_data=_PICKS,
    )
    started_before: datetime | None = option(
        None,
        MOMENT,
        "export only recordings that started before this time (ISO 8601)",
        cli="--started-before",
        toml="source.started_before",
        metavar="TIME",
        record=True,
        no_data=_PICKS,
    )
    min_duration_s: float | None = option(
        None,
        FLOAT,
        "export only recordings at least this long (by the API's duration)",
        cli="--min-duration",
        toml="source.min_duration_s",
        check=bounded(0.0, MAX_SECONDS),
        metavar="SECONDS",
        record=True,
        no_data=_PICKS,
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
        no_record=_SPREAD,
        no_data=_RUNS,
    )
    executor: str = option(
        "local",
        TEXT,
        "where recordings run: this machine (threads for reference mode, processes for "
        "materialised frames) or Ray (extra odyssey-data[ray])",
        cli="--executor",
        toml="executor.name",
        choices=EXECUTORS,
        record=True,
        no_data=_RUNS,
    )
    ray_address: str | None = option(
        None,
        TEXT,
        "Ray cluster for the ray executor (default: $RAY_ADDRESS or a new local Ray)",
        cli="--ray-address",
        toml="executor.ray_address",
        metavar="ADDR",
        no_record=_SPREAD,
        no_data=_RUNS,
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
        record=True,
        no_data="fills the qc table (its qc_mode says what each row measured) and "
        "segments.response_latency_s (null when not measured); the contract's columns of "
        "frames, recordings, events and segments are the same under every mode",
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
        record=Recorded(value=_rules_as_written),
        no_data="decides which recordings are exported (one that breaks a rule has no "
        "rows), not what an exported recording's rows hold",
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

    def spell(name: str) -> str:
        return surface.spell(OPTION[name])

    def spell_value(name: str, value: str) -> str:
        return surface.spell_value(OPTION[name], value)

    def error(name: str, message: str) -> ConfigError:
        return surface.error(OPTION[name], message)

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
        raise error("ray_address", f"needs {spell_value('executor', 'ray')}")
    if get("executor") == "ray" and str(get("output") or "").startswith("memory://"):
        raise surface.problem("memory:// lives in this process; Ray workers cannot write to it")
    after, before = get("started_after"), get("started_before")
    if after is not None and before is not None and not after < before:
        raise error("started_after", f"must be earlier than {spell('started_before')}")
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

    def public_options(self) -> dict[str, Any]:
        """The options as recorded in the manifest (each declaration's ``record``): no
        key, no storage credentials."""
        return {spec.record_key: spec.record.of(spec, self) for spec in OPTIONS if spec.record}
