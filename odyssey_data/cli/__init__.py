"""The ``odyssey-data`` command line.

Exit codes: 0 all done (recordings not ready yet, such as a stream still active, are
not failures), 1 fatal error, 2 usage or configuration error, 3 finished but some
recordings failed (with ``--strict``: or were skipped), 130 interrupted (143 on
SIGTERM) after committing what had finished. Every failure prints one line naming what
failed, where, and the fix; ``-v`` adds the traceback of unexpected errors, ``-vv``
every traceback and the libraries' own logging.

Progress goes to stderr: a bar with ETA, live bytes and phases on a terminal, and one
line per recording otherwise (cron, CI, container logs).

The modules: :mod:`~odyssey_data.cli.entry` (:func:`main`, :func:`run`, logging and
the exit codes of failures), :mod:`~odyssey_data.cli.parser` (the subcommands),
:mod:`~odyssey_data.cli.flags` (the export options' flags, from their declarations),
:mod:`~odyssey_data.cli.output` (consoles, safe text, progress), and one module per
family of commands: :mod:`~odyssey_data.cli.export` (export, run, demo),
:mod:`~odyssey_data.cli.remote` (list, serve-demo) and
:mod:`~odyssey_data.cli.datasets` (inspect, verify, preview, convert). Each imports
the heavy parts (PyAV, Arrow, httpx, fsspec) when its command runs, so ``--version``
and ``--help`` start light.
"""

from odyssey_data.cli.entry import configure_logging, main, run
from odyssey_data.cli.output import (
    EXIT_FATAL,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_PARTIAL,
    EXIT_TERMINATED,
    EXIT_USAGE,
)
from odyssey_data.cli.parser import build_parser

__all__ = [
    "EXIT_FATAL",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_PARTIAL",
    "EXIT_TERMINATED",
    "EXIT_USAGE",
    "build_parser",
    "configure_logging",
    "main",
    "run",
]
