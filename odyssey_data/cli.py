"""The ``odyssey-data`` command line.

Exit codes: 0 all done, 1 fatal error, 2 usage or configuration error, 3 finished but
some recordings failed or were skipped. Expected failures print one readable line, never
a traceback (``--debug`` shows it). Every text printed that may come from a server or a
dataset (ids, reasons, error messages) goes through :func:`_shown`; JSON output is ASCII.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import sys
import time
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from odyssey_data._version import __version__
from odyssey_data.errors import ConfigError, MissingDependencyError, OdysseyDataError, printable
from odyssey_data.images import FORMATS, parse_resize
from odyssey_data.pipeline import ExportConfig, ExportReport, ProgressSink, RecordingResult

EXIT_OK, EXIT_FATAL, EXIT_USAGE, EXIT_PARTIAL = 0, 1, 2, 3


def _shown(text: str) -> str:
    """``text`` fit for the terminal: control characters neutralised (the terminal is not
    the server's: ids, prompts and error details come from it) and rich markup escaped."""
    return escape(printable(text))


DEMO_OUTPUT = "./odyssey-demo-dataset"

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


class _Bar(ProgressSink):
    """A rich progress bar: recordings done, frames, MB/s."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]exporting"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[frames]:,} frames  {task.fields[rate]}"),
            TimeElapsedColumn(),
            console=err,
            transient=False,
            disable=not enabled,
        )
        self.task = self.progress.add_task("export", total=None, frames=0, rate="")
        self.frames = 0
        self.bytes = 0
        self.started = time.perf_counter()

    def start(self, total: int) -> None:
        self.started = time.perf_counter()
        self.progress.start()
        self.progress.update(self.task, total=total)

    def advance(self, result: RecordingResult) -> None:
        self.frames += result.frame_count
        self.bytes += result.video.bytes if result.video else 0
        elapsed = max(1e-6, time.perf_counter() - self.started)
        rate = f"{self.bytes / elapsed / 1e6:.1f} MB/s"
        self.progress.update(self.task, advance=1, frames=self.frames, rate=rate)
        if result.status != "exported" and self.enabled:
            sid, reason = _shown(result.stream_id), _shown(str(result.reason))
            line = f"[yellow]{result.status}[/] {sid}: {reason}"
            self.progress.console.print(line)

    def finish(self, report: ExportReport) -> None:
        self.progress.stop()


def _storage_options(pairs: Sequence[str] | None) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for pair in pairs or ():
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--storage-option takes KEY=VALUE, not {pair!r}")
        try:
            options[key] = json.loads(value)
        except ValueError:
            options[key] = value
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
    table.add_row("skipped", str(report.skipped))
    table.add_row("frames", f"{report.frames:,}")
    table.add_row("video bytes", f"{report.video_bytes:,}")
    table.add_row("bad event lines", str(report.bad_event_lines))
    table.add_row("retries / URL refreshes", f"{report.retries} / {report.url_refreshes}")
    table.add_row("wall time", f"{report.elapsed_s:.2f} s")
    table.add_row("frames/s", f"{report.frames_per_s:,.0f}")
    out.print(table)
    for sid, status, reason in report.problems:
        out.print(f"[yellow]{status}[/] {_shown(sid)}: {_shown(reason)}")


def _config(args: argparse.Namespace, output: str, **extra: Any) -> ExportConfig:
    return ExportConfig(
        output=output,
        api_url=extra.get("api_url", args.api_url),
        api_key=extra.get("api_key", args.api_key),
        limit=args.limit,
        stream_ids=tuple(args.stream_id or ()),
        source=args.source,
        job_ids=tuple(args.job_id or ()),
        job_status=args.status,
        with_thumbnails=args.with_thumbnails,
        workers=args.workers,
        executor=args.executor,
        ray_address=args.ray_address,
        storage_options=_storage_options(args.storage_option),
        event_offset_ms=args.event_offset_ms,
        probe=args.probe,
        overwrite=args.overwrite,
        allow_foreign_files=args.allow_foreign_files,
        shard_rows=args.shard_rows,
        break_lock=args.break_lock,
        # 0 (or less): never by age; NaN is refused by the config, not taken for 0.
        lock_timeout_s=args.lock_timeout if not args.lock_timeout <= 0 else None,
        max_download_bytes=args.max_download_bytes,
        min_download_rate=args.min_download_rate,
        frames=args.frames,
        resize=parse_resize(args.resize) if args.resize else None,
        fps=args.fps,
        image_quality=args.image_quality,
    )


def cmd_export(args: argparse.Namespace) -> int:
    from odyssey_data.pipeline import export

    config = _config(args, args.output)
    report = export(config, progress=_Bar(not args.quiet and not args.json))
    _print_report(report, args.json)
    return EXIT_OK if report.ok else EXIT_PARTIAL


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
        report = export(config, progress=_Bar(not args.quiet and not args.json))
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
    # The demo's still-active stream and its jobs not completed (pending, processing,
    # failed) are skipped on purpose; only failures are errors here.
    return EXIT_OK if report.failed == 0 else EXIT_PARTIAL


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
    bar = _Bar(not args.quiet and not args.json)
    if job.demo is None:
        report = export(job.export_config(), progress=bar)
        code = EXIT_OK if report.ok else EXIT_PARTIAL
    else:
        from odyssey_data.demo import DemoServer, make_demo_catalog

        demo = job.demo
        catalog = make_demo_catalog(demo.recordings, seed=demo.seed, active=demo.active)
        with DemoServer(catalog) as server:
            err.print(f"demo server on {server.base_url} with {len(catalog.recordings)} recordings")
            config = job.export_config(api_url=server.base_url, api_key=server.api_key)
            report = export(config, progress=bar)
        # As with `demo`: the demo's still-active streams are skipped on purpose.
        code = EXIT_OK if report.failed == 0 else EXIT_PARTIAL
    _print_report(report, args.json)
    return code


def cmd_list(args: argparse.Namespace) -> int:
    from odyssey_data.pipeline import iter_recordings

    rows: list[dict[str, Any]] = []
    for info in iter_recordings(args.api_url, args.api_key, limit=args.limit):
        rows.append(
            {
                "stream_id": info.stream_id,
                "width": info.width,
                "height": info.height,
                "started_at": info.started_at.isoformat() if info.started_at else None,
                "ended_at": info.ended_at.isoformat() if info.ended_at else None,
                "duration_seconds": info.duration_seconds,
            }
        )
    if args.json:
        out.print_json(ensure_ascii=True, data=rows)
        return EXIT_OK
    table = Table("stream_id", "size", "started_at", "duration", "state")
    for r in rows:
        table.add_row(
            _shown(r["stream_id"]),
            f"{r['width']}x{r['height']}",
            r["started_at"] or "",
            f"{r['duration_seconds']:.1f} s" if r["duration_seconds"] is not None else "",
            "active" if r["ended_at"] is None else "ended",
        )
    out.print(table)
    out.print(f"{len(rows)} recordings")
    return EXIT_OK


def cmd_inspect(args: argparse.Namespace) -> int:
    from odyssey_data.dataset import open_dataset

    ds = open_dataset(args.dataset, _storage_options(args.storage_option))
    summary = ds.summary()
    if args.json:
        out.print_json(ensure_ascii=True, data=summary)
        return EXIT_OK
    table = Table(title=f"dataset {_shown(args.dataset)}", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(justify="right")
    table.add_row("recordings", str(summary["recordings"]))
    for status, count in sorted(summary["status"].items()):
        table.add_row(f"  {status}", str(count))
    table.add_row("frames", f"{summary['frames']:,}")
    table.add_row("prompts", str(summary["prompts"]))
    table.add_row("events", str(summary["events"]))
    table.add_row("video duration", f"{summary['duration_s']:.1f} s")
    table.add_row("video bytes", f"{summary['video_bytes']:,}")
    table.add_row("files / bytes", f"{summary['files']} / {summary['dataset_bytes']:,}")
    table.add_row("generation", str(summary["generation"]))
    out.print(table)
    for sid, status in sorted(ds.manifest.recordings.items()):
        if status.status != "exported":
            out.print(f"[yellow]{status.status}[/] {_shown(sid)}: {_shown(str(status.reason))}")
    return EXIT_OK


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
    sheet.save(args.out)
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
            out.print(f"[yellow]failed[/] {escape(sid)}: {escape(reason)}")
    return EXIT_OK if not report.failed else EXIT_PARTIAL


def _api_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--api-url", help="API base URL (default: $ODYSSEY_API_URL or the public API)"
    )
    parser.add_argument("--api-key", help="API key ody_... (default: $ODYSSEY_API_KEY)")


def _source_options(parser: argparse.ArgumentParser, default: str) -> None:
    parser.add_argument(
        "--source",
        choices=("streams", "simulations", "all"),
        default=default,
        help="stream recordings, simulation job outputs, or both into one dataset "
        f"(default {default})",
    )
    parser.add_argument(
        "--job-id", action="append", metavar="ID", help="only this simulation job (repeatable)"
    )
    parser.add_argument(
        "--status",
        choices=("pending", "dispatched", "processing", "completed", "failed", "cancelled"),
        help="list only simulation jobs of this status (default: all; those not completed "
        "are recorded as skipped)",
    )


def _export_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--with-thumbnails",
        action="store_true",
        help="also store each recording's thumbnail JPEG and preview MP4 beside its video",
    )
    parser.add_argument("--limit", type=int, help="export at most N recordings (most recent first)")
    parser.add_argument(
        "--stream-id", action="append", metavar="ID", help="only this recording (repeatable)"
    )
    parser.add_argument(
        "--workers", type=int, help="recordings in parallel (default: the number of cores)"
    )
    parser.add_argument(
        "--executor",
        choices=("local", "ray"),
        default="local",
        help="where recordings run: this machine (default; threads for reference mode, "
        "processes for materialised frames) or Ray (extra odyssey-data[ray])",
    )
    parser.add_argument(
        "--ray-address",
        metavar="ADDR",
        help="Ray cluster for --executor ray (default: $RAY_ADDRESS or a new local Ray)",
    )
    parser.add_argument(
        "--storage-option",
        action="append",
        metavar="KEY=VALUE",
        help="fsspec option of the output filesystem (repeatable; VALUE is JSON if it parses)",
    )
    parser.add_argument("--overwrite", action="store_true", help="start a fresh dataset")
    parser.add_argument(
        "--allow-foreign-files",
        action="store_true",
        help="add a new dataset to a folder that already holds other files (they are never "
        "deleted or overwritten; a file named like one the export writes is refused)",
    )
    parser.add_argument(
        "--shard-rows",
        type=int,
        default=1_000_000,
        metavar="N",
        help="frame rows per shard; the manifest is committed after each (default 1000000)",
    )
    parser.add_argument(
        "--break-lock",
        action="store_true",
        help="take the dataset's writer lock even if another export seems to hold it "
        "(only when you know that export is dead)",
    )
    parser.add_argument(
        "--lock-timeout",
        type=float,
        default=6 * 3600.0,
        metavar="SECONDS",
        help="a writer lock idle for longer is stale and broken (default 21600; 0: never by "
        "age, only when its process is gone from this machine)",
    )
    parser.add_argument(
        "--event-offset-ms", type=float, default=0.0, help="added to every event time (default 0)"
    )
    parser.add_argument(
        "--frames",
        choices=FORMATS,
        default="reference",
        help="reference (default: rows point into the videos) or an image format to "
        "materialise each frame in the image column (needs odyssey-data[images])",
    )
    parser.add_argument(
        "--resize", metavar="WxH", help="size of materialised frames; W alone keeps the aspect"
    )
    parser.add_argument(
        "--fps", type=float, help="keep only the frame nearest to each tick of this rate"
    )
    parser.add_argument(
        "--image-quality", type=int, default=90, help="JPEG/WebP quality (default 90)"
    )
    parser.add_argument(
        "--probe",
        choices=("auto", "demux", "decode"),
        default="auto",
        help="how frame timing is read (default auto: demux, checked against a decode)",
    )
    parser.add_argument(
        "--max-download-bytes", type=int, default=16 << 30, help="refuse larger downloads"
    )
    parser.add_argument(
        "--min-download-rate",
        type=float,
        default=16 << 10,
        metavar="BYTES_PER_S",
        help="a download slower than this on average (after its first read timeout) is "
        "retried, then fails (default 16384)",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``odyssey-data``."""
    parser = argparse.ArgumentParser(
        prog="odyssey-data",
        description="Turn Odyssey stream recordings into ML training datasets.",
    )
    parser.add_argument("--version", action="version", version=f"odyssey-data {__version__}")
    parser.add_argument("--debug", action="store_true", help="log debug output and tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("export", help="export recordings from the Odyssey API into a dataset")
    p.add_argument("output", help="dataset root: a folder or fsspec URL (s3://, gs://, memory://)")
    _api_options(p)
    _source_options(p, "streams")
    _export_options(p)
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("run", help="run a pipeline file (TOML; see pipelines/README.md)")
    p.add_argument("pipeline", help="the pipeline file, e.g. pipelines/demo.toml")
    p.add_argument(
        "--set",
        action="append",
        metavar="SECTION.KEY=VALUE",
        help="override a key of the file (repeatable; VALUE is TOML if it parses, else text)",
    )
    p.add_argument("--check", action="store_true", help="validate the file and stop")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("demo", help="start the local demo server and export its recordings")
    p.add_argument("output", nargs="?", default=DEMO_OUTPUT, help=f"default {DEMO_OUTPUT}")
    p.add_argument("--recordings", type=int, default=6, help="finished demo recordings (default 6)")
    p.add_argument("--seed", type=int, default=0)
    _source_options(p, "all")
    _export_options(p)
    p.set_defaults(func=cmd_demo, api_url=None, api_key=None)

    p = sub.add_parser("serve-demo", help="run the Odyssey-compatible demo server until Ctrl-C")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="default: a free port")
    p.add_argument("--recordings", type=int, default=6)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", metavar="WxH", help="frame size of every recording (default: mixed)")
    p.add_argument("--seconds", type=float, default=3.5, help="length of each (default 3.5)")
    p.add_argument(
        "--bitrate",
        metavar="B",
        help="H.264 bits per second (4M, 4000k); draws textured frames that use it",
    )
    p.set_defaults(func=cmd_serve_demo)

    p = sub.add_parser("list", help="list the recordings the API has")
    _api_options(p)
    p.add_argument("--limit", type=int)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("inspect", help="summarise a dataset")
    p.add_argument("dataset")
    p.add_argument("--storage-option", action="append", metavar="KEY=VALUE")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("preview", help="draw a contact sheet of one recording as a PNG")
    p.add_argument("dataset")
    p.add_argument("--stream-id", help="the recording (default: the first one)")
    p.add_argument("--out", default="preview.png", help="the PNG to write (default preview.png)")
    p.add_argument("--columns", type=int, default=4)
    p.add_argument("--rows", type=int, default=3)
    p.add_argument("--thumb-width", type=int, default=320)
    p.add_argument("--storage-option", action="append", metavar="KEY=VALUE")
    p.set_defaults(func=cmd_preview)

    p = sub.add_parser("convert", help="convert a dataset for other trainers (LeRobot v3.0)")
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
    p.add_argument("--storage-option", action="append", metavar="KEY=VALUE")
    p.add_argument(
        "--output-storage-option",
        action="append",
        metavar="KEY=VALUE",
        help="fsspec option of OUTPUT's filesystem (repeatable)",
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser("verify", help="check every file of a dataset against its manifest")
    p.add_argument("dataset")
    p.add_argument("--storage-option", action="append", metavar="KEY=VALUE")
    p.add_argument("--no-checksums", action="store_true", help="check sizes only")
    p.set_defaults(func=cmd_verify)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if args.debug:
        logging.getLogger("httpx").setLevel(logging.INFO)
    try:
        code: int = args.func(args)
        return code
    except (ConfigError, MissingDependencyError) as exc:
        err.print(f"[red]error[/]: {_shown(str(exc))}")
        return EXIT_USAGE
    except OdysseyDataError as exc:
        if args.debug:
            raise
        err.print(f"[red]error[/]: {_shown(str(exc))}")
        return EXIT_FATAL
    except KeyboardInterrupt:
        err.print("interrupted; the dataset holds what was committed, re-run to finish")
        return 130


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
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":  # pragma: no cover
    run()
