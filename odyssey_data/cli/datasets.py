"""The commands on an exported dataset: ``inspect`` (a summary, its QC included),
``verify`` (every file against the manifest), ``preview`` (a contact sheet) and
``convert`` (to LeRobot v3.0).
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from rich.table import Table

from odyssey_data.cli.flags import storage_options
from odyssey_data.cli.output import EXIT_FATAL, EXIT_OK, EXIT_PARTIAL, out, shown
from odyssey_data.errors import ConfigError
from odyssey_data.options import parse_resize
from odyssey_data.progress import human_bytes, human_seconds


def cmd_inspect(args: argparse.Namespace) -> int:
    from odyssey_data.dataset import open_dataset
    from odyssey_data.runs import recorded_options

    ds = open_dataset(args.dataset, storage_options(args.storage_option))
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
    table = Table(title=f"dataset {shown(args.dataset)}", show_header=False, title_justify="left")
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
        listed = ", ".join(f"{k}={v}" for k, v in options.items() if v is not None)
        table.add_row("export options", shown(listed))
    table.add_row("export runs", str(summary["runs"]))
    table.add_row("generation", str(summary["generation"]))
    out.print(table)
    _print_qc(summary["qc"])
    for sid, status in sorted(manifest.recordings.items()):
        if status.status != "exported":
            out.print(f"[yellow]{status.status}[/] {shown(sid)}: {shown(str(status.reason))}")
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
    counted = [
        f"{label}: {'not measured' if counts[name] is None else counts[name]}"
        for name, label in (
            ("gaps", "with gaps"),
            ("frozen_frames", "with frozen frames"),
            ("unresponsive_prompts", "with unresponsive prompts"),
        )
    ]
    out.print("recordings " + ", ".join(counted))


def _number(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def cmd_verify(args: argparse.Namespace) -> int:
    from odyssey_data.dataset import open_dataset

    ds = open_dataset(args.dataset, storage_options(args.storage_option))
    problems = ds.verify(checksums=not args.no_checksums)
    if not problems:
        out.print(f"ok: {len(ds.manifest.files)} files verified in {args.dataset}")
        return EXIT_OK
    for problem in problems:
        out.print(f"[red]problem[/] {shown(problem)}")
    out.print(f"{len(problems)} problems in {args.dataset}")
    return EXIT_FATAL


def cmd_preview(args: argparse.Namespace) -> int:
    from odyssey_data.dataset import open_dataset

    ds = open_dataset(args.dataset, storage_options(args.storage_option))
    sheet = ds.preview(
        args.stream_id, columns=args.columns, rows=args.rows, thumb_width=args.thumb_width
    )
    try:
        folder = os.path.dirname(args.out)
        if folder:
            os.makedirs(folder, exist_ok=True)
        sheet.save(args.out)
    except (OSError, ValueError) as exc:
        from odyssey_data.storage.errors import storage_error

        raise storage_error(exc, action="write", path=args.out, url=args.out) from exc
    out.print(f"wrote {args.out} ({sheet.size[0]}x{sheet.size[1]})")
    return EXIT_OK


def cmd_convert(args: argparse.Namespace) -> int:
    from odyssey_data.dataset import open_dataset

    size = parse_resize(args.size) if args.size else None
    if size is not None and size[1] is None:
        raise ConfigError(f"--size takes WxH, not {args.size!r}")
    ds = open_dataset(args.dataset, storage_options(args.storage_option))
    report = ds.to_lerobot(
        args.output,
        fps=args.fps,
        size=(size[0], size[1]) if size is not None and size[1] is not None else None,
        repo_id=args.repo_id,
        storage_options=storage_options(args.output_storage_option),
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
            out.print(f"[yellow]failed[/] {shown(sid)}: {shown(reason)}")
    return EXIT_OK if not report.failed else EXIT_PARTIAL
