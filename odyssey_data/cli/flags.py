"""The command line's flags: the export options' flags, made from their declarations in
:mod:`odyssey_data.options` (:func:`add_options`) and read back into an
:class:`~odyssey_data.options.ExportConfig` (:func:`config_from`), and the flags every
command shares.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Sequence
from typing import Any

from odyssey_data.options import CLI, OPTION, OPTIONS, ClientOptions, ExportConfig, read_options

#: The export options the command line sets by flags (OUTPUT is each command's operand).
_FLAGGED = tuple(spec for spec in OPTIONS if spec.cli is not None and spec.cli.startswith("--"))


def config_from(args: argparse.Namespace, output: str, **extra: Any) -> ExportConfig:
    """The export options the command line gave (see :func:`add_options`); ``extra``
    are set by the command itself (the demo server's URL and key)."""
    given = {spec.name: getattr(args, spec.name, None) for spec in _FLAGGED}
    given.update(output=output, **extra)
    return ExportConfig(**read_options(given, CLI))


def client_from(args: argparse.Namespace) -> ClientOptions:
    """The API client options the command line gave, for a command without OUTPUT
    (``list``): read and checked as :func:`config_from` reads them."""
    names = {field.name for field in dataclasses.fields(ClientOptions)}
    given = {spec.name: getattr(args, spec.name, None) for spec in _FLAGGED if spec.name in names}
    return ClientOptions(**read_options(given, CLI))


def storage_options(pairs: Sequence[str] | None) -> dict[str, Any]:
    """``--storage-option KEY=VALUE`` flags, read as the export option is."""
    options: dict[str, Any] = OPTION["storage_options"].read(pairs or [], CLI) or {}
    return options


def common_options(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """-v/-vv, -q and --debug: accepted before and after the subcommand."""
    # On subcommands the defaults are SUPPRESS, so they never undo a flag given before.
    default: Any = argparse.SUPPRESS
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0 if top else default,
        help="more detail: -v logs each step (checkpoints, retries) and shows the traceback "
        "of unexpected errors; -vv adds debug output, the libraries' own logging and every "
        "traceback",
    )
    parser.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        default=False if top else default,
        help="no progress: only warnings, errors and the final summary",
    )
    parser.add_argument(
        "--debug",
        action="store_true",
        default=False if top else default,
        help="the same as -vv",
    )


def _shown_default(value: Any) -> str | None:
    if value is None or value == () or value == {} or value is False:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def add_options(
    parser: argparse.ArgumentParser,
    names: Sequence[str] | None = None,
    *,
    skip: Sequence[str] = (),
    defaults: dict[str, Any] | None = None,
) -> None:
    """Add the flags of export options (all, or ``names``) from their declarations in
    :mod:`odyssey_data.options`; their values are read by :func:`config_from`.

    ``defaults`` replaces a declared default for this command (the demo's ``--source``).
    """
    defaults = defaults or {}
    for spec in _FLAGGED:
        if (names is not None and spec.name not in names) or spec.name in skip:
            continue
        assert spec.cli is not None
        default = defaults.get(spec.name, spec.default)
        shown = _shown_default(default)
        help = spec.help
        if shown and spec.kind.cli == "value" and "default" not in help:
            help += f" (default {shown})"
        metavar = spec.metavar
        if spec.choices is not None:
            metavar = "{" + ",".join(spec.choices) + "}"
        if spec.kind.cli == "flag":
            parser.add_argument(spec.cli, dest=spec.name, action="store_true", help=help)
        else:
            action = "append" if spec.kind.cli == "append" else "store"
            parser.add_argument(
                spec.cli,
                dest=spec.name,
                action=action,
                metavar=metavar,
                default=defaults.get(spec.name),
                help=help,
            )


def storage_option_flag(parser: argparse.ArgumentParser) -> None:
    """``--storage-option`` of commands that read a dataset (the export's own is in
    :func:`add_options`)."""
    spec = OPTION["storage_options"]
    parser.add_argument(spec.cli or "", action="append", metavar=spec.metavar, help=spec.help)


def run_options(parser: argparse.ArgumentParser) -> None:
    """Options of every command that exports: --dry-run, --strict, --json."""
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="list what would be exported, skipped and already present; write nothing",
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="exit 3 when any recording was skipped too (an active stream, a job not "
        "completed), not only when one failed",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
