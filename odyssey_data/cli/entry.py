"""The entry point: :func:`main` (parse, set up logging, run the subcommand, turn every
failure into one line and an exit code) and :func:`run`, the ``odyssey-data`` command,
which owns its process (signals, exit).
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import signal
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import Any

from odyssey_data.cli.output import (
    EXIT_FATAL,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_TERMINATED,
    EXIT_USAGE,
    err,
    shown,
    shown_lines,
)
from odyssey_data.cli.parser import Parser, build_parser, suggest_flags
from odyssey_data.errors import ConfigError, MissingDependencyError, OdysseyDataError


class _Formatter(logging.Formatter):
    """``warning: message`` for the package's own lines; libraries' lines (-vv) keep
    their logger's name."""

    def format(self, record: logging.LogRecord) -> str:
        text = record.getMessage()
        if record.exc_info and record.levelno >= logging.ERROR:
            text += "\n" + self.formatException(record.exc_info)
        level = record.levelname.lower()
        if record.name == "odyssey_data" or record.name.startswith("odyssey_data."):
            return f"{level}: {text}"
        return f"{level} {record.name}: {text}"


class _ConsoleHandler(logging.Handler):
    """Log lines through the stderr console, so they print above a live progress bar."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            err.print(shown_lines(self.format(record)), soft_wrap=True)
        except Exception:  # pragma: no cover - logging must not raise
            self.handleError(record)


def _verbosity(args: argparse.Namespace) -> int:
    """-1 quiet, 0 default, 1 -v, 2 -vv (or --debug)."""
    if getattr(args, "debug", False):
        return 2
    if getattr(args, "quiet", False):
        return -1
    return min(2, int(getattr(args, "verbose", 0) or 0))


_QUIET_LIBRARIES = ("httpx", "httpcore", "stamina", "botocore", "aiobotocore", "s3fs", "gcsfs")


def configure_logging(verbosity: int) -> Callable[[], None]:
    """Logging for the command: the package's warnings by default (and with -q, which
    only drops the progress), its steps at -v, debug and the libraries' own lines (httpx,
    stamina, botocore…) only at -vv.

    Returns:
        A function that puts logging back as it was (:func:`main` calls it at the end, so
        a program or test that calls :func:`main` keeps its own logging).
    """
    level = {-1: logging.WARNING, 0: logging.WARNING, 1: logging.INFO}.get(verbosity, logging.DEBUG)
    handler = _ConsoleHandler()
    handler.setFormatter(_Formatter())
    root = logging.getLogger()
    names = ("odyssey_data", *_QUIET_LIBRARIES)
    saved = (root.level, {name: logging.getLogger(name).level for name in names})
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbosity >= 2 else logging.ERROR)
    logging.getLogger("odyssey_data").setLevel(level)
    # Libraries whose loggers set their own levels stay quiet below -vv.
    for name in _QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(logging.DEBUG if verbosity >= 2 else logging.ERROR)

    def restore() -> None:
        root.removeHandler(handler)
        root.setLevel(saved[0])
        for name, old in saved[1].items():
            logging.getLogger(name).setLevel(old)

    return restore


class _Terminated(KeyboardInterrupt):
    """SIGTERM, handled as Ctrl-C is: commit what finished, then stop."""


def _on_sigterm(signum: int, frame: Any) -> None:
    raise _Terminated()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code."""
    return _main(argv, owns_process=False)


def _main(argv: Sequence[str] | None, *, owns_process: bool) -> int:
    parser = build_parser()
    args, extras = parser.parse_known_args(argv)
    if extras:
        sub = getattr(args, "parser", parser)
        assert isinstance(sub, Parser)
        sub.error(f"unrecognized arguments: {' '.join(extras)}{suggest_flags(sub, extras)}")
    if owns_process:
        # Only once the arguments parsed: --version, --help and usage errors exit
        # without importing Arrow.
        _skip_pandas_probe()
    verbosity = _verbosity(args)
    restore_logging = configure_logging(verbosity)
    try:
        return _dispatch(args, verbosity)
    finally:
        restore_logging()


def _dispatch(args: argparse.Namespace, verbosity: int) -> int:
    """Run the subcommand; every failure becomes one line and an exit code."""
    try:
        code: int = args.func(args)
        return code
    except (ConfigError, MissingDependencyError) as exc:
        if verbosity >= 2:
            err.print(shown_lines("".join(traceback.format_exception(exc))))
        err.print(f"[red]error[/]: {shown(str(exc))}")
        return EXIT_USAGE
    except OdysseyDataError as exc:
        if verbosity >= 2:
            err.print(shown_lines("".join(traceback.format_exception(exc))))
        err.print(f"[red]error[/]: {shown(str(exc))}")
        return EXIT_FATAL
    except _Terminated:
        err.print("terminated; the dataset holds what was committed, re-run to finish")
        return EXIT_TERMINATED
    except KeyboardInterrupt:
        err.print("interrupted; the dataset holds what was committed, re-run to finish")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # stdout was closed by the reader (`odyssey-data list | head`): nothing is wrong;
        # point stdout at /dev/null so the exit's flush does not fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return EXIT_OK
    except Exception as exc:
        if verbosity >= 1:
            err.print(shown_lines("".join(traceback.format_exception(exc))))
            tail = ""
        else:
            tail = "; re-run with -v for the traceback"
        message = " ".join(str(exc).split())[:300]
        err.print(f"[red]error[/]: unexpected error {type(exc).__name__}: {shown(message)}{tail}")
        return EXIT_FATAL


class _HidePandas:
    """An import finder under which ``import pandas`` fails (see _skip_pandas_probe)."""

    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        if name == "pandas" or name.startswith("pandas."):
            raise ModuleNotFoundError("pandas is hidden for a moment", name=name)


def _skip_pandas_probe() -> None:
    """Keep pyarrow from importing pandas (~0.2 s of CPU) in the CLI's process.

    pyarrow imports pandas, when it is installed, at its first array conversion, only to
    ask whether the input is a pandas object; the CLI never hands it one. pyarrow keeps
    a failed import as "not a pandas object" for those questions, while whatever truly
    needs pandas imports it again. So one conversion with pandas hidden answers them
    without the import, and pandas stays importable (``Table.to_pandas`` still works).
    """
    if "pandas" in sys.modules:
        return
    import pyarrow as pa

    hide = _HidePandas()
    sys.meta_path.insert(0, hide)
    try:
        pa.array([0])
    finally:
        sys.meta_path.remove(hide)


def run() -> None:
    """The ``odyssey-data`` command: :func:`main` in a process of its own, then exit.

    Unlike :func:`main` (which tests and other programs call), this owns its process: it
    spares it pyarrow's pandas import (once the arguments parsed: ``--version`` and
    ``--help`` import no Arrow), and at the end the interpreter's final garbage
    collection over everything the imports made (~60 ms that free nothing: the process
    is ending).
    """
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        code = _main(None, owns_process=True)
    finally:
        signal.signal(signal.SIGTERM, previous)
    sys.stdout.flush()
    sys.stderr.flush()
    if code in (EXIT_INTERRUPTED, EXIT_TERMINATED):
        # What finished is committed; downloads still in flight are abandoned, not
        # awaited (the interpreter's exit would join their threads).
        os._exit(code)
    gc.freeze()
    sys.exit(code)
