"""What the command line gives back: exit codes, the stdout and stderr consoles, text
made safe for the terminal, and the export's progress on stderr.

Every text printed that may come from a server or a dataset (ids, reasons, error
messages) goes through :func:`shown`; JSON output is ASCII.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from odyssey_data.errors import printable
from odyssey_data.progress import LIVE, ProgressSink, ProgressUpdate, human_bytes, human_seconds

if TYPE_CHECKING:
    from odyssey_data.pipeline import ExportReport

EXIT_OK, EXIT_FATAL, EXIT_USAGE, EXIT_PARTIAL = 0, 1, 2, 3
EXIT_INTERRUPTED, EXIT_TERMINATED = 130, 143


def shown(text: str) -> str:
    """``text`` fit for the terminal: control characters neutralised (the terminal is not
    the server's: ids, prompts and error details come from it) and rich markup escaped."""
    return escape(printable(text))


def shown_lines(text: str) -> str:
    """:func:`shown` line by line (a traceback, a log record): the line breaks stay."""
    return "\n".join(shown(line) for line in text.split("\n"))


out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


class _LiveColumn(ProgressColumn):
    """Bytes downloaded so far (moving within a recording), the rate, and the phases."""

    def render(self, task: Task) -> Text:
        elapsed = task.elapsed or 0.0
        rate = f"{human_bytes(LIVE.bytes / elapsed)}/s" if elapsed > 0.5 else ""
        phases = LIVE.describe()
        return Text(f"{human_bytes(LIVE.bytes)} {rate}  {phases}".rstrip())


class _Bar(ProgressSink):
    """A rich progress bar: recordings done, frames, live bytes, phases, elapsed, ETA."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]exporting"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[frames]:,} frames"),
            _LiveColumn(),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=err,
            transient=False,
            disable=not enabled,
        )
        self.task = self.progress.add_task("export", total=None, frames=0)
        self.frames = 0

    def start(self, total: int) -> None:
        super().start(total)
        self.progress.start()
        self.progress.update(self.task, total=total)

    def update(self, update: ProgressUpdate) -> None:
        self.frames += update.frames
        self.progress.update(self.task, advance=1, frames=self.frames)
        if update.status != "exported" and self.enabled:
            sid, reason = shown(update.stream_id), shown(str(update.reason))
            self.progress.console.print(f"[yellow]{update.status}[/] {sid}: {reason}")

    def finish(self, report: ExportReport) -> None:
        self.progress.stop()


class _Lines(ProgressSink):
    """One line per recording on stderr, for logs without a terminal:
    ``[12/37] <id> 285 frames 2.6 MB 1.9 s`` (failures with their reason)."""

    def update(self, update: ProgressUpdate) -> None:
        line = update.line()
        if update.eta_s is not None and update.done < update.total and update.elapsed_s > 1:
            line += f" (ETA {human_seconds(update.eta_s)})"
        err.print(shown(line))


def progress_sink(args: argparse.Namespace) -> ProgressSink:
    """The bar on a terminal, lines elsewhere, nothing with -q."""
    if args.quiet:
        return ProgressSink()
    if err.is_terminal and not getattr(args, "json", False):
        return _Bar(True)
    return _Lines()
