"""How an export option is declared and read: the machinery under
:mod:`odyssey_data.options`, which declares the options themselves.

A :class:`Kind` reads a value from command-line text, TOML or Python; an :class:`Option`
is one declaration (made with :func:`option` as a field of an option group); a
:class:`Surface` names an option in errors the way the user wrote it; a :class:`Recorded`
says how an option is written into the datasets it makes. Pure: the standard library and
the package's errors and models only.
"""

from __future__ import annotations

import difflib
import math
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from typing import Any, Literal

from odyssey_data.errors import ConfigError
from odyssey_data.models import parse_datetime

__all__ = [
    "BOOL",
    "FLOAT",
    "INT",
    "MAPPING",
    "MAX_SECONDS",
    "MOMENT",
    "OBJECT",
    "SIZE",
    "TEXT",
    "TEXTS",
    "Invalid",
    "Kind",
    "Option",
    "Recorded",
    "Surface",
    "as_json",
    "bounded",
    "option",
    "parse_resize",
]


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

#: Timeouts and durations are refused above this (every wait must end): a year.
MAX_SECONDS = 366 * 86_400.0


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


# -- the declaration -----------------------------------------------------------------


def as_json(value: Any) -> Any:
    """An option's value as written into a dataset: tuples as lists, times as ISO 8601."""
    if isinstance(value, tuple | list):
        return [as_json(item) for item in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return value


@dataclass(frozen=True)
class Recorded:
    """How an option is written into the datasets it makes: in ``manifest.json``'s
    ``options`` (``record=``), or, for an option that shapes the rows (``data=``), in
    each recording's ``export_options``, where a re-run compares it.

    Attributes:
        key: the name it is written under (default: the option's name).
        value: its JSON value from the whole export config (default: the option's own
            value, tuples as lists, times as ISO 8601 text).
        same: whether two written values make the same rows (``data=`` only; default:
            equal).
    """

    key: str | None = None
    value: Callable[[Any], Any] | None = None
    same: Callable[[Any, Any], bool] | None = None

    def of(self, spec: Option, config: Any) -> Any:
        """The value written for ``spec`` in ``config``."""
        if self.value is not None:
            return self.value(config)
        return as_json(getattr(config, spec.name))


def _equal(before: Any, after: Any) -> bool:
    return bool(before == after)


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
        record: how it is written in ``manifest.json``'s ``options`` (``None``: not).
        no_record: why it is not written there (when ``record`` is ``None``).
        data: it shapes the rows: how it is written in each recording's
            ``export_options``, which a re-run must match (``None``: it does not).
        no_data: why an exported recording's rows are the same whatever its value (when
            ``data`` is ``None``).
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
    record: Recorded | None = None
    no_record: str | None = None
    data: Recorded | None = None
    no_data: str | None = None

    @property
    def record_key(self) -> str:
        """Its name in ``manifest.json``'s ``options``."""
        return (self.record.key if self.record else None) or self.name

    @property
    def data_key(self) -> str:
        """Its name in ``export_options`` (an option that shapes the rows)."""
        return (self.data.key if self.data else None) or self.name

    def same_rows(self, before: Any, after: Any) -> bool:
        """Whether two ``export_options`` values of this option make the same rows."""
        same = self.data.same if self.data else None
        return (same or _equal)(before, after)

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
            raise surface.error(self, str(exc)) from None
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
    record: Recorded | bool = False,
    no_record: str | None = None,
    data: Recorded | bool = False,
    no_data: str | None = None,
) -> Any:
    """Declare an option as a field of its group (see :class:`Option`).

    Each pair is required, one or the other: ``cli`` or ``no_cli``, ``toml`` or
    ``no_toml``, ``record`` or ``no_record``, ``data`` or ``no_data`` (``True``: as
    :class:`Recorded` does by default). A new option cannot leave a surface, the manifest
    or the re-run check out by forgetting it.
    """
    if (cli is None) == (no_cli is None) or (toml is None) == (no_toml is None):
        raise TypeError("give each surface's name, or the reason it lacks the option")
    if (not record) == (no_record is None):
        raise TypeError("say how the option is recorded in the manifest, or why it is not")
    if (not data) == (no_data is None):
        raise TypeError("say how the option shapes the rows, or why the rows are the same")
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
        "record": Recorded() if record is True else record or None,
        "no_record": no_record,
        "data": Recorded() if data is True else data or None,
        "no_data": no_data,
    }
    if factory is not None:
        return field(default_factory=factory, metadata={"option": spec}, repr=repr, kw_only=True)
    return field(default=default, metadata={"option": spec}, repr=repr, kw_only=True)


@dataclass(frozen=True)
class Surface:
    """Where options were written: names them in errors as the user wrote them.

    Attributes:
        kind: ``python`` (``fps=``), ``cli`` (``--fps``) or ``toml`` (``[frames] fps``).
        where: what errors start with (a pipeline file's path), if anything.
    """

    kind: Literal["python", "cli", "toml"]
    where: str = ""

    def spell(self, spec: Option) -> str:
        """The option as written on this surface."""
        if self.kind == "cli" and spec.cli:
            return spec.cli
        if self.kind == "toml" and spec.toml:
            section, _, key = spec.toml.partition(".")
            return f"[{section}] {key}"
        if self.kind == "python":
            return f"{spec.name}="  # the keyword: export(fps=...), ExportConfig(fps=...)
        return spec.name

    def spell_value(self, spec: Option, value: str) -> str:
        """The option set to ``value`` as written on this surface."""
        if self.kind == "cli" and spec.cli:
            return f"{spec.cli} {value}"
        if self.kind == "toml" and spec.toml:
            return f'{self.spell(spec)} = "{value}"'
        return f"{spec.name}={value!r}"

    def error(self, spec: Option, message: str) -> ConfigError:
        """An error about the option: ``<where>: <spelling> <message>``."""
        return self.problem(f"{self.spell(spec)} {message}")

    def problem(self, message: str) -> ConfigError:
        """An error about the options together."""
        return ConfigError(f"{self.where}: {message}" if self.where else message)
