"""The commands that export: ``export``, ``run`` (a pipeline file) and ``demo``, each
with ``--dry-run`` (the plan, nothing written), and the report they print.

The export (PyAV, Arrow, httpx, fsspec) is imported when a command runs, not with this
module, so ``--version``, ``--help`` and the commands that do not export start light.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from rich.table import Table

from odyssey_data.cli.flags import config_from
from odyssey_data.cli.output import EXIT_OK, EXIT_USAGE, err, out, progress_sink, shown
from odyssey_data.errors import ConfigError
from odyssey_data.options import ExportConfig
from odyssey_data.progress import human_bytes, human_seconds

if TYPE_CHECKING:
    from odyssey_data.pipeline import ExportReport

DEMO_OUTPUT = "./odyssey-demo-dataset"


def _print_report(report: ExportReport, as_json: bool) -> None:
    if as_json:
        out.print_json(ensure_ascii=True, data=report.to_json())
        return
    table = Table(
        title=f"export to {shown(report.output)}", show_header=False, title_justify="left"
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
        out.print(f"[yellow]{status}[/] {shown(sid)}: {shown(reason)}")


def _dry_run(config: ExportConfig, as_json: bool) -> int:
    """Print what an export would do; nothing is written."""
    from odyssey_data.pipeline import plan

    result = plan(config)
    if as_json:
        out.print_json(ensure_ascii=True, data=result.to_json())
    else:
        for sid, job in result.todo:
            out.print(f"would export {shown(sid)}" + (f" (job {shown(job)})" if job else ""))
        for sid, status, reason in result.skipped:
            verb = "would skip" if status == "skipped" else "would fail"
            out.print(f"{verb} {shown(sid)}: {shown(reason)}")
        out.print(
            f"dry run, nothing written: {len(result.todo)} to export, {len(result.skipped)} "
            f"skipped, {result.already} already in {shown(result.output)}"
        )
    if result.refused:
        err.print(f"[red]error[/]: {shown(result.refused)}")
        return EXIT_USAGE
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    from odyssey_data.pipeline import export

    config = config_from(args, args.output)
    if args.dry_run:
        return _dry_run(config, args.json)
    report = export(config, progress=progress_sink(args))
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
        config = config_from(args, args.output, api_url=server.base_url, api_key=server.api_key)
        if args.dry_run:
            return _dry_run(config, args.json)
        report = export(config, progress=progress_sink(args))
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


def cmd_run(args: argparse.Namespace) -> int:
    from odyssey_data.jobfile import load_job
    from odyssey_data.pipeline import export

    job = load_job(args.pipeline, args.set or ())
    if args.check:
        names = [job.api_key_env] if job.api_key_env else []
        names += list(job.storage_options_env.values())
        needs = f"; reads {', '.join(names)} from the environment" if names else ""
        out.print(f"ok: {shown(job.path)} exports to {shown(job.config.output)}{needs}")
        return EXIT_OK
    if job.demo is None:
        if args.dry_run:
            return _dry_run(job.export_config(), args.json)
        report = export(job.export_config(), progress=progress_sink(args))
    else:
        from odyssey_data.demo import DemoServer, make_demo_catalog

        demo = job.demo
        catalog = make_demo_catalog(demo.recordings, seed=demo.seed, active=demo.active)
        with DemoServer(catalog) as server:
            err.print(f"demo server on {server.base_url} with {len(catalog.recordings)} recordings")
            config = job.export_config(api_url=server.base_url, api_key=server.api_key)
            if args.dry_run:
                return _dry_run(config, args.json)
            report = export(config, progress=progress_sink(args))
    _print_report(report, args.json)
    return report.exit_code(strict=args.strict)
