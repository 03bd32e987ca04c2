"""Issue 7, target 4: peak memory of an export, 1-minute vs 10-minute recording.

One 1280x704 ~4 Mb/s recording of 1 minute, then one of 10 minutes (cached on disk after
the first run), each exported by ``odyssey-data export`` in reference mode and in
materialised mode (``--frames jpeg --resize 256x144``). Peak RSS is the largest
``ru_maxrss`` of the CLI process and its workers. Target, in both modes: 10-minute peak
<= 1.5x the 1-minute peak, and below 500 MB.

Run: ``python benchmarks/memory.py [--long 600] [--mode reference|jpeg]``
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as common


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", type=float, default=60.0)
    parser.add_argument("--long", type=float, default=600.0)
    parser.add_argument("--mode", choices=("reference", "jpeg"))
    args = parser.parse_args(argv)
    peaks: dict[tuple[str, float], int] = {}
    modes = [args.mode] if args.mode else ["reference", "jpeg"]
    for seconds in (args.short, args.long):
        catalog = common.full_size_catalog(1, seconds=seconds, seed=1)
        with (
            tempfile.TemporaryDirectory(prefix="odyssey-bench-") as tmp,
            common.serve(catalog, page_cap=100) as server,
        ):
            for mode in modes:
                extra = ["--frames", "jpeg", "--resize", "256x144"] if mode == "jpeg" else []
                _, rss = common.run_cli(
                    ["export", "--workers", "2", "--overwrite", "-q", *extra, f"{tmp}/{mode}"],
                    server,
                )
                peaks[mode, seconds] = rss
    print("target 4: memory flat (peak RSS of the largest export process)")
    for mode in modes:
        short, long = peaks[mode, args.short], peaks[mode, args.long]
        common.row(
            f"anchor: {mode}, {args.short / 60:.0f}-minute recording", short / 1e6, "MB", 1.0
        )
        common.row(
            f"{mode}, {args.long / 60:.0f}-minute recording",
            long / 1e6,
            "MB",
            long / short,
            "<= 1.5 and < 500 MB (target)",
        )


if __name__ == "__main__":
    main()
