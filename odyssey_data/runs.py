"""The options that shape the data, recorded per recording, and the runs of a dataset.

A dataset made with ``--frames reference`` and one made with ``--frames jpeg --fps 5``
hold different rows for the same recording. So every exported recording records the
options that shaped its rows (:data:`DATA_OPTIONS`, in its manifest entry and its
``recordings`` row, with the exporter's version), and a re-run whose options differ
from those already in the dataset is refused (:func:`check_options`) with one line that
names the difference and the ways forward, unless it is asked to mix them.

``manifest.json`` also keeps ``runs``: one entry per export (when, which version, which
options, what it added), updated at every checkpoint.

:data:`DATA_OPTIONS` is made from the option declarations (:mod:`odyssey_data.options`):
every option says either how it shapes the rows (``data=``: its key, its value, when two
values make the same rows) or why a recording's rows are the same whatever its value
(``no_data=``). An option added without saying is refused when it is declared.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from odyssey_data._version import __version__
from odyssey_data.errors import ConfigError
from odyssey_data.manifest import utc_now_iso
from odyssey_data.options import OPTIONS, Option

__all__ = [
    "DATA_OPTIONS",
    "DataOption",
    "OptionsMismatchError",
    "check_options",
    "data_options",
    "options_json",
    "recorded_options",
    "start_run",
]


@dataclass(frozen=True)
class DataOption:
    """One option that shapes the exported rows.

    Attributes:
        key: its name in the manifest and in ``export_options``.
        read: its value from an :class:`~odyssey_data.options.ExportConfig` (JSON-able;
            ``None`` when it does not apply, e.g. the JPEG quality of reference rows).
        flag: how a user sets it, for messages.
        same: whether two values make the same data (default: equal).
    """

    key: str
    read: Callable[[Any], Any]
    flag: str
    same: Callable[[Any, Any], bool] = lambda a, b: bool(a == b)


def _data_option(spec: Option) -> DataOption:
    assert spec.data is not None
    data = spec.data
    return DataOption(
        spec.data_key, lambda config: data.of(spec, config), str(spec.cli), spec.same_rows
    )


#: The options that shape the data (declared with ``data=``), in the order they are
#: declared and named in messages.
DATA_OPTIONS: list[DataOption] = [_data_option(spec) for spec in OPTIONS if spec.data]


def data_options(config: Any) -> dict[str, Any]:
    """The values of :data:`DATA_OPTIONS` for ``config``."""
    return {option.key: option.read(config) for option in DATA_OPTIONS}


def options_json(options: Mapping[str, Any]) -> str:
    """The options as the compact JSON text of the ``export_options`` column."""
    return json.dumps(dict(options), sort_keys=True, separators=(",", ":"))


class OptionsMismatchError(ConfigError):
    """A re-run's data-shaping options differ from those already in the dataset."""


def _show(value: Any) -> str:
    return "(not set)" if value is None else str(value)


def check_options(
    output: str,
    recorded: list[Mapping[str, Any]],
    wanted: Mapping[str, Any],
    *,
    mix: bool,
) -> None:
    """Refuse a run whose options differ from every recording's already in the dataset.

    Args:
        output: the dataset root, for the message.
        recorded: the distinct option sets of the recordings in the dataset.
        wanted: this run's options (:func:`data_options`).
        mix: the user asked to mix (``--mix-options``): never refuse.

    Raises:
        OptionsMismatchError: one line naming the difference and the ways forward.
    """
    if mix or not recorded:
        return
    for before in recorded:
        differences = [
            f"{option.flag} {_show(before.get(option.key))} → {_show(wanted.get(option.key))}"
            for option in DATA_OPTIONS
            if option.key in before
            and not option.same(before.get(option.key), wanted.get(option.key))
        ]
        if differences:
            raise OptionsMismatchError(
                f"{output} holds recordings exported with other options "
                f"({'; '.join(differences)}): re-run with --overwrite to replace them, "
                "or export into a new folder (or pass --mix-options to add recordings "
                "made with these options beside them)"
            )


def recorded_options(recordings: Mapping[str, Any], fallback: Mapping[str, Any]) -> list[Any]:
    """The distinct option sets of the exported recordings in a manifest.

    Recordings exported before options were recorded per recording take the options
    the manifest recorded for the whole dataset (``fallback``).
    """
    seen: dict[str, Mapping[str, Any]] = {}
    keys = {option.key for option in DATA_OPTIONS}
    for status in recordings.values():
        if status.status != "exported":
            continue
        options = status.details.get("options")
        if not isinstance(options, Mapping):
            options = {k: v for k, v in fallback.items() if k in keys}
            if options.get("resize") is not None and isinstance(options["resize"], list):
                width, height = options["resize"]
                options["resize"] = f"{width}x{height}" if height is not None else str(width)
        seen.setdefault(options_json(options), options)
    return list(seen.values())


def start_run(options: Mapping[str, Any]) -> dict[str, Any]:
    """A new entry of the manifest's ``runs``: updated in place as the run goes."""
    return {
        "started_at": utc_now_iso(),
        "finished_at": None,
        "state": "running",
        "exporter_version": __version__,
        "options": dict(options),
        "exported": 0,
        "failed": 0,
        "skipped": 0,
        "already": 0,
    }
