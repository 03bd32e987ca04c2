"""The ``odyssey-data`` command line.

Exit codes: 0 all done (recordings not ready yet, such as a stream still active, are
not failures), 1 fatal error, 2 usage or configuration error, 3 finished but some
recordings failed (with ``--strict``: or were skipped), 130 interrupted (143 on
SIGTERM) after committing what had finished. Every failure prints one line naming what
failed, where, and the fix; ``-v`` adds the traceback of unexpected errors, ``-vv``
every traceback and the libraries' own logging.

Progress goes to stderr: a bar with ETA, live bytes and phases on a terminal, and one
line per recording otherwise (cron, CI, container logs).

Every text printed that may come from a server or a dataset (ids, reasons, error
messages) goes through :func:`_shown`; JSON output is ASCII.
"""

from __future__ import annotations

import argparse
import difflib
import gc
import logging
import os
import re
import signal
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

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
from rich.table import Table
from rich.text import Text

from odyssey_data._version import __version__
from odyssey_data.errors import ConfigError, MissingDependencyError, OdysseyDataError, printable
from odyssey_data.options import (
    CLI,
    OPTION,
    OPTIONS,
    SOURCES,
    ExportConfig,
    parse_resize,
    read_options,
)
from odyssey_data.progress import LIVE, ProgressSink, ProgressUpdate, human_bytes, human_seconds

if TYPE_CHECKING:
    # The export (PyAV, Arrow, httpx, fsspec) is imported by the commands that run it,
    # so `--version`, `--help` and the commands that do not export start light.
    from odyssey_data.pipeline import ExportReport

EXIT_OK, EXIT_FATAL, EXIT_USAGE, EXIT_PARTIAL = 0, 1, 2, 3
EXIT_INTERRUPTED, EXIT_TERMINATED = 130, 143


def _shown(text: str) -> str:
    """``text`` fit for the terminal: control characters neutralised (the terminal is not
    the server's: ids, prompts and error details come from it) and rich markup escaped."""
    return escape(printable(text))


def _shown_lines(text: str) -> str:
    """:func:`_shown` line by line (a traceback, a log record): the line breaks stay."""
    return "\n".join(_shown(line) for line in text.split("\n"))


DEMO_OUTPUT = "./odyssey-demo-dataset"

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
            sid, reason = _shown(update.stream_id), _shown(str(update.reason))
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
        err.print(_shown(line))


def _progress(args: argparse.Namespace) -> ProgressSink:
    """The bar on a terminal, lines elsewhere, nothing with -q."""
    if args.quiet:
        return ProgressSink()
    if err.is_terminal and not getattr(args, "json", False):
        return _Bar(True)
    return _Lines()


def _storage_options(pairs: Sequence[str] | None) -> dict[str, Any]:
    """``--storage-option KEY=VALUE`` flags, read as the export option is."""
    options: dict[str, Any] = OPTION["storage_options"].read(pairs or [], CLI) or {}
    return options


def _print_report(report: ExportReport, as_json: bool) -> None:
    if as_json:
        out.print_json(ensure_ascii=True, data=report.to_json())
        return
    table = Table(
        title=f"export to {_shown(report.output)}", show_header=False, title_justify="left"
    )
    table.add_column(style="bold")
    table.add_column(justify="right")
    table.add_row("exported", str(report.exported))
    table.add_row("already in the dataset", str(report.already))
    table.add_row("failed", str(report.failed))
    skipped = str(report.skipped)
    if report.not_ready:
        skipped += f" ({report.not_ready} not ready yet)"
    table.add_row("skipped", skipped)
    table.add_row("frame rows", f"{report.frames:,}")
    table.add_row("video size", human_bytes(report.video_bytes))
    table.add_row("bad event lines", str(report.bad_event_lines))
    table.add_row("retries / URL refreshes", f"{report.retries} / {report.url_refreshes}")
    table.add_row("commits", str(report.commits))
    table.add_row("wall time", human_seconds(report.elapsed_s))
    table.add_row("frames/s", f"{report.frames_per_s:,.0f}")
    out.print(table)
    for sid, status, reason in report.problems:
        out.print(f"[yellow]{status}[/] {_shown(sid)}: {_shown(reason)}")


def _config(args: argparse.Namespace, output: str, **extra: Any) -> ExportConfig:
    """The export options the command line gave (see :func:`_add_options`); ``extra``
    are set by the command itself (the demo server's URL and key)."""
    given = {spec.name: getattr(args, spec.name, None) for spec in _FLAGGED}
    given.update(output=output, **extra)
    return ExportConfig(**read_options(given, CLI))


def _dry_run(config: ExportConfig, as_json: bool) -> int:
    """Print what an export would do; nothing is written."""
    from odyssey_data.pipeline import plan

    result = plan(config)
    if as_json:
        out.print_json(ensure_ascii=True, data=result.to_json())
    else:
        for sid, job in result.todo:
            out.print(f"would export {_shown(sid)}" + (f" (job {_shown(job)})" if job else ""))
        for sid, status, reason in result.skipped:
            verb = "would skip" if status == "skipped" else "would fail"
            out.print(f"{verb} {_shown(sid)}: {_shown(reason)}")
        out.print(
            f"dry run, nothing written: {len(result.todo)} to export, {len(result.skipped)} "
            f"skipped, {result.already} already in {_shown(result.output)}"
        )
    if result.refused:
        err.print(f"[red]error[/]: {_shown(result.refused)}")
        return EXIT_USAGE
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    from odyssey_data.pipeline import export

    config = _config(args, args.output)
    if args.dry_run:
        return _dry_run(config, args.json)
    report = export(config, progress=_progress(args))
    _print_report(report, args.json)
    return report.exit_code(strict=args.strict)


def cmd_demo(args: argparse.Namespace) -> int:
    from odyssey_data.dataset import open_dataset
    from odyssey_data.demo import DemoServer, make_demo_catalog
    from odyssey_data.pipeline import export

    try:
        catalog = make_demo_catalog(args.recordings, seed=args.seed)
    except ValueError as exc:
        raise ConfigError(f"demo: {exc}") from exc
    with DemoServer(catalog) as server:
        err.print(
            f"demo server on {server.base_url} with {len(catalog.recordings)} recordings "
            f"and {len(catalog.jobs)} simulation jobs"
        )
        config = _config(args, args.output, api_url=server.base_url, api_key=server.api_key)
        if args.dry_run:
            return _dry_run(config, args.json)
        report = export(config, progress=_progress(args))
    _print_report(report, args.json)
    if not args.json:
        summary = open_dataset(args.output).summary()
        out.print(
            f"\nwrote {summary['recordings']} recordings, {summary['frames']:,} frames, "
            f"{summary['prompts']} prompts to {args.output}\n"
            "open it in Python:\n"
            f"    import odyssey_data\n    ds = odyssey_data.open_dataset({args.output!r})\n"
            "    ds.frames.collect()          # polars: one row per frame with its prompt\n"
            "    ds.load_frames(ds.frames.head(4).collect())   # decoded RGB arrays\n"
            f"or query the Parquet directly: polars.scan_parquet('{args.output}/frames/*.parquet')"
        )
    # The demo's still-active stream and its jobs not completed are not failures, and
    # its failed and cancelled jobs are there on purpose: only --strict counts them.
    return report.exit_code(strict=args.strict)


def _bitrate(text: str) -> int:
    """``4000000``, ``4000k`` or ``4M`` bits per second."""
    scale = {"k": 1_000, "m": 1_000_000}.get(text[-1:].lower(), 1)
    try:
        value = float(text[:-1] if scale > 1 else text) * scale
    except ValueError as exc:
        raise ConfigError(
            f"--bitrate takes bits per second (4000000, 4000k, 4M), not {text!r}"
        ) from exc
    if not value >= 1000:
        raise ConfigError(f"--bitrate must be at least 1000 bits per second, not {text!r}")
    return int(value)


def cmd_serve_demo(args: argparse.Namespace) -> int:
    from odyssey_data.demo import DemoServer, make_demo_catalog

    size: tuple[int, int | None] | tuple[None, None] = (None, None)
    if args.size is not None:
        size = parse_resize(args.size)
        if size[1] is None:
            raise ConfigError(f"--size takes WxH, not {args.size!r}")
    if not 0 < args.seconds <= 3600:
        raise ConfigError(f"--seconds must be within (0, 3600], not {args.seconds}")
    bitrate = _bitrate(args.bitrate) if args.bitrate is not None else None
    try:
        catalog = make_demo_catalog(
            args.recordings,
            seed=args.seed,
            width=size[0],
            height=size[1],
            seconds=args.seconds,
            bitrate=bitrate,
            # A bitrate is only spent on pictures with detail: flat colours stay tiny.
            content="noise" if bitrate else "flat",
        )
    except ValueError as exc:
        raise ConfigError(f"serve-demo: {exc}") from exc
    with DemoServer(catalog, host=args.host, port=args.port) as server:
        out.print(f"ODYSSEY_API_URL={server.base_url}")
        out.print(f"ODYSSEY_API_KEY={server.api_key}")
        err.print("demo server running; Ctrl-C to stop")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    from odyssey_data.jobfile import load_job
    from odyssey_data.pipeline import export

    job = load_job(args.pipeline, args.set or ())
    if args.check:
        names = [job.api_key_env] if job.api_key_env else []
        names += list(job.storage_options_env.values())
        needs = f"; reads {', '.join(names)} from the environment" if names else ""
        out.print(f"ok: {_shown(job.path)} exports to {_shown(job.config.output)}{needs}")
        return EXIT_OK
    if job.demo is None:
        if args.dry_run:
            return _dry_run(job.export_config(), args.json)
        report = export(job.export_config(), progress=_progress(args))
    else:
        from odyssey_data.demo import DemoServer, make_demo_catalog

        demo = job.demo
        catalog = make_demo_catalog(demo.recordings, seed=demo.seed, active=demo.active)
        with DemoServer(catalog) as server:
            err.print(f"demo server on {server.base_url} with {len(catalog.recordings)} recordings")
            config = job.export_config(api_url=server.base_url, api_key=server.api_key)
            if args.dry_run:
                return _dry_run(config, args.json)
            report = export(config, progress=_progress(args))
    _print_report(report, args.json)
    return report.exit_code(strict=args.strict)


def _tsv(value: Any) -> str:
    """A TSV cell: tabs, line breaks and every other control character shown as escapes
    (an id from the API is untrusted text; see :func:`~odyssey_data.errors.printable`)."""
    return "" if value is None else printable(str(value))


def _emit_rows(
    columns: Sequence[str], rows: list[dict[str, Any]], as_json: bool, title: str
) -> None:
    """Rows as JSON, as TSV when stdout is not a terminal, else a table (ids never cut)."""
    if as_json:
        out.print_json(ensure_ascii=True, data=rows)
        return
    if not out.is_terminal:
        sys.stdout.write("\t".join(columns) + "\n")
        for row in rows:
            sys.stdout.write("\t".join(_tsv(row.get(c)) for c in columns) + "\n")
        sys.stdout.flush()
        return
    table = Table(*columns)
    for col in table.columns[:1]:
        col.no_wrap, col.overflow = True, "ignore"  # an id must stay whole to be copied
    for row in rows:
        table.add_row(*(_shown(_tsv(row.get(c))) for c in columns))
    out.print(table, crop=False)
    out.print(f"{len(rows)} {title}")


def cmd_list(args: argparse.Namespace) -> int:
    from odyssey_data.api import OdysseyClient

    rows: list[dict[str, Any]] = []
    with OdysseyClient(args.api_url, args.api_key) as client:
        if args.source in ("streams", "all"):
            for info in client.list_recordings(limit=args.limit):
                rows.append(
                    {
                        "stream_id": info.stream_id,
                        "kind": "stream",
                        "size": f"{info.width}x{info.height}",
                        "width": info.width,
                        "height": info.height,
                        "started_at": info.started_at.isoformat() if info.started_at else None,
                        "ended_at": info.ended_at.isoformat() if info.ended_at else None,
                        "duration_seconds": info.duration_seconds,
                        "state": "active" if info.ended_at is None else "ended",
                    }
                )
        if args.source in ("simulations", "all"):
            for job in client.list_simulation_jobs(limit=args.limit):
                rows.append(
                    {
                        "job_id": job.job_id,
                        "kind": "simulation",
                        "state": job.status,
                        "created_at": job.created_at.isoformat() if job.created_at else None,
                        "started_at": job.created_at.isoformat() if job.created_at else None,
                        "completed_at": (
                            job.completed_at.isoformat() if job.completed_at else None
                        ),
                        "error_message": job.error_message,
                    }
                )
    if args.source == "streams":
        columns: Sequence[str] = ("stream_id", "size", "started_at", "duration_seconds", "state")
        title = "recordings"
    elif args.source == "simulations":
        columns = ("job_id", "state", "created_at", "completed_at", "error_message")
        title = "simulation jobs"
    else:
        for row in rows:
            row["id"] = row.get("stream_id") or row.get("job_id")
        columns = ("id", "kind", "state", "started_at", "duration_seconds")
        title = "recordings and simulation jobs"
    _emit_rows(columns, rows, args.json, title)
    return EXIT_OK


def cmd_inspect(args: argparse.Namespace) -> int:
    from odyssey_data.dataset import open_dataset
    from odyssey_data.runs import recorded_options

    ds = open_dataset(args.dataset, _storage_options(args.storage_option))
    summary = ds.summary()
    manifest = ds.manifest
    summary["frame_rows"] = sum(
        entry.num_rows or 0 for entry in manifest.files.values() if entry.kind == "frames"
    )
    summary["options"] = recorded_options(manifest.recordings, manifest.options)
    summary["runs"] = len(manifest.runs)
    if args.json:
        out.print_json(ensure_ascii=True, data=summary)
        return EXIT_OK
    table = Table(title=f"dataset {_shown(args.dataset)}", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(justify="right")
    table.add_row("recordings", str(summary["recordings"]))
    for status, count in sorted(summary["status"].items()):
        table.add_row(f"  {status}", str(count))
    table.add_row("frame rows (frames table)", f"{summary['frame_rows']:,}")
    table.add_row("video frames (in the MP4s)", f"{summary['frames']:,}")
    table.add_row("prompts", str(summary["prompts"]))
    table.add_row("events", str(summary["events"]))
    table.add_row("video duration", human_seconds(summary["duration_s"]))
    table.add_row("video size", human_bytes(summary["video_bytes"]))
    table.add_row("files / size", f"{summary['files']} / {human_bytes(summary['dataset_bytes'])}")
    for options in summary["options"]:
        shown = ", ".join(f"{k}={v}" for k, v in options.items() if v is not None)
        table.add_row("export options", _shown(shown))
    table.add_row("export runs", str(summary["runs"]))
    table.add_row("generation", str(summary["generation"]))
    out.print(table)
    _print_qc(summary["qc"])
    for sid, status in sorted(manifest.recordings.items()):
        if status.status != "exported":
            out.print(f"[yellow]{status.status}[/] {_shown(sid)}: {_shown(str(status.reason))}")
    return EXIT_OK


def _print_qc(summary: dict[str, Any]) -> None:
    """The QC part of ``inspect``: each measure's median and range over the recordings."""
    if not summary["recordings"]:
        out.print("quality control: no qc rows (exported with --qc off, or before QC existed)")
        return
    table = Table(
        title=f"quality control of {summary['recordings']} recordings", title_justify="left"
    )
    table.add_column("qc column", style="bold")
    for heading in ("median", "min", "max"):
        table.add_column(heading, justify="right")
    for name, values in summary["columns"].items():
        table.add_row(name, *(_number(values[k]) for k in ("median", "min", "max")))
    out.print(table)
    counts = summary["flagged"]
    shown = [
        f"{label}: {'not measured' if counts[name] is None else counts[name]}"
        for name, label in (
            ("gaps", "with gaps"),
            ("frozen_frames", "with frozen frames"),
            ("unresponsive_prompts", "with unresponsive prompts"),
        )
    ]
    out.print("recordings " + ", ".join(shown))


def _number(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def cmd_verify(args: argparse.Namespace) -> int:
    from odyssey_data.dataset import open_dataset

    ds = open_dataset(args.dataset, _storage_options(args.storage_option))
    problems = ds.verify(checksums=not args.no_checksums)
    if not problems:
        out.print(f"ok: {len(ds.manifest.files)} files verified in {args.dataset}")
        return EXIT_OK
    for problem in problems:
        out.print(f"[red]problem[/] {_shown(problem)}")
    out.print(f"{len(problems)} problems in {args.dataset}")
    return EXIT_FATAL


def cmd_preview(args: argparse.Namespace) -> int:
    from odyssey_data.dataset import open_dataset

    ds = open_dataset(args.dataset, _storage_options(args.storage_option))
    sheet = ds.preview(
        args.stream_id, columns=args.columns, rows=args.rows, thumb_width=args.thumb_width
    )
    try:
        folder = os.path.dirname(args.out)
        if folder:
            os.makedirs(folder, exist_ok=True)
        sheet.save(args.out)
    except (OSError, ValueError) as exc:
        from odyssey_data.storage_errors import storage_error

        raise storage_error(exc, action="write", path=args.out, url=args.out) from exc
    out.print(f"wrote {args.out} ({sheet.size[0]}x{sheet.size[1]})")
    return EXIT_OK


def cmd_convert(args: argparse.Namespace) -> int:
    from odyssey_data.dataset import open_dataset

    size = parse_resize(args.size) if args.size else None
    if size is not None and size[1] is None:
        raise ConfigError(f"--size takes WxH, not {args.size!r}")
    ds = open_dataset(args.dataset, _storage_options(args.storage_option))
    report = ds.to_lerobot(
        args.output,
        fps=args.fps,
        size=(size[0], size[1]) if size is not None and size[1] is not None else None,
        repo_id=args.repo_id,
        storage_options=_storage_options(args.output_storage_option),
        gop=args.gop,
        language=not args.no_language,
        stream_ids=args.stream_id,
        overwrite=args.overwrite,
    )
    if args.json:
        out.print_json(data=report.to_json())
    else:
        out.print(
            f"wrote a LeRobot v3.0 dataset to {args.output}: {report.episodes} episodes, "
            f"{report.frames:,} frames at {args.fps} fps, {report.tasks} tasks "
            f"({report.frames_per_s:,.0f} frames/s)"
        )
        for sid, reason in report.failed:
            out.print(f"[yellow]failed[/] {_shown(sid)}: {_shown(reason)}")
    return EXIT_OK if not report.failed else EXIT_PARTIAL


class _Parser(argparse.ArgumentParser):
    """argparse, with "did you mean" for a mistyped subcommand, choice or flag.

    argparse stays (rather than click, typer or cyclopts) because it is in the standard
    library, imports in ~5 ms and the package already builds every subcommand with it:
    the suggestions and the flags that work before or after the subcommand are a few
    lines here, and the command's start-up time does not grow.
    """

    def error(self, message: str) -> NoReturn:
        m = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if m:
            choices = re.findall(r"'([^']*)'", m.group(2)) or [
                c.strip() for c in m.group(2).split(",")
            ]
            close = difflib.get_close_matches(m.group(1), choices, n=1, cutoff=0.5)
            if close:
                message += f"; did you mean {close[0]!r}?"
        super().error(message)

    def option_strings(self) -> list[str]:
        """Every flag this parser takes."""
        return [o for action in self._actions for o in action.option_strings]


def _suggest_flags(parser: _Parser, extras: Sequence[str]) -> str:
    """``; did you mean --workers?`` for unknown flags among ``extras``."""
    known = parser.option_strings()
    hints = []
    for extra in extras:
        if not extra.startswith("-"):
            continue
        flag = extra.split("=", 1)[0]
        close = difflib.get_close_matches(flag, known, n=1, cutoff=0.6)
        if close:
            hints.append(f"{close[0]} (not {flag})")
    return f"; did you mean {', '.join(hints)}?" if hints else ""


def _common_options(parser: argparse.ArgumentParser, *, top: bool) -> None:
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


#: The export options the command line sets by flags (OUTPUT is each command's operand).
_FLAGGED = tuple(spec for spec in OPTIONS if spec.cli is not None and spec.cli.startswith("--"))


def _shown_default(value: Any) -> str | None:
    if value is None or value == () or value == {} or value is False:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def _add_options(
    parser: argparse.ArgumentParser,
    names: Sequence[str] | None = None,
    *,
    skip: Sequence[str] = (),
    defaults: dict[str, Any] | None = None,
) -> None:
    """Add the flags of export options (all, or ``names``) from their declarations in
    :mod:`odyssey_data.options`; their values are read by :func:`_config`.

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


def _storage_option_flag(parser: argparse.ArgumentParser) -> None:
    """``--storage-option`` of commands that read a dataset (the export's own is in
    :func:`_add_options`)."""
    spec = OPTION["storage_options"]
    parser.add_argument(spec.cli or "", action="append", metavar=spec.metavar, help=spec.help)


def _run_options(parser: argparse.ArgumentParser) -> None:
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


_EXAMPLES = {
    "export": """examples:
  odyssey-data export ./dataset                       # every finished recording
  odyssey-data export s3://bucket/odyssey --storage-option endpoint_url=http://127.0.0.1:9000
  odyssey-data export ./dataset --dry-run             # what would be exported
  odyssey-data export ./clips --frames jpeg --resize 256 --fps 5""",
    "run": """examples:
  odyssey-data run pipelines/demo.toml
  odyssey-data run pipelines/nightly-s3.toml --set target.url=s3://other/prefix --check""",
    "demo": """example:
  odyssey-data demo                                   # writes ./odyssey-demo-dataset""",
    "serve-demo": """example:
  odyssey-data serve-demo --port 8000 --recordings 20 --bitrate 4M""",
    "list": """examples:
  odyssey-data list
  odyssey-data list --source simulations | cut -f1    # ids, tab-separated when piped""",
    "inspect": """example:
  odyssey-data inspect ./odyssey-demo-dataset""",
    "preview": """example:
  odyssey-data preview ./odyssey-demo-dataset --out previews/first.png""",
    "convert": """example:
  odyssey-data convert ./odyssey-demo-dataset ./lerobot --to lerobot --fps 10 --size 256x144""",
    "verify": """example:
  odyssey-data verify ./odyssey-demo-dataset --no-checksums""",
}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``odyssey-data``."""
    parser = _Parser(
        prog="odyssey-data",
        description="Turn Odyssey stream recordings into ML training datasets.",
        epilog="Run 'odyssey-data COMMAND --help' for a command's options and an example.",
    )
    parser.add_argument("--version", action="version", version=f"odyssey-data {__version__}")
    _common_options(parser, top=True)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help: str, operands: str = "") -> _Parser:
        p = sub.add_parser(
            name,
            help=help,
            usage=f"odyssey-data {name} [options] {operands}".rstrip(),
            description=help[:1].upper() + help[1:] + ".",
            epilog=_EXAMPLES[name],
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        assert isinstance(p, _Parser)
        _common_options(p, top=False)
        p.set_defaults(parser=p)
        return p

    p = command("export", "export recordings from the Odyssey API into a dataset", "OUTPUT")
    p.add_argument("output", help="dataset root: a folder or fsspec URL (s3://, gs://, memory://)")
    _add_options(p)
    _run_options(p)
    p.set_defaults(func=cmd_export)

    p = command("run", "run a pipeline file (TOML; see pipelines/README.md)", "PIPELINE")
    p.add_argument("pipeline", help="the pipeline file, e.g. pipelines/demo.toml")
    p.add_argument(
        "--set",
        action="append",
        metavar="SECTION.KEY=VALUE",
        help="override a key of the file (repeatable; VALUE is TOML if it parses, else text)",
    )
    p.add_argument("--check", action="store_true", help="validate the file and stop")
    _run_options(p)
    p.set_defaults(func=cmd_run)

    p = command("demo", "start the local demo server and export its recordings", "[OUTPUT]")
    p.add_argument(
        "output", nargs="?", default=DEMO_OUTPUT, help=f"dataset root (default {DEMO_OUTPUT})"
    )
    p.add_argument("--recordings", type=int, default=6, help="finished demo recordings (default 6)")
    p.add_argument("--seed", type=int, default=0, help="seed of the demo catalog (default 0)")
    # The demo server gives the API; its catalog holds streams and simulation jobs.
    _add_options(p, skip=("api_url", "api_key"), defaults={"source": "all"})
    _run_options(p)
    p.set_defaults(func=cmd_demo, api_url=None, api_key=None)

    p = command("serve-demo", "run the Odyssey-compatible demo server until Ctrl-C")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    p.add_argument("--recordings", type=int, default=6, help="finished recordings (default 6)")
    p.add_argument("--seed", type=int, default=0, help="seed of the demo catalog (default 0)")
    p.add_argument("--size", metavar="WxH", help="frame size of every recording (default: mixed)")
    p.add_argument("--seconds", type=float, default=3.5, help="length of each (default 3.5)")
    p.add_argument(
        "--bitrate",
        metavar="B",
        help="H.264 bits per second (4M, 4000k); draws textured frames that use it",
    )
    p.set_defaults(func=cmd_serve_demo)

    p = command("list", "list the recordings (or simulation jobs) the API has")
    _add_options(p, ("api_url", "api_key"))
    p.add_argument(
        "--source",
        choices=SOURCES,
        default="streams",
        help="stream recordings (default), simulation jobs, or both",
    )
    p.add_argument("--limit", type=int, metavar="N", help="at most N of each")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_list)

    p = command("inspect", "summarise a dataset", "DATASET")
    p.add_argument("dataset", help="the dataset root (folder or fsspec URL)")
    _storage_option_flag(p)
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_inspect)

    p = command("preview", "draw a contact sheet of one recording as a PNG", "DATASET")
    p.add_argument("dataset", help="the dataset root (folder or fsspec URL)")
    p.add_argument("--stream-id", help="the recording (default: the first one)")
    p.add_argument(
        "--out",
        default="preview.png",
        help="the PNG to write; its folder is created (default preview.png)",
    )
    p.add_argument("--columns", type=int, default=4, help="thumbnails per row (default 4)")
    p.add_argument("--rows", type=int, default=3, help="rows of thumbnails (default 3)")
    p.add_argument(
        "--thumb-width", type=int, default=320, help="thumbnail width in pixels (default 320)"
    )
    _storage_option_flag(p)
    p.set_defaults(func=cmd_preview)

    p = command("convert", "convert a dataset for other trainers (LeRobot v3.0)", "DATASET OUTPUT")
    p.add_argument("dataset", help="the exported dataset: a folder or fsspec URL")
    p.add_argument("output", help="where to write: a new folder or fsspec URL")
    p.add_argument("--to", choices=("lerobot",), required=True, help="the target format")
    p.add_argument(
        "--fps", type=int, required=True, help="constant frame rate of every episode (whole)"
    )
    p.add_argument("--size", metavar="WxH", help="video size (needed when recordings differ)")
    p.add_argument("--repo-id", metavar="NAME", help="the dataset's name (default: OUTPUT's)")
    p.add_argument(
        "--gop", type=int, default=2, help="key frame interval of the videos (default 2)"
    )
    p.add_argument(
        "--overwrite", action="store_true", help="replace an earlier conversion at OUTPUT"
    )
    p.add_argument(
        "--stream-id", action="append", metavar="ID", help="only this recording (repeatable)"
    )
    p.add_argument(
        "--no-language",
        action="store_true",
        help="leave out LeRobot's language columns (their lists need lerobot's collate_fn)",
    )
    _storage_option_flag(p)
    p.add_argument(
        "--output-storage-option",
        action="append",
        metavar="KEY=VALUE",
        help="fsspec option of OUTPUT's filesystem (repeatable)",
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=cmd_convert)

    p = command("verify", "check every file of a dataset against its manifest", "DATASET")
    p.add_argument("dataset", help="the dataset root (folder or fsspec URL)")
    _storage_option_flag(p)
    p.add_argument("--no-checksums", action="store_true", help="check sizes only")
    p.set_defaults(func=cmd_verify)
    return parser


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
            err.print(_shown_lines(self.format(record)), soft_wrap=True)
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
    parser = build_parser()
    args, extras = parser.parse_known_args(argv)
    if extras:
        sub = getattr(args, "parser", parser)
        assert isinstance(sub, _Parser)
        sub.error(f"unrecognized arguments: {' '.join(extras)}{_suggest_flags(sub, extras)}")
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
            err.print(_shown_lines("".join(traceback.format_exception(exc))))
        err.print(f"[red]error[/]: {_shown(str(exc))}")
        return EXIT_USAGE
    except OdysseyDataError as exc:
        if verbosity >= 2:
            err.print(_shown_lines("".join(traceback.format_exception(exc))))
        err.print(f"[red]error[/]: {_shown(str(exc))}")
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
            err.print(_shown_lines("".join(traceback.format_exception(exc))))
            tail = ""
        else:
            tail = "; re-run with -v for the traceback"
        message = " ".join(str(exc).split())[:300]
        err.print(f"[red]error[/]: unexpected error {type(exc).__name__}: {_shown(message)}{tail}")
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
    spares it pyarrow's pandas import, and at the end the interpreter's final garbage
    collection over everything the imports made (~60 ms that free nothing: the process
    is ending).
    """
    _skip_pandas_probe()
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        code = main()
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


if __name__ == "__main__":  # pragma: no cover
    run()
