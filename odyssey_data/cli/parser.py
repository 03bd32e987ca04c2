"""The argument parser of ``odyssey-data``: every subcommand, its operands and flags (the
export options' flags made from their declarations, see :mod:`odyssey_data.cli.flags`),
its example, and "did you mean" for a mistyped subcommand, choice or flag.
"""

from __future__ import annotations

import argparse
import difflib
import re
from collections.abc import Sequence
from typing import NoReturn

from odyssey_data._version import __version__
from odyssey_data.cli.datasets import cmd_convert, cmd_inspect, cmd_preview, cmd_verify
from odyssey_data.cli.export import DEMO_OUTPUT, cmd_demo, cmd_export, cmd_run
from odyssey_data.cli.flags import add_options, common_options, run_options, storage_option_flag
from odyssey_data.cli.remote import cmd_list, cmd_serve_demo
from odyssey_data.options import SOURCES


class Parser(argparse.ArgumentParser):
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


def suggest_flags(parser: Parser, extras: Sequence[str]) -> str:
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
    parser = Parser(
        prog="odyssey-data",
        description="Turn Odyssey stream recordings into ML training datasets.",
        epilog="Run 'odyssey-data COMMAND --help' for a command's options and an example.",
    )
    parser.add_argument("--version", action="version", version=f"odyssey-data {__version__}")
    common_options(parser, top=True)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help: str, operands: str = "") -> Parser:
        p = sub.add_parser(
            name,
            help=help,
            usage=f"odyssey-data {name} [options] {operands}".rstrip(),
            description=help[:1].upper() + help[1:] + ".",
            epilog=_EXAMPLES[name],
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        assert isinstance(p, Parser)
        common_options(p, top=False)
        p.set_defaults(parser=p)
        return p

    p = command("export", "export recordings from the Odyssey API into a dataset", "OUTPUT")
    p.add_argument("output", help="dataset root: a folder or fsspec URL (s3://, gs://, memory://)")
    add_options(p)
    run_options(p)
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
    run_options(p)
    p.set_defaults(func=cmd_run)

    p = command("demo", "start the local demo server and export its recordings", "[OUTPUT]")
    p.add_argument(
        "output", nargs="?", default=DEMO_OUTPUT, help=f"dataset root (default {DEMO_OUTPUT})"
    )
    p.add_argument("--recordings", type=int, default=6, help="finished demo recordings (default 6)")
    p.add_argument("--seed", type=int, default=0, help="seed of the demo catalog (default 0)")
    # The demo server gives the API; its catalog holds streams and simulation jobs.
    add_options(p, skip=("api_url", "api_key"), defaults={"source": "all"})
    run_options(p)
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
    add_options(p, ("api_url", "api_key", "timeout_s"))
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
    storage_option_flag(p)
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
    storage_option_flag(p)
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
    storage_option_flag(p)
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
    storage_option_flag(p)
    p.add_argument("--no-checksums", action="store_true", help="check sizes only")
    p.set_defaults(func=cmd_verify)
    return parser
