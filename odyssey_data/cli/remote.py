"""The commands on the Odyssey API side: ``list`` what an API holds, and ``serve-demo``
(a local Odyssey-compatible server to export from).

``list`` prints a table on a terminal, TSV when piped (ids whole, one line each) and
JSON with ``--json``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from typing import Any

from rich.table import Table

from odyssey_data.cli.flags import client_from
from odyssey_data.cli.output import EXIT_OK, err, out, shown
from odyssey_data.errors import ConfigError, printable
from odyssey_data.options import parse_resize


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
        table.add_row(*(shown(_tsv(row.get(c))) for c in columns))
    out.print(table, crop=False)
    out.print(f"{len(rows)} {title}")


def cmd_list(args: argparse.Namespace) -> int:
    from odyssey_data.api import open_client

    rows: list[dict[str, Any]] = []
    with open_client(client_from(args)) as client:
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


def parse_bitrate(text: str) -> int:
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
    bitrate = parse_bitrate(args.bitrate) if args.bitrate is not None else None
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
